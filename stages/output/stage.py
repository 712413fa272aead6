"""The output stage process: release each answer once its command is durable; count, time.

Rings: consumer ``output`` of the events ring, and consumer ``output`` of the commands
ring declared ``after`` persistence, whose released cursor only moves once a batch is
durable (``stages.persistence.stage``): the commands this consumer can see are exactly the
durable ones (a dependency barrier; nothing else is read from them). An events batch is
released (counted, timed, handed on) only once the durable seq reaches its last event's
command, so no answer leaves before its command is in the journal under the fsync policy.
The gateway and market-data publishers of the next issues hang off ``release``.

Per released batch: ``Outcomes.add`` (counts by kind and reason), ingest→ack latency of
every event into an HDR histogram (one ``record_value`` per distinct ingest stamp: ingest
stamps a whole batch at once), and a check that every command is answered once, in
order: event seqs never go back and never skip a command.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import msgspec
import numpy as np
from hdrh.histogram import HdrHistogram

from ringbuffer import Consumer, Ring, WaitTimeoutError, wait_strategy
from stages.loop import ControlChannel, StageLoop, StageResult, Views
from stages.outcomes import Outcomes
from stages.records import COMMAND_DTYPE, EVENT_DTYPE

CONSUMER = "output"
#: the most a latency can be (ns) for the histogram: one minute
MAX_LATENCY_NS = 60_000_000_000
DURABLE_WAIT = 0.05


class OutputConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    wait: str = "backoff"


class Releaser:
    """Waits for durability, then counts and times what it releases."""

    def __init__(self, durable_in: Consumer) -> None:
        self.durable_in = durable_in
        self.durable_seq = 0
        self.outcomes = Outcomes()
        self.latency = HdrHistogram(1, MAX_LATENCY_NS, 3)
        self.answered = 0  # distinct commands answered
        self.last_seq = 0  # the last command answered
        self.gaps = 0  # commands skipped (never answered)
        self.out_of_order = 0  # events of a command already left behind
        self.events = 0

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
            self._release(view)

    def _release(self, events: np.ndarray) -> None:
        now = time.perf_counter_ns()
        self.outcomes.add(events)
        stamps, counts = np.unique(events["ts_ingest"], return_counts=True)
        for stamp, count in zip(stamps.tolist(), counts.tolist(), strict=True):
            self.latency.record_value(min(max(1, now - stamp), MAX_LATENCY_NS), count)
        seqs = events["seq"]
        steps = np.diff(seqs, prepend=self.last_seq)
        self.out_of_order += int(np.count_nonzero(steps < 0))
        self.gaps += int(np.sum(steps[steps > 1] - 1))
        self.answered += int(np.count_nonzero(steps > 0))
        self.last_seq = max(self.last_seq, int(seqs[-1]))
        self.events += len(events)

    def idle(self) -> None:
        self._follow_durable(False)  # keep the commands ring free for ingest

    def details(self) -> dict[str, Any]:
        latency = self.latency
        return {
            "events": self.events,
            "answered": self.answered,
            "last_seq": self.last_seq,
            "gaps": self.gaps,
            "out_of_order": self.out_of_order,
            "durable_seq": self.durable_seq,
            "outcomes": list(self.outcomes.rows()),
            "latency_p50_ns": latency.get_value_at_percentile(50),
            "latency_p99_ns": latency.get_value_at_percentile(99),
            "latency_hdr": latency.encode(),
        }


def run(
    commands_ring: str,
    events_ring: str,
    config: OutputConfig | None = None,
    control: ControlChannel | None = None,
) -> StageResult:
    """Run the output stage until matching finishes the events ring.

    ``details``: ``events``, ``answered`` (distinct commands), ``last_seq``, ``gaps`` and
    ``out_of_order`` (both 0 when every command was answered once, in order),
    ``durable_seq``, ``outcomes`` (rows of ``Outcomes``), latency percentiles (ns) and the
    encoded histogram.
    """
    config = config if config is not None else OutputConfig()
    commands = Ring.attach(commands_ring, COMMAND_DTYPE)
    events = Ring.attach(events_ring, EVENT_DTYPE)
    try:
        events_in = events.consumer(CONSUMER, wait_strategy(config.wait))
        durable_in = commands.consumer(CONSUMER, wait_strategy(config.wait))
        releaser = Releaser(durable_in)

        def status() -> dict[str, Any]:
            return {
                "events": releaser.events,
                "answered": releaser.answered,
                "durable_seq": releaser.durable_seq,
                "latency_p50_ns": releaser.latency.get_value_at_percentile(50),
                "latency_p99_ns": releaser.latency.get_value_at_percentile(99),
            }

        loop = StageLoop(
            events_in, releaser.handle, control=control, idle=releaser.idle, status=status
        )
        stopped_by = loop.run()
        details = releaser.details()
        events_in.close()
        durable_in.close()
        return StageResult("output", loop.counters, stopped_by, details)
    finally:
        commands.close()
        events.close()
