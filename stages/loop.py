"""The generic stage run loop: wait for a batch, handle it in place, release, heartbeat.

The Disruptor's ``BatchEventProcessor`` for one stage process. ``StageLoop.run`` waits on
its input (a ring ``Consumer``, or anything with the same ``wait`` / ``release``, e.g. a
synthetic source) for a batch of 1 or 2 views, hands the whole batch to the stage's
handler (a domain core's batch function, which publishes to the output producers itself:
it knows how many records it makes), releases the input, and between batches answers the
control channel and refreshes the output producers' heartbeats. It stops cleanly:

* end of stream (the upstream producer called ``finish()``): the input is drained, the
  handler's ``finish`` runs (e.g. the last settlement, the last fsync), then every output
  producer ``finish()``es, so the stages downstream drain and stop in turn;
* a ``stop`` request on the control channel: the same, without waiting for upstream.

A handler may hold a batch (return ``False``): the input is not released and the next
wait returns the same records again, followed by any new ones.

Control is a small protocol (``ControlChannel``): ``poll()`` returns the requests that
arrived (never waits), ``reply(request, answer)`` answers one. A request is a string or an
object with a ``kind`` string; the loop answers ``status`` (its ``LoopCounters`` and the
stage's own status) and ``stop`` itself and hands any other kind to the stage's
``on_control``. The ZeroMQ implementation lives in ``pipeline`` (stages know nothing of
processes or sockets).

Hot path: per batch a handful of Python steps (one wait, one handler call, one release,
two clock reads), none per record. The control channel is read after the first batch and
then at most every ``CONTROL_NS`` of the loop's clock while batches flow (and after every
idle wait): a ZeroMQ poll costs ~3 µs, which at light load, where batches hold a few
records, was a tenth of ingest's time per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from ringbuffer import EndOfStreamError, Producer, Ring, WaitTimeoutError

#: how long one wait lasts before the loop answers control and beats (seconds): an idle
#: stage wakes this often (a control request waits at most this long; the supervisor's
#: heartbeat check allows seconds)
IDLE_TIMEOUT = 0.1
#: how often a busy loop refreshes its output producers' heartbeats (ns)
BEAT_NS = 100_000_000
#: how often a busy loop reads its control channel (ns): a request waits at most this long
CONTROL_NS = 1_000_000

Views = tuple[np.ndarray, ...]


class Input(Protocol):
    """What a loop reads from: ``ringbuffer.Consumer`` or a source with the same contract.

    ``wait`` returns 1 or 2 views of at least one record, raises ``WaitTimeoutError`` after
    ``timeout`` and ``EndOfStreamError`` once everything was read; ``release`` gives the
    last views back.
    """

    def wait(self, limit: int | None = None, timeout: float | None = None) -> Views: ...

    def release(self) -> None: ...


class ControlChannel(Protocol):
    """A stage's side of the control plane (implemented over ZeroMQ by ``pipeline``)."""

    def poll(self) -> list[object]:
        """The requests that arrived since the last call; never waits."""
        ...

    def reply(self, request: object, answer: dict[str, Any]) -> None:
        """Answer ``request`` (each request is answered exactly once)."""
        ...


def request_kind(request: object) -> str:
    """The kind of a control request: the string itself, or its ``kind`` attribute."""
    return request if isinstance(request, str) else str(getattr(request, "kind", ""))


def request_field(request: object, name: str) -> Any:
    """A field of a control request (``symbol`` of a halt): an attribute of the request, or
    of the ``message`` it carries (``pipeline.control.Request``)."""
    message = getattr(request, "message", request)
    try:
        return getattr(message, name)
    except AttributeError:
        raise ValueError(f"a {request_kind(request)} request needs {name!r}") from None


def ring_positions(rings: dict[str, Ring]) -> dict[str, int]:
    """Where the rings a stage attached stand, for ``status`` (``tradepipe top``'s fill):
    ``<role>.published``, ``<role>.<consumer>`` (released) and ``<role>.capacity``, by the
    role the topology gives each ring (``commands``, ``checked``, ``events``)."""
    positions: dict[str, int] = {}
    for role, ring in rings.items():
        status = ring.status()
        positions[f"{role}.published"] = status["published"]
        positions[f"{role}.capacity"] = status["capacity"]
        for consumer, cursor in status["consumers"].items():
            positions[f"{role}.{consumer}"] = cursor["cursor"]
    return positions


@dataclass
class LoopCounters:
    """What a loop did, for ``status``: records and batches handled, time busy and idle."""

    records: int = 0
    batches: int = 0
    busy_ns: int = 0
    idle_ns: int = 0
    state: str = "starting"  # starting, running, draining, stopped

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StageResult:
    """What a stage process hands back when it stops (picklable: plain values only)."""

    stage: str
    counters: LoopCounters
    stopped_by: str  # "end_of_stream" or "stop"
    details: dict[str, Any] = field(default_factory=dict)  # the stage's own figures


class StageLoop:
    """Run ``handler`` over batches of ``source`` until the end of the stream or a stop.

    ``handler(views)`` processes one batch (1 or 2 views, read-only for a ring consumer)
    and publishes what it makes. It may return ``False`` to hold the batch: it is not
    released, and the next wait returns it again followed by what arrived since (the
    journaller holds batches until an fsync covers them); ``records`` counts a record
    once, when it is released. ``idle()`` runs when a wait timed out
    (e.g. an fsync interval, draining a side ring); it may return a longer timeout for
    the waits until the next batch (a stage with nothing left to follow sleeps longer). ``finish()`` runs after the input ended,
    before the outputs finish. ``status()`` adds the stage's own figures to a ``status``
    answer; ``on_control(request)`` answers other requests. ``limit`` caps a batch.
    ``control_ns``: how often a busy loop reads ``control`` (0: after every batch).
    """

    def __init__(
        self,
        source: Input,
        handler: Callable[[Views], bool | None],
        outputs: Sequence[Producer] = (),
        *,
        control: ControlChannel | None = None,
        limit: int | None = None,
        idle: Callable[[], float | None] | None = None,
        finish: Callable[[], None] | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        on_control: Callable[[object], dict[str, Any]] | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        control_ns: int = CONTROL_NS,
    ) -> None:
        self.source = source
        self.handler = handler
        self.outputs = tuple(outputs)
        self.control = control
        self.limit = limit
        self._idle = idle
        self._finish = finish
        self._status = status
        self._on_control = on_control
        self.idle_timeout = idle_timeout
        self.control_ns = control_ns
        self.counters = LoopCounters()
        self._stop = False

    def run(self) -> str:
        """Loop until the end of the stream or a stop request; return which one ended it.

        The outputs are finished either way (downstream drains and stops). Errors of the
        handler or the waits (``PeerDeadError``, ``AlertedError``) propagate unchanged and
        the outputs are *not* finished: a supervisor sees a dead stage, not a clean end.
        """
        counters = self.counters
        counters.state = "running"
        source, handler, limit, timeout = self.source, self.handler, self.limit, self.idle_timeout
        waiting = timeout  # the next wait's timeout: ``idle()`` may lengthen it
        control, control_ns = self.control, self.control_ns
        clock = time.perf_counter_ns
        last_beat = mark = clock()
        last_control = mark - control_ns  # the first batch is followed by a read
        stopped_by = "end_of_stream"
        while not self._stop:
            try:
                views = source.wait(limit, waiting)
            except WaitTimeoutError:
                now = clock()
                counters.idle_ns += now - mark
                mark = last_beat = now
                self._beat()
                if self._idle is not None:
                    longer = self._idle()
                    if longer is not None:
                        waiting = longer
                if control is not None:
                    last_control = now
                    self._answer(control)
                continue
            except EndOfStreamError:
                break
            start = clock()
            counters.idle_ns += start - mark
            waiting = timeout
            held = handler(views) is False
            if not held:
                source.release()
                counters.records += len(views[0]) if len(views) == 1 else sum(map(len, views))
            mark = clock()
            counters.busy_ns += mark - start
            counters.batches += 1
            if mark - last_beat >= BEAT_NS:
                last_beat = mark
                self._beat()
            if control is not None and mark - last_control >= control_ns:
                last_control = mark
                self._answer(control)
        else:
            stopped_by = "stop"
        counters.state = "draining"
        if self._finish is not None:
            self._finish()
        for producer in self.outputs:
            producer.finish()
        counters.state = "stopped"
        return stopped_by

    def stop(self) -> None:
        """Ask the loop to stop after the batch in hand (a ``stop`` request does this)."""
        self._stop = True

    def status(self) -> dict[str, Any]:
        """The counters and the stage's own figures (what ``status`` answers)."""
        answer = self.counters.as_dict()
        if self._status is not None:
            answer.update(self._status())
        return answer

    def _beat(self) -> None:
        for producer in self.outputs:
            producer.heartbeat()

    def _answer(self, control: ControlChannel) -> None:
        for request in control.poll():
            kind = request_kind(request)
            if kind == "status":
                control.reply(request, self.status())
            elif kind == "stop":
                self.stop()
                control.reply(request, {"stopping": True})
            elif self._on_control is not None:
                control.reply(request, self._on_control(request))
            else:
                control.reply(request, {"error": f"this stage does not handle {kind!r}"})
