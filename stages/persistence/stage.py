"""The persistence stage process: journal every command batch; its cursor is the durable seq.

It reads the commands ring in parallel with risk (the LMAX journaller) and appends each
batch to the journal under the fsync policy. Its consumer cursor on the commands ring is
how far the journal is durable: it releases a batch only once the journal says the batch is
durable (``JournalWriter.durable_seq``), so the output stage, a consumer declared ``after``
persistence on the same ring, sees exactly the commands that may be acknowledged (a
dependency barrier, no extra message).

Policies: ``batch`` fsyncs every append (group commit: one fsync per ring batch);
``never`` counts a written batch as durable (what that policy promises). ``interval``
holds batches (the loop does not release them) until a sync covers them: it syncs when
the interval has passed, or at once when no new command arrived since the last append
(the stream paused: nobody gains from waiting), so under load it fsyncs at most every
``fsync_interval_ms`` and an idle stream is durable without delay.

The initial state (an ``Engine`` of the configuration, snapshot at seq 0) is written
beside the journal first, so the journal alone can be replayed (``tradepipe replay``).
Periodic snapshots are the supervisor's next step (they need the risk and matching state).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec

from ringbuffer import Ring, wait_strategy
from stages.engine import Engine, EngineConfig
from stages.latency import HopLatency
from stages.loop import ControlChannel, StageLoop, StageResult, Views, ring_positions
from stages.persistence.journal_durability import FsyncPolicy
from stages.persistence.journal_writer import JournalWriter
from stages.persistence.snapshots import write_initial_state
from stages.records import COMMAND_DTYPE

CONSUMER = "persistence"


class PersistenceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the journal goes and when it is forced to disk."""

    directory: str
    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    fsync: str = "batch"
    fsync_interval_ms: float = 5.0
    segment_bytes: int = 64 << 20
    wait: str = "backoff"


class Journaller:
    """The stage's handler: append what is new, and say when the batch may be released."""

    def __init__(self, journal: JournalWriter) -> None:
        self.journal = journal
        self.appended = 0
        self._interval = journal.fsync is FsyncPolicy.INTERVAL
        # what the journal holds when this stage starts is sent again after a restart
        self.durable = HopLatency("ingest→durable", resent_until=journal.next_seq - 1)

    def append(self, views: Views) -> bool:
        """Hot: one journal block per new view; True once everything in ``views`` is durable.

        ``views`` may begin with records held from earlier calls (already journaled, not
        yet durable under ``interval``); seqs are contiguous, so they are skipped by count.
        """
        journal = self.journal
        skip = journal.next_seq - int(views[0][0]["seq"])
        new = 0
        for view in views:
            if skip >= len(view):
                skip -= len(view)
                continue
            fresh = view[skip:] if skip else view
            skip = 0
            journal.append(fresh)
            new += len(fresh)
        self.appended += new
        if self._interval:
            if new == 0:
                journal.sync()  # only held records: the stream paused, make them durable now
            else:
                journal.maybe_sync()
            if journal.durable_seq < journal.written_seq:
                return False
        # batch: synced by append; never: written is durable; interval: synced now
        now = time.perf_counter_ns()
        for view in views:
            self.durable.record_fresh(view, now)
        return True


def run(
    commands_ring: str,
    config: PersistenceConfig,
    control: ControlChannel | None = None,
) -> StageResult:
    """Run the persistence stage as consumer ``persistence`` of ``commands_ring``.

    Returns the loop's counters and the journal's ``durable_seq`` and ``appended`` count.
    """
    directory = Path(config.directory).expanduser()
    journal = JournalWriter(
        directory,
        COMMAND_DTYPE,
        fsync=config.fsync,
        fsync_interval_ms=config.fsync_interval_ms,
        segment_bytes=config.segment_bytes,
    )
    ring = Ring.attach(commands_ring, COMMAND_DTYPE)
    try:
        if journal.next_seq == 1:
            write_initial_state(directory, Engine(config.engine).snapshot())
        consumer = ring.consumer(CONSUMER, wait_strategy(config.wait))
        journaller = Journaller(journal)

        def status() -> dict[str, Any]:
            return {
                "durable_seq": journal.durable_seq,
                "written_seq": journal.written_seq,
                **journaller.durable.counters(),
                "rings": ring_positions({"commands": ring}),
            }

        loop = StageLoop(
            consumer, journaller.append, control=control, finish=journal.sync, status=status
        )
        stopped_by = loop.run()
        journal.close()
        details = {
            "durable_seq": journal.durable_seq,
            "appended": journaller.appended,
            "hops": {journaller.durable.name: journaller.durable.encode()},
        }
        consumer.close()
        return StageResult("persistence", loop.counters, stopped_by, details)
    finally:
        journal.close_quietly()
        ring.close()
