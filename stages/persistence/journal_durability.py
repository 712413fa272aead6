"""What "durable" means for a journal: the fsync policy, and the writer's mark of how far it got.

The policy says when written blocks are forced to stable storage, and so what a stage may
acknowledge (``JournalWriter.durable_seq``): ``batch`` fsyncs every append, ``interval`` at
most every ``fsync_interval_ms``, ``never`` leaves it to the OS (a process crash loses
nothing, a power loss may).

The durable mark (``durable.mark``, 32 bytes: magic ``TPMARK01``, durable seq, first seq of
the newest segment, policy, crc32c) is the writer's own record of how far its journal is
durable. Invariant: a sound journal never ends before its mark, because the writer rewrites
it (atomically: temp file, rename) only when the journal is created, at each rotation and at
a clean close, never per append. Records the mark covers but the journal lacks were lost
after the fact (a deleted newest segment): :meth:`DurableMark.missing_after` says which, as
:class:`MissingRecords`.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import crc32c

from stages.persistence.journal_segments import segment_name

DEFAULT_FSYNC_INTERVAL_MS = 5.0
#: The writer's own record of how far the journal is durable (see :class:`DurableMark`).
DURABLE_MARK_NAME = "durable.mark"


class FsyncPolicy(enum.StrEnum):
    """When the writer forces written blocks to stable storage."""

    BATCH = "batch"  # after every append (group commit: one append = what accumulated)
    INTERVAL = "interval"  # when at least fsync_interval_ms passed since the last sync
    NEVER = "never"  # leave it to the OS: survives a process crash, not a power loss


#: magic, durable seq, first seq of the newest segment, fsync policy (8 bytes), reserved,
#: crc32c of the bytes before it.
_MARK = struct.Struct("<8sqq8sII")
_MARK_MAGIC = b"TPMARK01"


@dataclass(frozen=True)
class DurableMark:
    """The writer's own record of how far its journal is durable (``durable.mark``).

    Rewritten (atomically: temp file, rename) when the journal is created, at each segment
    rotation and at a clean close, never per append, so it costs nothing on the hot path.
    A journal only grows past it: records the mark says were durable but the journal no
    longer holds were lost after the fact (a deleted newest segment), which
    :func:`verify_journal` reports.
    """

    durable_seq: int  # every seq up to this one was durable under ``fsync``
    newest_segment: int  # first seq of the newest segment the writer had made
    fsync: str

    def encode(self) -> bytes:
        head = _MARK.pack(
            _MARK_MAGIC, self.durable_seq, self.newest_segment, self.fsync.encode()[:8], 0, 0
        )
        return head[:-4] + struct.pack("<I", crc32c.crc32c(head[:-4]))

    @classmethod
    def decode(cls, data: bytes) -> DurableMark | None:
        if len(data) != _MARK.size:
            return None
        magic, durable, newest, policy, _r, crc = _MARK.unpack(data)
        if magic != _MARK_MAGIC or crc32c.crc32c(data[:-4]) != crc:
            return None
        return cls(durable, newest, policy.rstrip(b"\0").decode(errors="replace"))

    def missing_after(
        self, end: int, newest_first: int | None, *, proven_only: bool = False
    ) -> MissingRecords | None:
        """What a journal ending at ``end``, whose newest segment starts at ``newest_first``
        (None: no segment), has lost by this mark; None when nothing.

        A newest segment the mark names but the journal lacks is reported even when the
        mark's seq is reached (how many records it held is not known) — unless
        ``proven_only``: a writer that dropped a segment whose creation was torn lacks it
        too, so only ``durable_seq`` beyond ``end`` proves a loss, and only under a policy
        that syncs (with ``never`` a power loss may take records nobody was promised)."""
        if proven_only and self.fsync == FsyncPolicy.NEVER.value:
            return None
        never = (
            " (written with fsync 'never': a power loss can lose them without any damage)"
            if self.fsync == FsyncPolicy.NEVER.value
            else ""
        )
        lost_segment = newest_first is None or self.newest_segment > newest_first
        gone = (
            f"; segment {segment_name(self.newest_segment)}, the newest the writer made, is "
            "gone (deleted?)"
            if lost_segment
            else ""
        )
        if self.durable_seq > end:
            return MissingRecords(
                end + 1,
                self.durable_seq,
                f"the writer's {DURABLE_MARK_NAME} says every seq up to {self.durable_seq} "
                f"was durable{never}{gone}",
            )
        if lost_segment and not proven_only:
            return MissingRecords(
                self.newest_segment,
                None,
                f"the writer's {DURABLE_MARK_NAME} says it made segment "
                f"{segment_name(self.newest_segment)}, which is gone (deleted?)",
            )
        return None

    def write(
        self,
        directory: Path,
        *,
        sync: bool,
        fdatasync: Callable[[int], None] = os.fdatasync,
    ) -> None:
        """Replace the mark atomically (temp file, rename); ``sync`` it first (with the
        writer's ``fdatasync``, so a fault test that injects one reaches this too)."""
        tmp = directory / f".{DURABLE_MARK_NAME}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, self.encode())
            if sync:
                fdatasync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, directory / DURABLE_MARK_NAME)


def read_durable_mark(directory: str | os.PathLike[str]) -> DurableMark | None:
    """The journal's durable mark, None when there is none or it is unreadable."""
    try:
        data = (Path(directory).expanduser() / DURABLE_MARK_NAME).read_bytes()
    except OSError:
        return None
    return DurableMark.decode(data)


@dataclass(frozen=True)
class MissingRecords:
    """Records something else proves existed but the journal no longer holds."""

    from_seq: int
    to_seq: int | None  # None: how many is not known (a whole newest segment is gone)
    evidence: str  # what proves they existed

    def describe(self) -> str:
        if self.to_seq is None:
            what = f"records from seq {self.from_seq} on (how many is not known) are"
        else:
            n = self.to_seq - self.from_seq + 1
            what = f"seqs {self.from_seq}..{self.to_seq} ({n} records) are"
        return f"{what} missing from the end of the journal: {self.evidence}"
