"""Persistence: the checksummed journal, atomic snapshots and exact recovery from both.

Nothing acknowledged may be lost and a crash is never replayed as data: the journal holds the
sequenced command stream (the input of the deterministic risk + matching chain), snapshots
hold that chain's state at a sequence, and recovery rebuilds the state from the newest valid
snapshot plus the journal after it. See ``docs/journal.md`` for the on-disk formats.
"""

from stages.persistence.journal import (
    FsyncPolicy,
    JournalAccessError,
    JournalBusyError,
    JournalCorruptError,
    JournalError,
    JournalFullError,
    JournalLayoutError,
    JournalLostRecordsError,
    JournalReader,
    JournalWriter,
    TornTailWarning,
    prune_segments,
    verify_journal,
)
from stages.persistence.recovery import (
    RecoveryError,
    Replayable,
    ReplayResult,
    SnapshotDirectoryError,
    Snapshotter,
    UnknownStartError,
    recover,
    replay_journal,
)
from stages.persistence.run_files import RunDirectoryError, remove_run_files
from stages.persistence.snapshots import (
    Snapshot,
    SnapshotCorruptWarning,
    SnapshotError,
    SnapshotFailedWarning,
    SnapshotStore,
    SnapshotWriteError,
)

__all__ = [
    "FsyncPolicy",
    "JournalAccessError",
    "JournalBusyError",
    "JournalCorruptError",
    "JournalError",
    "JournalFullError",
    "JournalLayoutError",
    "JournalLostRecordsError",
    "JournalReader",
    "JournalWriter",
    "RecoveryError",
    "ReplayResult",
    "Replayable",
    "RunDirectoryError",
    "Snapshot",
    "SnapshotCorruptWarning",
    "SnapshotDirectoryError",
    "SnapshotError",
    "SnapshotFailedWarning",
    "SnapshotStore",
    "SnapshotWriteError",
    "Snapshotter",
    "TornTailWarning",
    "UnknownStartError",
    "prune_segments",
    "recover",
    "remove_run_files",
    "replay_journal",
    "verify_journal",
]
