"""Persistence: the checksummed journal, atomic snapshots and exact recovery from both.

Nothing acknowledged may be lost and a crash is never replayed as data: the journal holds the
sequenced command stream (the input of the deterministic risk + matching chain), snapshots
hold that chain's state at a sequence, and recovery rebuilds the state from the newest valid
snapshot plus the journal after it. See ``docs/journal.md`` for the on-disk formats.

The journal is one concept per module: ``journal_errors`` (its faults), ``journal_segments``
(segment files: names, file and block headers, the stored record layout),
``journal_durability`` (the fsync policy and the durable mark), ``journal_lock`` (one writer),
``journal_blocks`` (valid, torn tail or corrupt), ``journal_writer``, ``journal_reader`` and
``journal_verify``. ``durable`` holds the file-system steps the journal and the snapshots
share.
"""

from stages.persistence.journal_durability import FsyncPolicy
from stages.persistence.journal_errors import (
    JournalAccessError,
    JournalBusyError,
    JournalCorruptError,
    JournalError,
    JournalFullError,
    JournalLayoutError,
    JournalLostRecordsError,
    TornTailWarning,
)
from stages.persistence.journal_reader import JournalReader
from stages.persistence.journal_segments import prune_segments
from stages.persistence.journal_verify import verify_journal
from stages.persistence.journal_writer import JournalWriter
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
