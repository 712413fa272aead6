"""The risk stage process: pre-trade checks onto the checked ring, settlement from matching.

Rings (``pipeline.topology`` names them):

* the commands ring, as consumer ``risk`` (beside the journaller): each batch is copied into
  claimed slots of the checked ring, stamped ``ts_risk`` and checked there in place
  (``RiskEngine.pre_trade_words``: reasons, holds, market buys' protection price), then
  published to matching;
* the events ring, as consumer ``risk``: matching's answers, copied out as they come into the
  open settlement window's list (so matching is never held up by an unsettled window);
* the checked ring again, as consumer ``risk`` declared ``after`` matching: how far
  matching has answered (it publishes a batch's events before it releases the batch).

The settlement-window rule of ``stages.engine`` is kept exactly, so the state equals the
``Engine``'s for the same stream however it is batched: commands fall into windows of
``settle_every`` seqs; before the first command of a later window is checked, risk waits
until matching has answered every command it was sent, takes all their events, and
settles them (``post_trade_words``), oldest first. The ``Engine`` settles a window when
its last seq is matched, or after a gap before the next window; nothing touches risk in
between, so settling lazily, just before the next window's first check, is the same. At the
end of the stream the open window stays unsettled unless its last seq closed it, like the
``Engine``'s, and is handed back with the result.

Back-pressure without deadlock: risk is its own slowest reader of the checked ring (it
releases its ``after matching`` cursor itself), so it never blocks in ``claim``: it claims
what is free, and when nothing is, catches up with matching (releasing, draining events).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import msgspec
import numpy as np

from ringbuffer import Consumer, Producer, Ring, WaitTimeoutError, wait_strategy
from ringbuffer.records import clone_records, concat_records, copy_records
from stages.engine import EngineConfig
from stages.latency import HopLatency
from stages.loop import IDLE_TIMEOUT as LOOP_IDLE_TIMEOUT
from stages.loop import ControlChannel, StageLoop, StageResult, Views, ring_positions
from stages.record_words import command_words, event_words
from stages.records import COMMAND_DTYPE, EVENT_DTYPE
from stages.restart import RestartPoint
from stages.risk.engine import RiskEngine

CONSUMER = "risk"
#: how long risk waits for matching before it drains events again (seconds)
CATCH_UP_TIMEOUT = 0.001
#: risk's idle wait on the commands ring while matching still owes answers: between two,
#: it drains matching's events (so matching never waits for room in the events ring)
IDLE_TIMEOUT = 0.005
#: the idle wait once matching answered everything and every event is in: nothing can
#: arrive on the events ring before risk publishes again, so it idles like every stage
#: (measured 4.2 % of a core idle when it woke every 5 ms)
CAUGHT_UP_TIMEOUT = LOOP_IDLE_TIMEOUT


class RiskStageConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    wait: str = "backoff"


class RiskStage:
    """The risk core between its rings: pre-trade per window chunk, lazy settlement."""

    def __init__(
        self,
        config: EngineConfig,
        checked_out: Producer,
        answered: Consumer,
        events_in: Consumer,
        restart: RestartPoint | None = None,
    ) -> None:
        self.every = config.settle_every
        self.checked_out = checked_out
        self.answered = answered  # the checked ring, after matching
        self.events_in = events_in
        self.unsettled: list[np.ndarray] = []  # event batches of the open window
        self.window = -1  # the window of the last command checked
        self.last_seq = 0
        self.settled_windows = 0
        resent = restart.journal_end if restart is not None else 0
        self.latency = HopLatency("ingest→risk", resent_until=resent)
        if restart is None:
            self.risk = RiskEngine(config.risk)
        else:  # the restart point's balances, holds and open window
            state = restart.engine()
            self.risk = state.risk
            unsettled = state.open_window_events()
            if len(unsettled):
                self.unsettled.append(unsettled)
            self.last_seq = restart.state_seq
            if restart.state_seq > 0:
                self.window = (restart.state_seq - 1) // self.every

    # --- the handler ------------------------------------------------------------------------
    def handle(self, views: Views) -> None:
        """Hot: per batch and per settlement window a few Python steps, none per command."""
        for view in views:
            self._check_view(view)
        self._drain_events()

    def _check_view(self, view: np.ndarray) -> None:
        seqs = view["seq"]
        n = len(view)
        every = self.every
        start = 0
        while start < n:
            window = (int(seqs[start]) - 1) // every
            if window != self.window:
                if self.window >= 0:  # events of the old window may still be on their way
                    self._await_matching()
                    self._settle()
                self.window = window
            end_seq = (window + 1) * every  # the last seq of this window
            stop = (
                n
                if int(seqs[n - 1]) <= end_seq
                else start + int(np.searchsorted(seqs[start:], end_seq, "right"))
            )
            self._check_chunk(view[start:stop])
            start = stop
        self.last_seq = int(seqs[n - 1])

    def _check_chunk(self, chunk: np.ndarray) -> None:
        """Copy ``chunk`` into the checked ring, stamp and check it there, publish it."""
        done = 0
        while done < len(chunk):
            slots = self._claim(len(chunk) - done)
            now = time.perf_counter_ns()
            for view in slots:
                copy_records(view, chunk[done : done + len(view)])
                self.latency.record_fresh(view, now)
                view["ts_risk"] = now
                self.risk.pre_trade_words(command_words(view))
                done += len(view)
            self.checked_out.publish()

    def _claim(self, n: int) -> tuple[np.ndarray, ...]:
        """Up to ``n`` free slots of the checked ring (at least one), catching up meanwhile."""
        while True:
            self._catch_up()
            slots = self.checked_out.try_claim(n)
            if slots:
                return slots
            # full: matching is behind; wait for it (and drain what it answers)
            with contextlib.suppress(WaitTimeoutError):
                self.answered.wait(timeout=CATCH_UP_TIMEOUT)
            self._drain_events()

    # --- following matching -----------------------------------------------------------------
    def _catch_up(self) -> None:
        """Release what matching has answered on the checked ring (never waits)."""
        if self.answered.poll():
            self.answered.release()

    def _drain_events(self) -> None:
        """Copy matching's events out of the events ring into the open window (never waits)."""
        views = self.events_in.poll()
        if views:
            for view in views:
                self.unsettled.append(clone_records(view))
            self.events_in.release()

    def _await_matching(self) -> None:
        """Wait until matching answered every command published, with all their events in."""
        target = self.checked_out.published
        while True:
            self._catch_up()
            if self.answered.released >= target:
                break
            with contextlib.suppress(WaitTimeoutError):
                self.answered.wait(timeout=CATCH_UP_TIMEOUT)
            self._drain_events()  # matching may wait for room in the events ring
        self._drain_events()  # published before matching released the last command

    def _settle(self) -> None:
        for events in self.unsettled:
            self.risk.post_trade_words(event_words(events))
        if self.unsettled:
            self.settled_windows += 1
        self.unsettled.clear()

    # --- the end ----------------------------------------------------------------------------
    def idle(self) -> float | None:
        """Follow matching between commands; a longer wait once it owes nothing."""
        self._catch_up()
        self._drain_events()  # after the catch-up: every event of what it answered is in
        if self.answered.released >= self.checked_out.published:
            return CAUGHT_UP_TIMEOUT
        return None

    def finish(self) -> None:
        """End of the commands: take every answer in; settle if the last seq closed a window."""
        self._await_matching()
        if self.last_seq and self.last_seq % self.every == 0:
            self._settle()

    def unsettled_events(self) -> np.ndarray:
        if not self.unsettled:
            return np.zeros(0, dtype=EVENT_DTYPE)
        return concat_records(self.unsettled)


def run(
    commands_ring: str,
    checked_ring: str,
    events_ring: str,
    config: RiskStageConfig | None = None,
    control: ControlChannel | None = None,
    restart: RestartPoint | None = None,
) -> StageResult:
    """Run the risk stage (from the ``restart`` point's state, if given); returns the
    loop's counters and the risk state.

    ``details``: ``last_seq``, ``risk_hash`` (``RiskEngine.state_hash``), ``unsettled`` (the
    open window's events as bytes of ``EVENT_DTYPE`` records, as the ``Engine`` keeps them).
    """
    config = config if config is not None else RiskStageConfig()
    wait = wait_strategy(config.wait)
    commands = Ring.attach(commands_ring, COMMAND_DTYPE)
    checked = Ring.attach(checked_ring, COMMAND_DTYPE)
    events = Ring.attach(events_ring, EVENT_DTYPE)
    try:
        commands_in = commands.consumer(CONSUMER, wait)
        checked_out = checked.producer(wait)
        stage = RiskStage(
            config.engine,
            checked_out,
            checked.consumer(CONSUMER, wait_strategy(config.wait)),
            events.consumer(CONSUMER, wait_strategy(config.wait)),
            restart,
        )

        def status() -> dict[str, Any]:
            return {
                "last_seq": stage.last_seq,
                "unsettled_events": sum(map(len, stage.unsettled)),
                "settled_windows": stage.settled_windows,
                **stage.latency.counters(),
                "rings": ring_positions(
                    {"commands": commands, "checked": checked, "events": events}
                ),
            }

        loop = StageLoop(
            commands_in,
            stage.handle,
            [checked_out],
            control=control,
            idle=stage.idle,
            finish=stage.finish,
            status=status,
            idle_timeout=IDLE_TIMEOUT,
        )
        stopped_by = loop.run()
        details = {
            "last_seq": stage.last_seq,
            "risk_hash": stage.risk.state_hash(),
            "unsettled": stage.unsettled_events().tobytes(),
            "settled_windows": stage.settled_windows,
            "hops": {stage.latency.name: stage.latency.encode()},
        }
        for role in (commands_in, checked_out, stage.answered, stage.events_in):
            role.close()
        return StageResult("risk", loop.counters, stopped_by, details)
    finally:
        for ring in (commands, checked, events):
            ring.close()
