"""Persistence: the checksummed journal, atomic snapshots and exact recovery from both.

Nothing acknowledged may be lost and a crash is never replayed as data: the journal holds the
sequenced command stream (the input of the deterministic risk + matching chain), snapshots
hold that chain's state at a sequence, and recovery rebuilds the state from the newest valid
snapshot plus the journal after it. See ``docs/journal.md`` for the on-disk formats.
"""

from stages.persistence.journal import (
    FsyncPolicy,
    JournalCorruptError,
    JournalError,
    JournalFullError,
    JournalLayoutError,
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
    Snapshotter,
    recover,
    replay_journal,
)
from stages.persistence.snapshots import Snapshot, SnapshotCorruptWarning, SnapshotStore

__all__ = [
    "FsyncPolicy",
    "JournalCorruptError",
    "JournalError",
    "JournalFullError",
    "JournalLayoutError",
    "JournalReader",
    "JournalWriter",
    "RecoveryError",
    "ReplayResult",
    "Replayable",
    "Snapshot",
    "SnapshotCorruptWarning",
    "SnapshotStore",
    "Snapshotter",
    "TornTailWarning",
    "prune_segments",
    "recover",
    "replay_journal",
    "verify_journal",
]
