"""The output stage process: release each answer once its command is durable; count, time.

Rings: consumer ``output`` of the events ring, and consumer ``output`` of the commands
ring declared ``after`` persistence, whose released cursor only moves once a batch is
durable (``stages.persistence.stage``): the commands this consumer can see are exactly the
durable ones (a dependency barrier; nothing else is read from them). An events batch is
released (counted, timed, handed on) only once the durable seq reaches its last event's
command, so no answer leaves before its command is in the journal under the fsync policy.
The gateway and market-data publishers of the next issues hang off ``release``.

Per released batch: ``Outcomes.add`` (counts by kind and reason), the ingest→match and
ingest→ack latencies (``HopLatency``: one ``record_value`` per distinct stamp; answers sent
again after a restart are not timed), and a check
that every command is answered once, in order: event seqs never go back and never skip a
command.

With an order gateway (``load.source = "gateway"``) every released batch also goes to it,
whole, through the **answers ring** (output its producer, the gateway its consumer, which
sleeps in a poll over its sockets and the ring's doorbell: ``ringbuffer.doorbell``): the
gateway makes execution reports for its clients and market data of it. A full ring holds
output up (back-pressure; nothing is dropped), and output's end finishes the ring.

How far it released, for a restart: after each batch the seq of the last answer released
and how many answers of that seq left so far go to the ``progress`` file (16 bytes written
in place with one ``pwrite``: a process killed at any instant leaves either the old or the
new pair). After a crash the supervisor reads it to know which answers must be produced
again (``stages.restart.RestartPoint``); after a restart the first ``released_of_first``
answers of the first command sent again are dropped here: they already left.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from ringbuffer import Consumer, Doorbell, Ring, WaitTimeoutError, wait_strategy
from stages.latency import HopLatency
from stages.loop import ControlChannel, StageLoop, StageResult, Views, ring_positions
from stages.outcomes import Outcomes
from stages.records import COMMAND_DTYPE, EVENT_DTYPE
from stages.restart import ReleasedBefore, RestartPoint

CONSUMER = "output"
DURABLE_WAIT = 0.05
#: the progress file: (seq of the last answer released, answers of that seq released)
PROGRESS = struct.Struct("<qq")


class OutputConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    wait: str = "backoff"
    progress: str = ""  # the progress file ("": none is kept)
    release_log: str = ""  # append every released answer here (EVENT_DTYPE records)
    #: the answers ring's doorbell (``answers_ring`` given: the gateway sleeps on it)
    answers_doorbell: str = ""


def trim_release_log(path: str | os.PathLike[str], seq: int, count: int) -> int:
    """Cut a release log after the ``count``-th answer of ``seq`` (what the progress file
    says left), dropping a torn last record and answers written after it; the records kept.

    Output writes the log before its progress: a crash between the two leaves answers in
    the log that the restarted pipeline releases again; trimmed, the log holds each once.
    """
    data = np.fromfile(path, dtype=EVENT_DTYPE)  # whole records only
    keep = int(np.searchsorted(data["seq"], seq, "left")) + count
    with open(path, "r+b") as log:
        log.truncate(keep * EVENT_DTYPE.itemsize)
    return keep


def read_progress(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(seq, answers of it released) from a progress file; None if nothing was released."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < PROGRESS.size:
        return None
    seq, count = PROGRESS.unpack_from(data)
    return (seq, count) if seq > 0 else None


class Releaser:
    """Waits for durability, then counts and times what it releases."""

    def __init__(
        self,
        durable_in: Consumer,
        restart: RestartPoint | None = None,
        progress: str = "",
        release_log: str = "",
        sink: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        self.durable_in = durable_in
        self.sink = sink
        self.durable_seq = 0
        self.outcomes = Outcomes()
        resent = restart.journal_end if restart is not None else 0
        self.ack = HopLatency("ingest→ack", resent)
        self.match = HopLatency("ingest→match", resent)
        self.answered = 0  # distinct commands answered
        self.last_seq = 0  # the last command answered
        self.gaps = 0  # commands skipped (never answered)
        self.out_of_order = 0  # events of a command already left behind
        self.events = 0
        self.released_before = ReleasedBefore(restart)  # left before a restart: dropped
        self.tail = (0, 0)  # (last seq released, answers of it released)
        if restart is not None:
            self.last_seq = restart.state_seq
            if restart.released_of_first:
                self.tail = (restart.state_seq + 1, restart.released_of_first)
        self._log = -1
        if release_log:
            self._log = os.open(release_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._fd = -1
        if progress:
            self._fd = os.open(progress, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.pwrite(self._fd, PROGRESS.pack(*self.tail), 0)

    def _follow_durable(self, wait: bool) -> None:
        """Advance ``durable_seq`` to the last durable command (waiting for one if asked)."""
        durable_in = self.durable_in
        views = durable_in.wait(timeout=DURABLE_WAIT) if wait else durable_in.poll()
        if views:
            self.durable_seq = int(views[-1][-1]["seq"])
            durable_in.release()

    def handle(self, views: Views) -> None:
        """Hot: per view a few numpy reductions; nothing per event."""
        for view in views:
            need = int(view[-1]["seq"])
            if self.durable_seq < need:
                self._follow_durable(False)
            while self.durable_seq < need:
                with contextlib.suppress(WaitTimeoutError):
                    self._follow_durable(True)
            if self.sink is not None:  # whole: the gateway counts off what left itself
                self.sink(view)
            if self.released_before.left:
                view = view[self.released_before.take(view["seq"]) :]
            if len(view):
                self._release(view)

    def _release(self, events: np.ndarray) -> None:
        now = time.perf_counter_ns()
        self.outcomes.add(events)
        self.ack.record_fresh(events, now)
        self.match.record_durations(events["dt_match"][events["seq"] > self.match.resent_until])
        seqs = events["seq"]
        steps = np.diff(seqs, prepend=self.last_seq)
        self.out_of_order += int(np.count_nonzero(steps < 0))
        self.gaps += int(np.sum(steps[steps > 1] - 1))
        self.answered += int(np.count_nonzero(steps > 0))
        self.last_seq = max(self.last_seq, int(seqs[-1]))
        self.events += len(events)
        last = int(seqs[-1])
        if last == self.tail[0]:
            self.tail = (last, self.tail[1] + len(events))
        else:
            self.tail = (last, len(events) - int(np.searchsorted(seqs, last)))
        if self._log >= 0:
            os.write(self._log, events.tobytes())
        if self._fd >= 0:
            os.pwrite(self._fd, PROGRESS.pack(*self.tail), 0)

    def idle(self) -> None:
        self._follow_durable(False)  # keep the commands ring free for ingest

    def close(self) -> None:
        for fd in (self._fd, self._log):
            if fd >= 0:
                os.close(fd)
        self._fd = self._log = -1

    def counters(self) -> dict[str, int]:
        return {
            "events": self.events,
            "answered": self.answered,
            "durable_seq": self.durable_seq,
            "latency_p50_ns": int(self.ack.histogram.get_value_at_percentile(50)),
            "latency_p99_ns": int(self.ack.histogram.get_value_at_percentile(99)),
            **self.ack.counters(),
            **self.match.counters(),
        }

    def details(self) -> dict[str, Any]:
        return {
            **self.counters(),
            "last_seq": self.last_seq,
            "gaps": self.gaps,
            "out_of_order": self.out_of_order,
            "outcomes": list(self.outcomes.rows()),
            "latency_hdr": self.ack.encode(),
            "hops": {hop.name: hop.encode() for hop in (self.match, self.ack)},
        }


def run(
    commands_ring: str,
    events_ring: str,
    config: OutputConfig | None = None,
    control: ControlChannel | None = None,
    restart: RestartPoint | None = None,
    answers_ring: str = "",
) -> StageResult:
    """Run the output stage until matching finishes the events ring.

    ``answers_ring``: the ring to the order gateway (its producer; "": no gateway), whose
    doorbell ``config.answers_doorbell`` rings when the gateway sleeps.

    ``details``: ``events``, ``answered`` (distinct commands), ``last_seq``, ``gaps`` and
    ``out_of_order`` (both 0 when every command was answered once, in order),
    ``durable_seq``, ``outcomes`` (rows of ``Outcomes``), latency percentiles (ns), the
    encoded ingest→ack histogram and every hop's (``hops``).
    """
    config = config if config is not None else OutputConfig()
    commands = Ring.attach(commands_ring, COMMAND_DTYPE)
    events = Ring.attach(events_ring, EVENT_DTYPE)
    answers = Ring.attach(answers_ring, EVENT_DTYPE) if answers_ring else None
    doorbell = None
    releaser = None
    try:
        events_in = events.consumer(CONSUMER, wait_strategy(config.wait))
        durable_in = commands.consumer(CONSUMER, wait_strategy(config.wait))
        outputs = []
        if answers is not None:
            answers_out = answers.producer(wait_strategy(config.wait))
            if config.answers_doorbell:
                doorbell = Doorbell(config.answers_doorbell)
                answers_out.ring_doorbell(doorbell)
            outputs.append(answers_out)  # finished with the loop: the gateway's end
        sink = outputs[0].publish_batch if outputs else None  # a full ring: wait, never drop
        releaser = Releaser(durable_in, restart, config.progress, config.release_log, sink)
        rings = {"commands": commands, "events": events}
        if answers is not None:
            rings["answers"] = answers

        def status() -> dict[str, Any]:
            return {**releaser.counters(), "rings": ring_positions(rings)}

        loop = StageLoop(
            events_in, releaser.handle, outputs, control=control, idle=releaser.idle, status=status
        )
        stopped_by = loop.run()
        details = releaser.details()
        events_in.close()
        durable_in.close()
        for producer in outputs:
            producer.close()
        return StageResult("output", loop.counters, stopped_by, details)
    finally:
        if releaser is not None:
            releaser.close()
        if doorbell is not None:
            doorbell.close()
        commands.close()
        events.close()
        if answers is not None:
            answers.close()
