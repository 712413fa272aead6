"""The in-process run: synthetic load → Engine → journal and snapshots → recovery check.

Until the stage processes exist this is ``tradepipe run``'s main job, and afterwards the
reference the pipeline is compared with. Order of work per batch is the pipeline's:
ingest stamps sequence and time, the batch is journaled (durable under the fsync policy)
*before* it is processed, so an acknowledged order is never lost, then the engine
answers it. At the end the journal is replayed twice into fresh engines — from the
newest snapshot (what a restart does) and from the initial state (an audit of the whole
journal) — and both state hashes must match the live one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

from pipeline.config import RunConfig
from stages.engine import Engine
from stages.ingest.synthetic import Stamper, SyntheticFlow
from stages.outcomes import Outcomes
from stages.persistence.journal_errors import JournalError
from stages.persistence.journal_segments import list_segments
from stages.persistence.journal_writer import JournalWriter
from stages.persistence.recovery import Snapshotter, replay_journal
from stages.persistence.run_files import (
    RunDirectoryError,
    inspect_run_directories,
    remove_run_files,
)
from stages.persistence.snapshots import SnapshotStore, write_initial_state
from stages.records import COMMAND_DTYPE


@dataclass(frozen=True)
class ReplayCheck:
    """One replay of the journal: where it started, how much it replayed, what it rebuilt."""

    from_seq: int
    replayed: int
    seconds: float
    state_hash: str


@dataclass
class RunReport:
    """What a run did, for the summary."""

    commands: int = 0
    outcomes: Outcomes = field(default_factory=Outcomes)
    seconds: float = 0.0
    engine_seconds: float = 0.0
    journal_seconds: float = 0.0
    latency: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 60_000_000_000, 3))
    journal_bytes: int = 0
    durable_seq: int = 0
    snapshots: int = 0
    snapshot_failures: list[str] = field(default_factory=list)  # periodic saves refused
    state_hash: str = ""
    checks: dict[str, ReplayCheck] = field(default_factory=dict)

    @property
    def recovered(self) -> bool:
        return bool(self.checks) and all(
            check.state_hash == self.state_hash for check in self.checks.values()
        )


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the journal was closed cleanly, durable up to ``durable_seq``."""

    def __init__(self, journal_dir: Path, durable_seq: int) -> None:
        super().__init__(f"the journal {journal_dir} is durable up to seq {durable_seq}")
        self.journal_dir = journal_dir
        self.durable_seq = durable_seq


def prepare_directories(config: RunConfig, fresh: bool) -> list[Path]:
    """Refuse to mix runs in one journal; with ``fresh``, remove the previous run's files.

    Only tradepipe's own files are ever removed, under the journal's writer lock, and never
    a directory (``stages.persistence.run_files``). Returns the files removed. Raises
    :class:`~stages.persistence.run_files.RunDirectoryError`: ``busy`` while another process
    writes the journal, ``previous_run`` when an earlier run is there and ``fresh`` is not
    given (the message names the ways on), or for a directory that cannot be used.
    """
    journal, snapshots = config.journal.directory, config.snapshots.directory
    if fresh:
        return remove_run_files(journal, snapshots)
    files = inspect_run_directories(journal, snapshots)
    if files.holds_a_run:
        j, s = files.journal_dir, files.snapshot_dir
        with_snapshots = f" --snapshots {s}" if files.snapshots else ""
        raise RunDirectoryError(
            f"{j if files.segments else s} already holds a run; pass --fresh only to delete it "
            f"({len(files.segments)} journal segment(s), {len(files.snapshots)} snapshot(s)). "
            f"To look at it first: tradepipe journal verify {j}, and tradepipe replay "
            f"--journal {j}{with_snapshots}; to keep it: move {j} and {s} aside, or point "
            "journal.directory / snapshots.directory elsewhere",
            j if files.segments else s,
            previous_run=True,
        )
    return []


def run_in_process(
    config: RunConfig, progress: Callable[[int, int], None] | None = None
) -> RunReport:
    """Run the configured load through the engine, journaling it; then prove recovery."""
    report = RunReport()
    engine = Engine(config.engine)
    symbols = [instrument.symbol for instrument in config.engine.risk.instruments]
    flow = SyntheticFlow(symbols, accounts=config.load.accounts, seed=config.load.seed)
    stamper = Stamper()
    journal_dir = Path(config.journal.directory).expanduser()
    snapshot_dir = Path(config.snapshots.directory).expanduser()
    store = SnapshotStore(snapshot_dir, keep=config.snapshots.keep)
    snapshotter = Snapshotter(store, config.snapshots.every_records)
    journal = JournalWriter(  # first: its lock keeps a second run out of both directories
        journal_dir,
        COMMAND_DTYPE,
        fsync=config.journal.fsync,
        fsync_interval_ms=config.journal.fsync_interval_ms,
        segment_bytes=config.journal.segment_bytes,
    )
    try:
        # the initial state, kept with the journal and as snapshot 0: a replay needs no config
        initial = engine.snapshot()
        write_initial_state(journal_dir, initial)
        snapshotter.take(engine, 0)
    except BaseException:
        # a failed start leaves nothing behind, so the next start is not refused
        journal.close_quietly()
        if journal.next_seq == 1:  # nothing journaled: all of it is this start's
            usable = snapshot_dir.is_dir() and not snapshot_dir.is_symlink()
            with contextlib.suppress(JournalError):  # never hide why the start failed
                remove_run_files(journal_dir, snapshot_dir if usable else None)
        raise
    clock = time.perf_counter_ns
    try:
        started = _run_load(config, engine, journal, flow, stamper, snapshotter, report, progress)
    except KeyboardInterrupt:
        # the journal was closed on the way out (synced under its policy): say how far
        raise RunInterrupted(journal_dir, journal.durable_seq) from None
    report.seconds = (clock() - started) / 1e9
    report.state_hash = engine.state_hash()
    report.snapshot_failures = list(snapshotter.failures)
    report.journal_bytes = sum(p.stat().st_size for p in list_segments(journal_dir))

    for name, newest in (("restart", None), ("audit", 0)):
        started = clock()
        result = replay_journal(
            journal_dir,
            snapshot_dir,
            lambda: Engine(config.engine),
            snapshot_max_seq=newest,
        )
        report.checks[name] = ReplayCheck(
            result.snapshot_seq or 0, result.replayed, (clock() - started) / 1e9, result.state_hash
        )
    return report


def _run_load(
    config: RunConfig,
    engine: Engine,
    journal: JournalWriter,
    flow: SyntheticFlow,
    stamper: Stamper,
    snapshotter: Snapshotter,
    report: RunReport,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Fund the accounts, then journal and process the load; return when timing started."""
    assets = [asset.asset for asset in config.engine.risk.assets]
    clock = time.perf_counter_ns
    with journal:
        funding = stamper.stamp(flow.funding(assets, config.load.funding))
        _handle(engine, journal, funding, RunReport())  # setup: kept out of the figures
        started = clock()
        remaining = config.load.orders
        while remaining > 0:
            batch = stamper.stamp(flow.next(min(config.load.batch, remaining)))
            _handle(engine, journal, batch, report)
            remaining -= len(batch)
            report.commands += len(batch)
            if snapshotter.after_batch(engine, stamper.last_seq) is not None:
                report.snapshots += 1
            if progress is not None:
                progress(config.load.orders - remaining, config.load.orders)
        journal.sync()
        report.durable_seq = journal.durable_seq
    return started


def _handle(engine: Engine, journal: JournalWriter, batch: np.ndarray, report: RunReport) -> None:
    """Journal, then process one stamped batch; account for what came out."""
    clock = time.perf_counter_ns
    t0 = clock()
    journal.append(batch)
    t1 = clock()
    events = engine.process(batch)
    t2 = clock()
    report.journal_seconds += (t1 - t0) / 1e9
    report.engine_seconds += (t2 - t1) / 1e9
    report.latency.record_value(max(1, t2 - int(batch["ts_ingest"][0])), len(batch))
    report.outcomes.add(events)
