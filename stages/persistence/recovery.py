"""Exact recovery: newest valid snapshot + replay of the journal after it = the state before.

Risk and matching are deterministic functions of the sequenced command stream, so their
state after a crash is rebuilt by restoring the newest valid snapshot and feeding the
journal's records after it, in order, through ``process``; ``state_hash`` proves it equals
the state of an uninterrupted run. Any state machine following :class:`Replayable` works:
the matching engine, the risk + matching ``Engine``, or a test's tiny counter.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from stages.persistence.journal_blocks import TornTail
from stages.persistence.journal_durability import read_durable_mark
from stages.persistence.journal_errors import JournalError
from stages.persistence.journal_reader import JournalReader
from stages.persistence.snapshots import (
    SnapshotError,
    SnapshotFailedWarning,
    SnapshotStore,
    SnapshotWriteError,
    read_initial_state,
)
from stages.records import COMMAND_DTYPE


@runtime_checkable
class Replayable(Protocol):
    """A deterministic state machine over sequenced command batches."""

    def process(self, commands: np.ndarray) -> np.ndarray: ...  # COMMAND batch -> EVENT batch

    def snapshot(self) -> bytes: ...

    @classmethod
    def restore(cls, data: bytes) -> Replayable: ...

    def state_hash(self) -> str: ...


class RecoveryError(JournalError):
    """Journal and snapshots do not fit together (a gap, or a snapshot ahead of the journal),
    or the state to start from cannot be known (no snapshot, no stored initial state and no
    configuration given)."""


class UnknownStartError(RecoveryError):
    """The state to start from cannot be known: no valid snapshot, no initial state kept
    with the journal, and no configuration given (``factory=None``)."""


class SnapshotDirectoryError(RecoveryError):
    """The snapshot directory named does not exist or is not a directory."""


@dataclass
class ReplayResult:
    """What recovery rebuilt: the state, how far it goes, and where it started from."""

    state: Any
    last_seq: int  # the last sequence applied to ``state`` (0 when nothing was)
    snapshot_seq: int | None  # the snapshot it started from, None when from an empty state
    snapshot_path: Path | None
    replayed: int  # journal records fed through ``process``
    torn: list[TornTail] = field(default_factory=list)

    @property
    def state_hash(self) -> str:
        return self.state.state_hash()


def _restorer(factory: Callable[[], Replayable]) -> Callable[[bytes], Replayable]:
    restore = getattr(factory, "restore", None)
    if callable(restore):
        return restore
    return type(factory()).restore


def replay_journal(
    journal_dir: str | os.PathLike[str],
    snapshot_dir: str | os.PathLike[str] | None,
    factory: Callable[[], Replayable] | None,
    *,
    dtype: np.dtype = COMMAND_DTYPE,
    restore: Callable[[bytes], Replayable] | None = None,
    repair: bool = False,
    to_seq: int | None = None,
    on_events: Callable[[np.ndarray], None] | None = None,
    snapshot_max_seq: int | None = None,
) -> ReplayResult:
    """Rebuild state from the newest valid snapshot (if any) and the journal after it.

    Where replay starts: the newest valid snapshot of ``snapshot_dir`` (covering at most
    ``snapshot_max_seq`` and ``to_seq``); else ``factory()``, an empty state machine built
    from a configuration the caller knows; else, with ``factory=None``, the initial state
    kept beside the journal (``initial-state.tps``). With ``factory=None`` and none of these,
    the configuration the journal was written under cannot be known and
    :class:`RecoveryError` says so (never a default engine). ``restore`` (default:
    ``factory.restore`` or the class of ``factory()``'s) rebuilds a state machine from a
    snapshot payload; it is required with ``factory=None``.

    A ``snapshot_dir`` that is given but does not exist (or is not a directory) is an
    error. A torn journal tail ends the replay with a warning (and is cut off if
    ``repair``); corruption raises
    :class:`~stages.persistence.journal_errors.JournalCorruptError`; a journal that does not
    join its snapshot raises :class:`RecoveryError`. ``snapshot_max_seq`` starts from an older
    snapshot (0: the initial state) to replay more of the journal, e.g. for an audit.
    This is what ``tradepipe replay`` calls.
    """
    if factory is None and restore is None:
        raise ValueError("replay_journal: factory=None needs restore= to rebuild a snapshot")
    if to_seq is not None and to_seq < 0:
        raise RecoveryError(f"replay up to seq {to_seq} is impossible: seqs start at 0")
    if snapshot_dir is not None:
        snapshots = Path(snapshot_dir).expanduser()
        if not snapshots.exists():
            raise SnapshotDirectoryError(
                f"snapshot directory {snapshots} does not exist; name the run's snapshot "
                "directory, or leave it out to replay from the initial state"
            )
        if not snapshots.is_dir():
            raise SnapshotDirectoryError(f"snapshot directory {snapshots} is not a directory")
    with JournalReader(Path(journal_dir).expanduser(), dtype, repair=repair) as reader:
        newest = (
            to_seq
            if snapshot_max_seq is None
            else min(snapshot_max_seq, to_seq if to_seq is not None else snapshot_max_seq)
        )
        return _replay(
            reader, journal_dir, snapshot_dir, factory, restore, to_seq, on_events, newest
        )


def _replay(
    reader: JournalReader,
    journal_dir: str | os.PathLike[str],
    snapshot_dir: str | os.PathLike[str] | None,
    factory: Callable[[], Replayable] | None,
    restore: Callable[[bytes], Replayable] | None,
    to_seq: int | None,
    on_events: Callable[[np.ndarray], None] | None,
    snapshot_max_seq: int | None,
) -> ReplayResult:
    snapshot = None
    if snapshot_dir is not None:
        try:
            snapshot = SnapshotStore(snapshot_dir).latest(max_seq=snapshot_max_seq)
        except SnapshotError as error:
            raise RecoveryError(str(error)) from None
    if snapshot is None and factory is None:
        try:
            snapshot = read_initial_state(reader.directory)
        except SnapshotError as error:
            raise UnknownStartError(
                f"{error}; the configuration the journal was written under cannot be known "
                "from it: pass the run's config (--config)"
            ) from None
        if snapshot is None:
            where = (
                f"no valid snapshot in {snapshot_dir}"
                + ("" if snapshot_max_seq is None else f" covering seq {snapshot_max_seq} or less")
                if snapshot_dir is not None
                else "no snapshot directory given"
            )
            raise UnknownStartError(
                f"cannot tell which engine configuration journal {journal_dir} was written "
                f"under: {where}, and the journal keeps no initial state; pass the run's "
                "config (--config) to replay from its initial state"
            )
    first = reader.first_seq
    if snapshot is not None:
        rebuild = restore if restore is not None else _restorer(factory)  # type: ignore[arg-type]
        state = rebuild(snapshot.payload)
        start = snapshot.seq + 1
        if first is not None and first > start:
            raise RecoveryError(
                f"journal {journal_dir} starts at seq {first} but the newest valid snapshot "
                f"{snapshot.path} covers only up to seq {snapshot.seq}: seqs {start}..{first - 1} "
                "are missing"
            )
    else:
        assert factory is not None
        state = factory()
        start = first if first is not None else 1
        if first is not None and first > 1:
            raise RecoveryError(
                f"journal {journal_dir} starts at seq {first} and no valid snapshot covers "
                f"seqs before it (snapshot directory: {snapshot_dir}); recovery needs one"
            )
    last = start - 1
    replayed = 0
    for batch in reader.batches(from_seq=start, to_seq=to_seq):
        events = state.process(batch)
        if on_events is not None:
            on_events(events)
        replayed += len(batch)
        last = int(batch["seq"][-1])
    journal_end = reader.last_seq if reader.last_seq is not None else last
    if first is None:
        journal_end = 0
    if to_seq is None or to_seq > journal_end:
        mark = read_durable_mark(reader.directory)
        newest_first = reader.segments[-1].first_seq if reader.segments else None
        missing = (
            mark.missing_after(journal_end, newest_first, proven_only=True)
            if mark is not None
            else None
        )
        if missing is not None:
            raise RecoveryError(
                f"journal {journal_dir} ends at seq {journal_end}, but {missing.describe()}; "
                "the state it held cannot be rebuilt (tradepipe journal verify says more)"
            )
    if snapshot is not None and journal_end < snapshot.seq:
        raise RecoveryError(
            f"snapshot {snapshot.path} covers up to seq {snapshot.seq} but journal "
            f"{journal_dir} ends at seq {journal_end}: the journal lost records the snapshot "
            "holds (was it written with fsync 'never'?); new records would reuse their seqs"
        )
    return ReplayResult(
        state=state,
        last_seq=max(last, 0),
        snapshot_seq=snapshot.seq if snapshot is not None else None,
        snapshot_path=snapshot.path if snapshot is not None else None,
        replayed=replayed,
        torn=list(reader.repairs),
    )


def recover(
    journal_dir: str | os.PathLike[str],
    snapshot_dir: str | os.PathLike[str] | None,
    factory: Callable[[], Replayable],
    *,
    dtype: np.dtype = COMMAND_DTYPE,
    restore: Callable[[bytes], Replayable] | None = None,
) -> tuple[Replayable, int]:
    """Recover after a crash: (state machine, last seq applied); a torn tail is cut off.

    The journal writer reopened afterwards continues at ``last seq + 1``.
    """
    result = replay_journal(
        journal_dir, snapshot_dir, factory, dtype=dtype, restore=restore, repair=True
    )
    return result.state, result.last_seq


class Snapshotter:
    """Takes a snapshot every ``every_records`` records applied, or when asked."""

    def __init__(self, store: SnapshotStore, every_records: int) -> None:
        if every_records < 1:
            raise ValueError(f"snapshot every_records={every_records} must be >= 1")
        self.store = store
        self.every_records = every_records
        self.last_snapshot_seq = 0
        self.failures: list[str] = []

    def after_batch(self, state: Replayable, last_seq: int) -> Path | None:
        """Call after each processed batch; saves a snapshot when one is due.

        A save the system refuses (a full disk...) does not stop the run: the journal is
        what makes commands durable, a snapshot only shortens recovery. The failure is one
        :class:`SnapshotFailedWarning` and an entry in ``failures``, the temp file is gone,
        and the next snapshot is tried ``every_records`` later.
        """
        if last_seq - self.last_snapshot_seq >= self.every_records:
            try:
                return self.take(state, last_seq)
            except SnapshotWriteError as error:
                self.last_snapshot_seq = last_seq
                message = f"snapshot at seq {last_seq} not saved, the run goes on: {error}"
                self.failures.append(message)
                warnings.warn(message, SnapshotFailedWarning, stacklevel=2)
        return None

    def take(self, state: Replayable, last_seq: int) -> Path:
        """Snapshot ``state`` (which must have applied exactly up to ``last_seq``) now."""
        path = self.store.save(last_seq, state.snapshot())
        self.last_snapshot_seq = last_seq
        return path
