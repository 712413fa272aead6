"""Snapshots of a running pipeline: an ``Engine`` replica that follows the durable journal.

The pipeline's state is spread over three processes (ingest's throttles, risk, matching),
each busy on its own core; stopping them to snapshot would stall the flow, and stitching
three parts taken at one seq together needs a barrier through the stream. A replica does
not: it reads what the journal made durable and applies it, as a replay would, and saves
its state every ``every_records`` records (and when asked). It runs where there is spare
time (the supervisor's watch loop, a few milliseconds per step), costs one ``Engine`` pass
over the journal (the pipeline's stages do several times that work), never holds up a
stage, and its snapshots are by construction what a replay of the journal gives: a
restart, ``tradepipe replay`` and an audit all start from them.

It only reads records up to the durable seq it is given, so a snapshot never covers a
command the journal could still lose.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from stages.engine import Engine
from stages.persistence.journal_reader import JournalReader
from stages.persistence.recovery import Snapshotter


class JournalFollower:
    """Apply ``directory``'s durable records to ``engine`` in steps; snapshot on schedule."""

    def __init__(self, directory: str | Path, engine: Engine, snapshotter: Snapshotter) -> None:
        self.directory = Path(directory).expanduser()
        self.engine = engine
        self.snapshotter = snapshotter
        self.snapshots: list[Path] = []

    @property
    def applied(self) -> int:
        """The last seq applied."""
        return self.engine.last_seq

    def advance(self, durable_seq: int, budget: int = 1 << 16) -> int:
        """Apply up to ``budget`` records of ``applied + 1 .. durable_seq`` (a periodic
        snapshot is saved when one is due); returns how many were applied."""
        first = self.engine.last_seq + 1
        last = min(durable_seq, first + budget - 1)
        if last < first:
            return 0
        applied = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a block being written reads as a torn tail
            with JournalReader(self.directory) as reader:
                for batch in reader.batches(first, last):
                    self.engine.process(batch.copy())
                    applied += len(batch)
                    saved = self.snapshotter.after_batch(self.engine, self.engine.last_seq)
                    if saved is not None:
                        self.snapshots.append(saved)
        return applied

    def catch_up(self, durable_seq: int) -> None:
        """Apply everything up to ``durable_seq``."""
        while self.engine.last_seq < durable_seq and self.advance(durable_seq):
            pass

    def snapshot_now(self, durable_seq: int) -> tuple[int, Path]:
        """Catch up to ``durable_seq`` and save a snapshot there: (its seq, its path)."""
        self.catch_up(durable_seq)
        path = self.snapshotter.take(self.engine, self.engine.last_seq)
        self.snapshots.append(path)
        return self.engine.last_seq, path
