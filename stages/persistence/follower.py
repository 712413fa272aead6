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

import numpy as np

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

    #: the most records one ``advance`` applies by default (one engine pass)
    step = 1 << 16

    def advance(self, durable_seq: int, budget: int | None = None) -> int:
        """Apply up to ``budget`` (default ``step``) records of ``applied + 1 ..
        durable_seq``, saving the periodic snapshot at the seq it falls due; returns how
        many were applied.

        One engine pass per snapshot period the step touches, not one per journal block:
        the state is the same however the stream is batched, and each pass has a fixed cost
        (kernel dispatches) that per block made most of the replica's time."""
        first = self.engine.last_seq + 1
        last = min(durable_seq, first + (self.step if budget is None else budget) - 1)
        if last < first:
            return 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a block being written reads as a torn tail
            with JournalReader(self.directory) as reader:
                blocks = list(reader.batches(first, last))
        if not blocks:
            return 0
        records = np.concatenate(blocks)
        snapshotter, seqs, done = self.snapshotter, records["seq"], 0
        while done < len(records):  # one pass up to each seq a snapshot falls due at
            due = snapshotter.last_snapshot_seq + snapshotter.every_records
            cut = max(int(np.searchsorted(seqs, due, "right")), done + 1)
            self.engine.process(records[done:cut])
            done = cut
            saved = snapshotter.after_batch(self.engine, self.engine.last_seq)
            if saved is not None:
                self.snapshots.append(saved)
        return len(records)

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
