"""The append-only, segmented, checksummed journal of fixed-size numpy records.

The journal is what makes "acknowledged" mean something: the sequenced command stream is
written here before anything is acknowledged, and replaying it rebuilds the deterministic
state. It is generic over the record layout (a numpy structured dtype with an int64 ``seq``
field); the pipeline journals ``stages.records.COMMAND_DTYPE``.

On disk (``docs/journal.md`` is the reference): a directory of segment files named by their
first sequence (``00000000000000000001.tpj``), each a checksummed file header (magic, version,
record layout and its fingerprint, first sequence) followed by blocks (a 32-byte checksummed
header: length, record count, first sequence, crc32c of the records; then the records).
Sequences are contiguous across blocks and segments, and the writer never rewrites accepted
data.

Faults are values the caller can see, never silent: a torn last block (a crash mid-write) is
truncated with a :class:`TornTailWarning` naming file and offset; anything wrong before the
tail raises :class:`JournalCorruptError` naming file, offset and sequence; a full disk raises
:class:`JournalFullError` and leaves the journal valid up to the last whole block; a journal
written with another record layout raises :class:`JournalLayoutError` saying what differs.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import itertools
import json
import math
import os
import re
import struct
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crc32c
import numba
import numpy as np

from ringbuffer.layout import fingerprint, layout_json
from ringbuffer.records import concat_records
from stages.persistence.durable import fsync_dir

MAGIC = b"TPJOURNL"
VERSION = 1
SEGMENT_SUFFIX = ".tpj"
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_FSYNC_INTERVAL_MS = 5.0

#: magic, version, header_size, record_size, block_header_size, fingerprint, first_seq,
#: created (unix ns), layout_len, header_crc -- followed by the layout JSON, zero-padded so
#: the whole header is a multiple of 64 bytes.
FILE_HEADER = struct.Struct("<8sIIII16sqqII")
#: magic, length (header + records), count, records_crc, first_seq, flags, header_crc.
BLOCK_HEADER = struct.Struct("<IIIIqII")
BLOCK_MAGIC = int.from_bytes(b"TPBK", "little")
#: Block flag: the append this block belongs to continues in the next block (an append
#: larger than MAX_BLOCK_BYTES); an append never spans segments.
BLOCK_CONTINUES = 1
MAX_BLOCK_BYTES = 1 << 30  # keeps ``length`` far from the u32 limit and blocks readable

assert FILE_HEADER.size == 64
assert BLOCK_HEADER.size == 32

_SEGMENT_NAME = re.compile(r"^(\d{20})\.tpj$")
LOCK_NAME = "writer.lock"
#: The writer's own record of how far the journal is durable (see :class:`DurableMark`).
DURABLE_MARK_NAME = "durable.mark"
_JOURNAL_FILE = re.compile(
    r"^(\d{20}\.tpj|\.\d{20}\.tpj\.tmp|writer\.lock|durable\.mark|\.durable\.mark\.tmp"
    r"|initial-state\.tps|\.initial-state\.tps\.[\d-]+\.tmp)$"
)
_FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

#: The write and sync calls, module attributes so fault tests can inject ENOSPC or EIO.
_writev = os.writev
_fdatasync = os.fdatasync


@numba.njit(cache=True, nogil=True)
def first_gap(seqs: np.ndarray, first: int) -> int:
    """HOT. The index of the first ``seqs[i] != first + i``, or -1 when all are contiguous.

    Compiled: one pass over the (strided) seq column, no allocation, no Python per record.
    """
    for i in range(seqs.shape[0]):
        if seqs[i] != first + i:
            return i
    return -1


class JournalError(Exception):
    """Something about a journal is wrong; the message names the journal and what to do."""


class JournalLayoutError(JournalError):
    """The journal was written with another record layout than the one asked for."""


class JournalCorruptError(JournalError):
    """Data before the tail fails its checks; recovery must stop, never skip it."""

    def __init__(self, message: str, path: Path, offset: int, seq: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset
        self.seq = seq


class JournalLostRecordsError(JournalError):
    """The writer's durable mark proves records the journal no longer holds."""

    def __init__(self, message: str, missing: MissingRecords) -> None:
        super().__init__(message)
        self.missing = missing


class JournalFullError(JournalError):
    """The disk is full; the journal is valid up to ``valid_seq`` and the writer is closed."""

    def __init__(self, message: str, valid_seq: int, durable_seq: int) -> None:
        super().__init__(message)
        self.valid_seq = valid_seq
        self.durable_seq = durable_seq


class JournalBusyError(JournalError):
    """Another live process holds the journal's writer lock (``pid`` when it recorded one)."""

    busy = True

    def __init__(self, message: str, directory: Path, pid: int | None) -> None:
        super().__init__(message)
        self.directory = directory
        self.pid = pid


class JournalAccessError(JournalError):
    """The system refused a file operation (read-only, no permission, not a directory...).

    ``path`` is the file or directory, ``errno`` the refusal; the message says what to do.
    """

    def __init__(self, message: str, path: Path, errno_: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno_


def explain_os_error(exc: OSError, path: Path | str, doing: str, kind: str = "journal") -> str:
    """One line for a person: what failed on which path, why, and what to do about it."""
    code = exc.errno
    why = exc.strerror or str(exc)
    if code in _FULL_DISK_ERRNOS:
        fix = "free space on that file system (or move the directory), then start again"
    elif code == errno.EROFS:
        fix = f"the file system is read-only: put the {kind} on a writable one"
    elif code in (errno.EACCES, errno.EPERM):
        fix = f"no permission: run as the {kind}'s owner or fix its permissions"
    elif code == errno.ENOTDIR:
        fix = f"a file is in the way of the {kind} directory: move it, or name another directory"
    elif code == errno.EISDIR:
        fix = f"a directory has the name of a {kind} file: move it out of the way"
    elif code == errno.ENOENT:
        fix = (
            "it does not exist and cannot be made there (a virtual file system such as "
            "/proc?): name a directory on a writable file system"
        )
    else:
        fix = f"check the {kind} directory and the file system"
    return f"{kind} {path}: {doing} failed ({why}); {fix}"


def access_error(exc: OSError, path: Path | str, doing: str) -> JournalError:
    """The ``JournalError`` an ``OSError`` on a journal file becomes (full disk included)."""
    message = explain_os_error(exc, path, doing)
    if exc.errno in _FULL_DISK_ERRNOS:
        return JournalFullError(message, -1, -1)
    return JournalAccessError(message, Path(path), exc.errno)


class TornTailWarning(UserWarning):
    """The last block of the journal was torn by a crash and has been (or would be) cut off."""


class FsyncPolicy(enum.StrEnum):
    """When the writer forces written blocks to stable storage."""

    BATCH = "batch"  # after every append (group commit: one append = what accumulated)
    INTERVAL = "interval"  # when at least fsync_interval_ms passed since the last sync
    NEVER = "never"  # leave it to the OS: survives a process crash, not a power loss


@dataclass(frozen=True)
class TornTail:
    """Where a torn tail starts, why it was judged torn, and whether it was cut off."""

    path: Path
    offset: int
    seq: int
    reason: str
    truncated: bool

    def describe(self) -> str:
        action = "truncated" if self.truncated else "would be truncated (read-only)"
        return (
            f"torn tail in journal segment {self.path} at offset {self.offset} "
            f"(from seq {self.seq}): {self.reason}; {action}"
        )


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

    def write(self, directory: Path, *, sync: bool) -> None:
        tmp = directory / f".{DURABLE_MARK_NAME}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, self.encode())
            if sync:
                _fdatasync(fd)
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


@dataclass
class JournalReport:
    """What :func:`verify_journal` found: extent, counts, any torn tail, anything missing."""

    directory: Path
    segments: int = 0
    blocks: int = 0
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    bytes: int = 0
    torn: list[TornTail] = field(default_factory=list)
    #: records the writer's durable mark or the newest snapshot prove were there (a
    #: deleted newest segment): the journal cannot be replayed to the state it held.
    missing: list[MissingRecords] = field(default_factory=list)
    #: where the cross-checks came from (the durable mark, the newest snapshot), or why
    #: there was none; for the summary
    checked_against: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# record layout: the stored description (``ringbuffer.layout.layout_json``) read back, and a
# readable difference


def _descr_from_json(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        fields = []
        for entry in value:
            name, fmt, *shape = entry
            fmt = _descr_from_json(fmt) if isinstance(fmt, list) else fmt
            fields.append((name, fmt, tuple(shape[0])) if shape else (name, fmt))
        return fields
    return value


def dtype_from_layout(data: bytes) -> np.dtype:
    """The dtype a header's layout JSON describes."""
    layout = json.loads(data)
    dtype = np.dtype(_descr_from_json(layout["descr"]))
    if dtype.itemsize != layout["itemsize"]:
        raise ValueError(f"layout itemsize {layout['itemsize']} != rebuilt {dtype.itemsize}")
    return dtype


def describe_layout_difference(found: np.dtype, expected: np.dtype) -> str:
    """A person-readable account of how the journal's layout differs from the expected one."""

    def fields(dtype: np.dtype) -> dict[str, str]:
        return {entry[0]: str(entry[1:]) for entry in json.loads(layout_json(dtype))["descr"]}

    have, want = fields(found), fields(expected)
    parts = []
    missing = [name for name in want if name not in have]
    extra = [name for name in have if name not in want]
    if missing:
        parts.append(f"fields missing from the journal: {', '.join(missing)}")
    if extra:
        parts.append(f"fields only in the journal: {', '.join(extra)}")
    for name in want:
        if name in have and have[name] != want[name]:
            parts.append(f"field {name!r} is {have[name]} in the journal, {want[name]} expected")
    if not parts and list(have) != list(want):
        parts.append(f"field order differs: journal {list(have)}, expected {list(want)}")
    if found.itemsize != expected.itemsize:
        parts.append(f"record size {found.itemsize} in the journal, {expected.itemsize} expected")
    return "; ".join(parts) or "layouts differ in alignment or offsets"


def _check_dtype(dtype: np.dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.names is None or "seq" not in dtype.names:
        raise JournalLayoutError(
            f"journal record dtype {dtype} has no 'seq' field; a journal needs an int64 'seq'"
        )
    if dtype.fields["seq"][0] != np.dtype("<i8"):
        raise JournalLayoutError(
            f"journal record field 'seq' is {dtype.fields['seq'][0]}, expected little-endian int64"
        )
    return dtype


# --------------------------------------------------------------------------------------------
# segment files


def lock_journal(directory: Path, purpose: str) -> int:
    """Take the journal's exclusive lock (one writer, or one repairer) or say who holds it.

    Returns the lock file's descriptor; closing it releases the lock (so does any death of
    the holder, even SIGKILL). The holder's pid is written into the lock file, so a refusal
    can name it. Raises :class:`JournalBusyError` when a live process holds it, and
    :class:`JournalAccessError` when the lock file cannot be opened (read-only file system,
    no permission, the directory is a file or missing).
    """
    directory = Path(directory)
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise access_error(exc, directory, f"opening its writer lock for {purpose}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        pid = int(text) if text.isdigit() else None
        raise JournalBusyError(
            f"journal {directory} is open for writing by pid {pid if pid else '(unknown)'}; "
            f"{purpose} needs it to be the only one: stop that process first",
            directory,
            pid,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def is_journal_file(name: str) -> bool:
    """Whether a file name is one a journal writer makes (segments, lock, mark, temp files)."""
    return _JOURNAL_FILE.match(name) is not None


def segment_name(first_seq: int) -> str:
    """The file name of the segment whose first record has sequence ``first_seq``."""
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def list_segments(directory: Path) -> list[Path]:
    """The segment files of a journal directory, oldest first."""
    return sorted(p for p in directory.iterdir() if _SEGMENT_NAME.match(p.name))


def build_file_header(dtype: np.dtype, first_seq: int, created_ns: int | None = None) -> bytes:
    """The header bytes of a new segment (fixed part + layout JSON, padded to 64 bytes)."""
    layout = layout_json(dtype)
    size = FILE_HEADER.size + len(layout)
    size += -size % 64
    created = time.time_ns() if created_ns is None else created_ns
    fixed = FILE_HEADER.pack(
        MAGIC,
        VERSION,
        size,
        dtype.itemsize,
        BLOCK_HEADER.size,
        fingerprint(dtype),
        first_seq,
        created,
        len(layout),
        0,
    )
    tail = layout + bytes(size - FILE_HEADER.size - len(layout))
    crc = crc32c.crc32c(tail, crc32c.crc32c(fixed[:60]))  # every header byte but the crc
    return fixed[:60] + struct.pack("<I", crc) + tail


@dataclass(frozen=True)
class SegmentHeader:
    """A segment's validated file header."""

    path: Path
    header_size: int
    record_size: int
    fingerprint: bytes
    first_seq: int
    created_ns: int
    dtype: np.dtype


class _ShortHeader(Exception):
    """The file holds no header (short or zero-filled): a segment whose creation was cut off."""


def read_segment_header(path: Path, data: bytes) -> SegmentHeader:
    """Parse and check a segment header from the first bytes of its file."""
    if len(data) < FILE_HEADER.size or data.count(0) == len(data):
        raise _ShortHeader(len(data))
    (magic, version, header_size, record_size, block_header_size, stored_fingerprint,
     first_seq, created, layout_len, crc) = FILE_HEADER.unpack_from(data)  # fmt: skip
    if magic != MAGIC:
        raise JournalCorruptError(
            f"journal segment {path} at offset 0: magic {magic!r} is not a journal's "
            f"({MAGIC!r}); is this a journal directory?",
            path,
            0,
            None,
        )
    if version != VERSION:
        raise JournalError(
            f"journal segment {path}: format version {version}, this code reads {VERSION}"
        )
    if header_size < FILE_HEADER.size or header_size > 1 << 20 or header_size % 64:
        raise JournalCorruptError(
            f"journal segment {path} at offset 8: header size {header_size} is impossible "
            "(a multiple of 64 from 64 to 1 MiB expected)",
            path,
            8,
            None,
        )
    if len(data) < header_size:
        raise JournalCorruptError(
            f"journal segment {path} at offset 12: header size {header_size} but the file "
            f"holds only {len(data)} bytes",
            path,
            12,
            None,
        )
    tail = data[FILE_HEADER.size : header_size]
    if crc32c.crc32c(tail, crc32c.crc32c(data[:60])) != crc:
        raise JournalCorruptError(
            f"journal segment {path} at offset 0: file header checksum mismatch",
            path,
            0,
            None,
        )
    if block_header_size != BLOCK_HEADER.size or layout_len > header_size - FILE_HEADER.size:
        raise JournalCorruptError(
            f"journal segment {path}: block header size {block_header_size} or layout "
            f"length {layout_len} inconsistent with format version {VERSION}",
            path,
            0,
            None,
        )
    dtype = dtype_from_layout(tail[:layout_len])
    if fingerprint(dtype) != stored_fingerprint or dtype.itemsize != record_size:
        raise JournalCorruptError(
            f"journal segment {path}: stored layout does not match its fingerprint",
            path,
            24,
            None,
        )
    name = _SEGMENT_NAME.match(path.name)
    if name and int(name.group(1)) != first_seq:
        raise JournalCorruptError(
            f"journal segment {path}: header says first seq {first_seq}, "
            f"the file name says {int(name.group(1))}",
            path,
            40,
            first_seq,
        )
    return SegmentHeader(
        path, header_size, record_size, stored_fingerprint, first_seq, created, dtype
    )


def _read_header_of(path: Path) -> SegmentHeader:
    with open(path, "rb") as f:
        head = f.read(FILE_HEADER.size)
        if len(head) == FILE_HEADER.size:
            (header_size,) = struct.unpack_from("<I", head, 12)
            if FILE_HEADER.size < header_size <= 1 << 20:
                head += f.read(header_size - FILE_HEADER.size)
    return read_segment_header(path, head)


def _check_layout(header: SegmentHeader, dtype: np.dtype | None) -> None:
    if dtype is not None and header.fingerprint != fingerprint(dtype):
        raise JournalLayoutError(
            f"journal segment {header.path} was written with another record layout: "
            f"{describe_layout_difference(header.dtype, dtype)}; open it with the layout "
            "it was written with (or a matching version of the code)"
        )


# --------------------------------------------------------------------------------------------
# block scanning: the one place that decides "valid", "torn tail" or "corrupt"


class _Torn(Exception):
    def __init__(self, offset: int, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.seq = seq
        self.reason = reason


def _rest_is_zero(f: Any, offset: int, size: int) -> bool:
    f.seek(offset)
    remaining = size - offset
    while remaining > 0:
        chunk = f.read(min(remaining, 1 << 20))
        if not chunk or chunk.count(0) != len(chunk):
            return False
        remaining -= len(chunk)
    return True


_MAGIC_BYTES = BLOCK_MAGIC.to_bytes(4, "little")
_SCAN_CHUNK = 4 << 20


@dataclass(frozen=True)
class _FoundBlock:
    offset: int
    first_seq: int
    count: int
    length: int
    flags: int


def _valid_blocks_after(
    f: Any, start: int, file_size: int, *, align: int, base: int, record_size: int | None
) -> Iterator[_FoundBlock]:
    """Every well-formed block header from ``start`` on, at offsets ``base + k * align``.

    Well-formed: magic, header checksum, a length that holds its count of ``record_size``
    records (any record size when None) and known flags. A crash cannot write one: the
    writer only ever appends, so a well-formed header after a bad block was put there by a
    later append. The search is a C-speed ``find`` of the magic, chunk by chunk, so even a
    whole segment of garbage costs one read of it, and it only runs on a bad block.
    """
    pos = start
    while pos < file_size:
        f.seek(pos)
        want = min(_SCAN_CHUNK, file_size - pos)
        chunk = f.read(want)
        if len(chunk) < min(want, BLOCK_HEADER.size):
            return  # the file ends here (it may have been cut meanwhile)
        at = chunk.find(_MAGIC_BYTES)
        while at >= 0:
            offset = pos + at
            if (offset - base) % align == 0:
                raw = chunk[at : at + BLOCK_HEADER.size]
                if len(raw) < BLOCK_HEADER.size:
                    f.seek(offset)
                    raw = f.read(BLOCK_HEADER.size)
                if len(raw) == BLOCK_HEADER.size:
                    _m, length, count, _c, first, flags, header_crc = BLOCK_HEADER.unpack(raw)
                    if (
                        crc32c.crc32c(raw[:28]) == header_crc
                        and count > 0
                        and not flags & ~BLOCK_CONTINUES
                        and (length - BLOCK_HEADER.size) % count == 0
                        and (
                            record_size is None or length == BLOCK_HEADER.size + count * record_size
                        )
                    ):
                        yield _FoundBlock(offset, first, count, length, flags)
            at = chunk.find(_MAGIC_BYTES, at + 1)
        if pos + len(chunk) >= file_size or len(chunk) < want:
            return
        pos += len(chunk) - (BLOCK_HEADER.size - 1)  # a header may straddle two chunks


def _block_after_torn_append(
    f: Any,
    file_size: int,
    *,
    bad_offset: int,
    bad_block: _FoundBlock | None,
    append_offset: int,
    append_seq: int,
    record_size: int,
    base: int,
) -> _FoundBlock | None:
    """The first well-formed block after a bad one that is *not* part of the torn append.

    A bad block in the last segment is a torn tail only if nothing valid follows it: the
    last append, never acknowledged, may lose any of its pages (its first, a middle one)
    while later ones reach the disk, but a valid block after it means a later append was
    written, so the bad block is damage to data that may have been acknowledged.

    An append larger than ``max_block_bytes`` is several blocks, all but the last flagged
    ``CONTINUES``; its surviving blocks do not count against it. A found block belongs to
    the torn append when it directly continues a block known to be flagged ``CONTINUES``
    (``bad_block``, when its header is intact, or a block already found), or when it is
    itself flagged ``CONTINUES`` and sits where a block of that append can: ``first_seq -
    append_seq`` records and a whole number of equal blocks after the append's start. A
    final block whose predecessors were all lost cannot be told from a later append and
    counts as corruption (the safe side: it is reported, never cut off).
    """
    align = math.gcd(BLOCK_HEADER.size, record_size)
    chain = bad_block  # the last block known to belong to the torn append
    for found in _valid_blocks_after(
        f, bad_offset + 1, file_size, align=align, base=base, record_size=record_size
    ):
        if chain is not None and found.offset < chain.offset + chain.length:
            continue  # inside a block already accounted for (a magic in its records)
        continues_chain = (
            chain is not None
            and chain.flags & BLOCK_CONTINUES
            and found.offset == chain.offset + chain.length
            and found.first_seq == chain.first_seq + chain.count
        )
        records = found.first_seq - append_seq
        headers, rest = divmod(found.offset - append_offset - records * record_size, 32)
        fits_append = (
            found.flags & BLOCK_CONTINUES
            and (chain is None or chain.flags & BLOCK_CONTINUES)
            and records > 0
            and rest == 0
            and headers >= 1
            and records % headers == 0
        )
        if not (continues_chain or fits_append):
            return found
        chain = found
    return None


def _scan_blocks(
    f: Any,
    header: SegmentHeader,
    file_size: int,
    *,
    is_last: bool,
    skip_before: int | None = None,
) -> Iterator[tuple[int, int, int, np.ndarray | None]]:
    """Yield ``(offset, first_seq, count, records)`` for each verified append of a segment.

    An append is one block, or several when it was larger than a block may be (every block
    but its last has ``BLOCK_CONTINUES``); it is yielded whole, so a replay sees the batch
    boundaries the writer was given. Appends that end before ``skip_before`` are checked by
    their block header checksums only and yielded with ``records=None``. Raises
    :class:`_Torn` when the segment's tail is torn (only possible in the last segment; an
    append missing its final block is torn from its first block) and
    :class:`JournalCorruptError` otherwise.
    """
    path = header.path
    dtype = header.dtype
    rs = header.record_size
    offset = header.header_size
    seq = header.first_seq
    parts: list[np.ndarray] = []  # blocks of the append being read
    append_offset, append_seq, skipping, pending = offset, seq, False, False
    f.seek(offset)

    def bad(reason: str, *, tail_ok: bool, block: _FoundBlock | None = None) -> None:
        later = None
        if is_last and tail_ok:
            later = _block_after_torn_append(
                f,
                file_size,
                bad_offset=offset,
                bad_block=block,
                append_offset=append_offset,
                append_seq=append_seq,
                record_size=rs,
                base=header.header_size,
            )
            if later is None:
                raise _Torn(append_offset, append_seq, reason)
        follows = (
            f"; a valid block follows at offset {later.offset} (seq {later.first_seq}), so "
            "this is not a torn last append"
            if later is not None
            else ""
        )
        raise JournalCorruptError(
            f"journal segment {path} at offset {offset} (seq {seq}): {reason}{follows}; the "
            "journal is corrupt before its tail and cannot be replayed past this point",
            path,
            offset,
            seq,
        )

    while offset < file_size:
        starts_append = not pending
        if starts_append:
            append_offset, append_seq = offset, seq
        raw = f.read(BLOCK_HEADER.size)
        if len(raw) < BLOCK_HEADER.size:
            bad(f"incomplete block header ({len(raw)} of {BLOCK_HEADER.size} bytes)", tail_ok=True)
        magic, length, count, records_crc, first, flags, header_crc = BLOCK_HEADER.unpack(raw)
        if magic != BLOCK_MAGIC or crc32c.crc32c(raw[:28]) != header_crc:
            zero = is_last and _rest_is_zero(f, offset, file_size)
            bad(
                "zero-filled tail (blocks not yet flushed at the crash)"
                if zero
                else "block header checksum mismatch",
                tail_ok=True,
            )
        if first != seq:
            bad(f"block starts at seq {first}, seq {seq} expected", tail_ok=False)
        if count == 0 or length != BLOCK_HEADER.size + count * rs:
            bad(f"block length {length} does not hold {count} records of {rs} bytes", tail_ok=False)
        if flags & ~BLOCK_CONTINUES:
            bad(f"unknown block flags {flags:#x}", tail_ok=False)
        end = offset + length
        if end > file_size:
            bad(
                f"block of {length} bytes runs past the end of the file ({file_size} bytes)",
                tail_ok=True,
            )
        if starts_append:
            skipping = skip_before is not None and first < skip_before
        if skipping and not (flags & BLOCK_CONTINUES) and first + count > skip_before:
            skipping = False  # the append reaches the wanted range: read it after all
            f.seek(append_offset)
            offset, seq, parts, pending = append_offset, append_seq, [], False
            skip_before = None
            continue
        pending = bool(flags & BLOCK_CONTINUES)
        if skipping:
            f.seek(end)
        else:
            records = np.empty(count, dtype=dtype)
            raw_records = records.view(np.uint8)
            got = f.readinto(raw_records)
            if got != count * rs:
                bad("block shorter than its header says", tail_ok=True)
            if crc32c.crc32c(raw_records) != records_crc:
                bad(
                    "records checksum mismatch",
                    tail_ok=True,
                    block=_FoundBlock(offset, first, count, length, flags),
                )
            if first_gap(records["seq"], first) >= 0:
                bad("record seq fields are not contiguous with the block header", tail_ok=False)
            parts.append(records)
        offset = end
        seq = first + count
        if not flags & BLOCK_CONTINUES:
            whole = None if skipping else parts[0] if len(parts) == 1 else concat_records(parts)
            yield append_offset, append_seq, seq - append_seq, whole
            parts, skipping = [], False
    if pending:  # the last append's final block never made it
        bad("the last append is incomplete: its final block is missing", tail_ok=True)


def _check_torn_segment(path: Path, size: int, record_size: int | None) -> None:
    """Refuse to call a segment with a lost header torn when a later append survived in it.

    The header of a fresh segment and its first append may share a page that never reached
    the disk while the append's later pages did: that is a torn segment (nothing in it was
    acknowledged). A complete block in it (one not flagged ``CONTINUES``, which a lost first
    append's own surviving blocks all are but its last) means a later append was written:
    the lost header is damage, reported as corruption.
    """
    align = BLOCK_HEADER.size if record_size is None else math.gcd(BLOCK_HEADER.size, record_size)
    with open(path, "rb") as f:
        for found in _valid_blocks_after(f, 0, size, align=align, base=0, record_size=record_size):
            if not found.flags & BLOCK_CONTINUES:
                raise JournalCorruptError(
                    f"journal segment {path} at offset 0: the file header is missing but a "
                    f"valid block follows at offset {found.offset} (seq {found.first_seq}); "
                    "the journal is corrupt and cannot be replayed past this point",
                    path,
                    0,
                    found.first_seq,
                )


def _handle_torn(path: Path, torn: _Torn, *, repair: bool, locked: bool = False) -> TornTail:
    """Report a torn tail and, if ``repair``, cut it off (under the journal lock)."""
    info = TornTail(path, torn.offset, torn.seq, torn.reason, repair)
    if repair:
        lock = -1 if locked else lock_journal(path.parent, "cutting off a torn tail")
        try:
            os.truncate(path, torn.offset)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            if lock >= 0:
                os.close(lock)
    warnings.warn(info.describe(), TornTailWarning, stacklevel=3)
    return info


def _drop_torn_segment(path: Path, size: int, *, repair: bool, locked: bool = False) -> TornTail:
    """Report a segment whose creation was cut off and, if ``repair``, remove it."""
    first = int(path.name[:20]) if _SEGMENT_NAME.match(path.name) else -1
    info = TornTail(
        path, 0, first, f"segment header incomplete ({size} bytes): creation was cut off", repair
    )
    if repair:
        lock = -1 if locked else lock_journal(path.parent, "removing a torn segment")
        try:
            path.unlink()
            fsync_dir(path.parent)
        finally:
            if lock >= 0:
                os.close(lock)
    warnings.warn(info.describe(), TornTailWarning, stacklevel=3)
    return info


# --------------------------------------------------------------------------------------------
# writer


class JournalWriter:
    """The single writer of a journal directory: appends verified-contiguous batches.

    Opening a directory that already holds a journal continues it: the layout must match, the
    last segment is verified and a torn tail is truncated (with a :class:`TornTailWarning`);
    the next append must start at ``next_seq``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        dtype: np.dtype,
        *,
        fsync: FsyncPolicy | str = FsyncPolicy.BATCH,
        fsync_interval_ms: float = DEFAULT_FSYNC_INTERVAL_MS,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        first_seq: int = 1,
        max_block_bytes: int = MAX_BLOCK_BYTES,
    ) -> None:
        self.directory = Path(directory).expanduser()
        self.dtype = _check_dtype(dtype)
        try:
            self.fsync = FsyncPolicy(fsync)
        except ValueError:
            raise ValueError(
                f"journal fsync policy {fsync!r} is unknown; use one of "
                f"{', '.join(p.value for p in FsyncPolicy)}"
            ) from None
        if fsync_interval_ms <= 0:
            raise ValueError(f"journal fsync_interval_ms={fsync_interval_ms} must be > 0")
        self._segment_header_size = len(build_file_header(self.dtype, 0))
        minimum = self._segment_header_size + BLOCK_HEADER.size + self.dtype.itemsize
        if segment_bytes < minimum:
            raise ValueError(
                f"journal segment_bytes={segment_bytes} is too small: at least {minimum} "
                "(header + one block of one record) is needed"
            )
        self.segment_bytes = segment_bytes
        self._interval_ns = int(fsync_interval_ms * 1e6)
        self._record_size = self.dtype.itemsize
        if not BLOCK_HEADER.size + self._record_size <= max_block_bytes <= MAX_BLOCK_BYTES:
            raise ValueError(
                f"journal max_block_bytes={max_block_bytes} must hold one record and be at "
                f"most {MAX_BLOCK_BYTES}"
            )
        self._max_block_records = (max_block_bytes - BLOCK_HEADER.size) // self._record_size
        self._fd = -1
        self._lock_fd = -1
        self._failed: str | None = None
        self.repairs: list[TornTail] = []
        self._path = self.directory
        self._synced_seq = first_seq - 1
        self._last_sync_ns = time.monotonic_ns()
        if self.directory.exists() and not self.directory.is_dir():
            raise JournalAccessError(
                f"journal {self.directory} is a file, not a directory: move it, or name "
                "another directory",
                self.directory,
                errno.ENOTDIR,
            )
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise access_error(exc, self.directory, "creating the directory") from None
        self._lock_fd = lock_journal(self.directory, "a journal writer")
        try:
            for stale in self.directory.glob(".*.tpj.tmp"):
                stale.unlink()  # a segment whose creation was cut off before its rename
            segments = list_segments(self.directory)
            if segments:
                self._open_existing(segments)
                self._refuse_lost_records(self._next_seq - 1, self._path)
            else:
                self._refuse_lost_records(first_seq - 1, None)
                if first_seq < 0:
                    raise ValueError(f"journal first_seq={first_seq} must be >= 0")
                self._next_seq = first_seq
                self._create_segment(first_seq)
                fsync_dir(self.directory)
            self._synced_seq = self._next_seq - 1
            if not segments:
                self._write_mark()
        except OSError as exc:
            self.close_quietly()  # release the lock: this writer never came to be
            raise access_error(exc, exc.filename or self.directory, "opening it") from None
        except BaseException:
            self.close_quietly()
            raise
        self._last_sync_ns = time.monotonic_ns()

    # -- state ---------------------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """The sequence the next appended record must carry."""
        return self._next_seq

    @property
    def written_seq(self) -> int:
        """The highest sequence handed to the OS (survives a process crash)."""
        return self._next_seq - 1

    @property
    def synced_seq(self) -> int:
        """The highest sequence forced to stable storage by fsync (survives a power loss)."""
        return self._synced_seq

    @property
    def durable_seq(self) -> int:
        """The highest sequence durable under the configured policy: what may be acknowledged.

        ``batch`` and ``interval``: fsynced. ``never``: written, which survives the crash of
        any process but not of the machine; that is the promise of that policy.
        """
        return self.written_seq if self.fsync is FsyncPolicy.NEVER else self._synced_seq

    # -- opening ---------------------------------------------------------------------------------

    def _refuse_lost_records(self, end: int, newest: Path | None) -> None:
        """Refuse to append after records the durable mark proves were lost (a deleted
        newest segment): new records would reuse their seqs and the loss would be hidden."""
        mark = read_durable_mark(self.directory)
        newest_first = int(newest.name[:20]) if newest is not None else None
        missing = (
            mark.missing_after(end, newest_first, proven_only=True) if mark is not None else None
        )
        if missing is not None:
            raise JournalLostRecordsError(
                f"journal {self.directory} cannot be appended to: {missing.describe()}; "
                "restore the missing segment, or move the journal aside and start a new one",
                missing,
            )

    def _open_existing(self, segments: list[Path]) -> None:
        last = segments[-1]
        size = last.stat().st_size
        try:
            header = _read_header_of(last)
        except _ShortHeader:
            _check_torn_segment(last, size, self._record_size)
            self.repairs.append(_drop_torn_segment(last, size, repair=True, locked=True))
            segments = segments[:-1]
            if not segments:  # the first segment's creation was cut off: start it again
                self._next_seq = int(last.name[:20])
                self._create_segment(self._next_seq)
                fsync_dir(self.directory)
                return
            last = segments[-1]
            size = last.stat().st_size
            header = _read_header_of(last)
        _check_layout(header, self.dtype)
        next_seq = header.first_seq
        with open(last, "rb") as f:
            try:
                for _offset, first, count, _records in _scan_blocks(f, header, size, is_last=True):
                    next_seq = first + count
            except _Torn as torn:
                self.repairs.append(_handle_torn(last, torn, repair=True, locked=True))
                next_seq = torn.seq
        self._next_seq = next_seq
        self._path = last
        self._fd = os.open(last, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._offset = os.fstat(self._fd).st_size

    def _create_segment(self, first_seq: int) -> None:
        """Write a new segment's header under a temporary name, fsync it, then rename it."""
        path = self.directory / segment_name(first_seq)
        tmp = self.directory / f".{path.name}.tmp"
        header = build_file_header(self.dtype, first_seq)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            self._fail_write(exc, f"creating segment {path}")
        try:
            done = 0
            while done < len(header):
                done += _writev(fd, [header[done:]])
            if self.fsync is not FsyncPolicy.NEVER:
                _fdatasync(fd)
        except OSError as exc:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            self._fail_write(exc, f"creating segment {path}")
        os.close(fd)
        try:
            os.rename(tmp, path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self._fail_write(exc, f"creating segment {path}")
        self._fd = fd
        self._path = path
        self._offset = len(header)

    def _rotate(self) -> None:
        if self.fsync is not FsyncPolicy.NEVER:
            self._sync_fd()
        os.close(self._fd)
        self._fd = -1
        self._create_segment(self._next_seq)
        self._write_mark()  # the directory fsync below makes its rename durable too
        if self.fsync is not FsyncPolicy.NEVER:
            try:
                fsync_dir(self.directory)
            except OSError as exc:
                self._fail_write(exc, f"syncing directory {self.directory}")

    def _write_mark(self) -> None:
        """Record how far the journal is durable and its newest segment (``durable.mark``).

        Only at creation, rotation and close, never per append: a sound journal never ends
        before the mark, so ``verify_journal`` can tell a deleted newest segment from a
        short journal. A failure to write it is not a journal failure (it is a cross-check).
        """
        mark = DurableMark(self.durable_seq, int(self._path.name[:20]), self.fsync.value)
        with contextlib.suppress(OSError):
            mark.write(self.directory, sync=self.fsync is not FsyncPolicy.NEVER)

    # -- appending -------------------------------------------------------------------------------

    def append(self, batch: np.ndarray) -> int:
        """Append a batch whose ``seq`` runs from ``next_seq`` on; return the last seq written.

        Hot path: one compiled contiguity check, then one ``writev`` of (block header, the
        array's own buffer) per block, no copy of the records and no per-record Python work;
        then the fsync policy. Must not be given a batch it has to convert per record.

        The batch is one append: it goes whole into one segment (rotating first if it does
        not fit, so a segment exceeds ``segment_bytes`` only when one append does) and
        readers yield it whole, so a replay sees the batches that were written.
        """
        if self._failed is not None:
            raise JournalError(f"journal {self.directory} is closed for writing: {self._failed}")
        n = len(batch)
        if n == 0:
            return self.written_seq
        if batch.dtype != self.dtype:
            raise JournalLayoutError(
                f"journal {self.directory}: batch has another record layout: "
                f"{describe_layout_difference(batch.dtype, self.dtype)}"
            )
        seqs = batch["seq"]
        first = self._next_seq
        gap = first_gap(seqs, first)
        if gap >= 0:
            raise ValueError(
                f"journal {self.directory}: batch seqs {int(seqs[0])}..{int(seqs[-1])} "
                f"(n={n}) are not contiguous from the expected next seq {first}: record {gap} "
                f"has seq {int(seqs[gap])}, {first + gap} expected"
            )
        if not batch.flags.c_contiguous:
            batch = np.ascontiguousarray(batch)
        raw = batch.view(np.uint8)
        rs = self._record_size
        blocks = -(-n // self._max_block_records)
        size = n * rs + blocks * BLOCK_HEADER.size
        if self._offset > self._segment_header_size and self._offset + size > self.segment_bytes:
            self._rotate()  # appends never span segments: a torn append stays in one file
        start = self._offset
        done = 0
        while done < n:
            k = min(n - done, self._max_block_records)
            flags = BLOCK_CONTINUES if done + k < n else 0
            self._write_block(first + done, k, raw[done * rs : (done + k) * rs], flags, start)
            done += k
        self._next_seq = first + n
        if self.fsync is FsyncPolicy.BATCH:
            self._sync_fd()
        elif self.fsync is FsyncPolicy.INTERVAL:
            self.maybe_sync()
        return self._next_seq - 1

    def _write_block(
        self, first_seq: int, count: int, payload: np.ndarray, flags: int, append_start: int
    ) -> None:
        length = BLOCK_HEADER.size + payload.nbytes
        head = struct.pack(
            "<IIIIqI", BLOCK_MAGIC, length, count, crc32c.crc32c(payload), first_seq, flags
        )
        head += struct.pack("<I", crc32c.crc32c(head))
        written = 0
        try:
            written = _writev(self._fd, [head, payload])
            while written < length:  # a short write: finish the block
                if written < len(head):
                    written += _writev(self._fd, [head[written:], payload])
                else:
                    written += _writev(self._fd, [payload[written - len(head) :]])
        except OSError as exc:
            if written or self._offset > append_start:
                # never leave half an append behind
                os.ftruncate(self._fd, append_start)
                self._offset = append_start
            self._fail_write(exc, f"writing seqs {first_seq}..{first_seq + count - 1}")
        self._offset += length

    def _fail_write(self, exc: OSError, what: str) -> None:
        valid = self._next_seq - 1
        if exc.errno in _FULL_DISK_ERRNOS and self.fsync is not FsyncPolicy.NEVER and self._fd >= 0:
            with contextlib.suppress(OSError, JournalError):  # make what was accepted durable
                self._sync_fd()
        where = f"to {self._path} at offset {self._offset}" if self._fd >= 0 else ""
        self._failed = f"{what} failed: {exc.strerror or exc}"
        self.close_quietly()
        if exc.errno in _FULL_DISK_ERRNOS:
            raise JournalFullError(
                f"journal {self.directory}: disk full ({errno.errorcode.get(exc.errno, exc.errno)}) "
                f"{what} {where}; the journal is kept, valid up to seq {valid} (fsynced up to "
                f"{self._synced_seq}) and closed for writing: free space on its file system; "
                f"'tradepipe journal verify {self.directory}' shows what it holds",
                valid,
                self._synced_seq,
            ) from exc
        raise access_error(
            exc,
            self.directory,
            f"{what} {where}".strip()
            + f" (the journal is kept, valid up to seq {valid}, and closed for writing)",
        ) from exc

    # -- durability ----------------------------------------------------------------------------

    def _sync_fd(self) -> None:
        target = self._next_seq - 1
        if target <= self._synced_seq:
            self._last_sync_ns = time.monotonic_ns()
            return
        try:
            _fdatasync(self._fd)
        except OSError as exc:
            # after a failed fsync the page cache state is unknown: stop accepting writes
            self._failed = f"fsync failed: {exc}"
            self.close_quietly()
            raise JournalError(
                f"journal {self.directory}: fsync of {self._path} failed ({exc}); writes "
                f"after seq {self._synced_seq} may not be durable and the journal is closed "
                f"for writing; 'tradepipe journal verify {self.directory}' shows what it holds"
            ) from exc
        self._synced_seq = target
        self._last_sync_ns = time.monotonic_ns()

    def sync(self) -> int:
        """Force everything written to stable storage now; return ``durable_seq``."""
        if self._failed is None and self._fd >= 0:
            self._sync_fd()
        return self.durable_seq

    def maybe_sync(self) -> int:
        """Under the ``interval`` policy, sync if the interval has passed; call it when idle."""
        if (
            self.fsync is FsyncPolicy.INTERVAL
            and self._fd >= 0
            and time.monotonic_ns() - self._last_sync_ns >= self._interval_ns
        ):
            self._sync_fd()
        return self.durable_seq

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Sync (unless the policy is ``never``), record the durable mark, close the segment."""
        if self._fd >= 0 and self._failed is None:
            if self.fsync is not FsyncPolicy.NEVER:
                self._sync_fd()
            self._write_mark()
            if self.fsync is not FsyncPolicy.NEVER:
                with contextlib.suppress(OSError):
                    fsync_dir(self.directory)
        self.close_quietly()

    def close_quietly(self) -> None:
        """Close the file and release the lock without syncing (after a failure)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# reader


class JournalReader:
    """Reads a journal directory as verified numpy batches, from any sequence.

    Every yielded record has passed its block's crc32c and the sequence checks; a torn tail
    ends the iteration with a :class:`TornTailWarning` (and is cut off if ``repair``); any
    other fault raises :class:`JournalCorruptError`. ``dtype=None`` reads the layout stored
    in the journal; otherwise a journal of another layout raises :class:`JournalLayoutError`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        dtype: np.dtype | None = None,
        *,
        repair: bool = False,
    ) -> None:
        self.directory = Path(directory).expanduser()
        if not self.directory.exists():
            raise JournalAccessError(
                f"journal directory {self.directory} does not exist", self.directory, errno.ENOENT
            )
        if not self.directory.is_dir():
            raise JournalAccessError(
                f"journal {self.directory} is a file, not a journal directory: name the "
                "directory that holds the segment (*.tpj) files",
                self.directory,
                errno.ENOTDIR,
            )
        self.repair = repair
        self.repairs: list[TornTail] = []

        self._segments: list[SegmentHeader] = []
        try:
            paths = list_segments(self.directory)
        except OSError as exc:
            raise access_error(exc, self.directory, "listing it") from None
        for i, path in enumerate(paths):
            try:
                header = _read_header_of(path)
            except OSError as exc:
                raise access_error(exc, path, "reading the segment") from None
            except _ShortHeader:
                if i != len(paths) - 1:
                    raise JournalCorruptError(
                        f"journal segment {path} at offset 0: header incomplete but later "
                        "segments exist",
                        path,
                        0,
                        None,
                    ) from None
                size = path.stat().st_size
                known = (
                    dtype
                    if dtype is not None
                    else (self._segments[0].dtype if self._segments else None)
                )
                _check_torn_segment(path, size, None if known is None else known.itemsize)
                self.repairs.append(_drop_torn_segment(path, size, repair=repair))
                continue
            _check_layout(header, dtype)
            if self._segments and header.fingerprint != self._segments[0].fingerprint:
                raise JournalCorruptError(
                    f"journal segment {path} has another record layout than "
                    f"{self._segments[0].path}: "
                    f"{describe_layout_difference(header.dtype, self._segments[0].dtype)}",
                    path,
                    24,
                    header.first_seq,
                )
            self._segments.append(header)
        self.dtype = self._segments[0].dtype if self._segments else dtype
        #: The last valid seq of the journal, known once an iteration has reached its end
        #: (``first_seq - 1`` for a journal without records; None before that).
        self.last_seq: int | None = None

    def close(self) -> None:
        """Nothing to release: files are open only while a batch iteration runs."""

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def first_seq(self) -> int | None:
        """The first sequence the journal holds (None for an empty directory)."""
        return self._segments[0].first_seq if self._segments else None

    @property
    def segments(self) -> list[SegmentHeader]:
        return list(self._segments)

    def batches(
        self, from_seq: int | None = None, to_seq: int | None = None
    ) -> Iterator[np.ndarray]:
        """Yield verified batches (one per block, trimmed to ``from_seq..to_seq`` inclusive)."""
        start = 0
        if from_seq is not None:
            for i, header in enumerate(self._segments):
                if header.first_seq <= from_seq:
                    start = i
        for _path, _offset, records in self._blocks(start, from_seq):
            if records is None:
                continue
            first = int(records["seq"][0])
            lo = 0 if from_seq is None or from_seq <= first else from_seq - first
            hi = len(records)
            if to_seq is not None:
                if first > to_seq:
                    return
                hi = min(hi, to_seq - first + 1)
            if lo < hi:
                yield records[lo:hi] if (lo, hi) != (0, len(records)) else records

    def records(self, from_seq: int | None = None, to_seq: int | None = None) -> Iterator[np.void]:
        """Yield verified records one by one (the slow path: inspection, tests)."""
        for batch in self.batches(from_seq, to_seq):
            yield from batch

    def read(self, from_seq: int | None = None, to_seq: int | None = None) -> np.ndarray:
        """All verified records of a range as one array (for tests and small journals)."""
        parts = list(self.batches(from_seq, to_seq))
        if not parts:
            return np.empty(0, dtype=self.dtype)
        return concat_records(parts)

    def _blocks(
        self, start: int, skip_before: int | None
    ) -> Iterator[tuple[Path, int, np.ndarray | None]]:
        """Every block from segment ``start`` on, with segment continuity checked."""
        expected: int | None = None
        for i in range(start, len(self._segments)):
            header = self._segments[i]
            is_last = i == len(self._segments) - 1
            if expected is not None and header.first_seq != expected:
                raise JournalCorruptError(
                    f"journal segment {header.path} at offset {header.header_size}: starts at "
                    f"seq {header.first_seq} but the previous segment ends before seq {expected}",
                    header.path,
                    header.header_size,
                    expected,
                )
            try:
                size = header.path.stat().st_size
                f = open(header.path, "rb", buffering=1 << 20)  # noqa: SIM115
            except OSError as exc:
                raise access_error(exc, header.path, "reading the segment") from None
            next_seq = header.first_seq
            with f:
                try:
                    for offset, first, count, records in _scan_blocks(
                        f, header, size, is_last=is_last, skip_before=skip_before
                    ):
                        next_seq = first + count
                        yield header.path, offset, records
                except _Torn as torn:
                    self.repairs.append(_handle_torn(header.path, torn, repair=self.repair))
                    self.last_seq = torn.seq - 1
                    return
            expected = next_seq
            if is_last:
                self.last_seq = next_seq - 1


def verify_journal(
    directory: str | os.PathLike[str],
    dtype: np.dtype | None = None,
    *,
    repair: bool = False,
    snapshot_dir: str | os.PathLike[str] | None = None,
) -> JournalReport:
    """Check every block's checksum and every sequence of a journal; return what was found.

    Raises :class:`JournalCorruptError` or :class:`JournalLayoutError` for a journal that
    cannot be replayed; a torn tail is reported in ``torn`` (and cut off if ``repair``).

    A journal can also be intact but short: its newest segment deleted. The end is
    cross-checked against the writer's durable mark and, when ``snapshot_dir`` is given, the
    newest valid snapshot; records they prove existed are reported in ``missing`` (with
    what proves it). A ``snapshot_dir`` that does not exist raises :class:`JournalError`.
    """
    directory = Path(directory).expanduser()
    with JournalReader(directory, dtype, repair=repair) as reader:
        report = JournalReport(directory, segments=len(reader.segments))
        for batch in reader.batches():
            report.blocks += 1
            report.records += len(batch)
            if report.first_seq is None:
                report.first_seq = int(batch["seq"][0])
            report.last_seq = int(batch["seq"][-1])
        for header in reader.segments:
            report.bytes += header.path.stat().st_size if header.path.exists() else 0
        report.torn = list(reader.repairs)
        end = reader.last_seq if reader.last_seq is not None else 0
        newest_first = reader.segments[-1].first_seq if reader.segments else None
    _cross_check_end(report, end, newest_first, snapshot_dir)
    return report


def _cross_check_end(
    report: JournalReport,
    end: int,
    newest_first: int | None,
    snapshot_dir: str | os.PathLike[str] | None,
) -> None:
    """Report records the durable mark or the newest snapshot prove the journal lost."""
    mark = read_durable_mark(report.directory)
    if mark is None:
        exists = (report.directory / DURABLE_MARK_NAME).exists()
        report.checked_against.append(
            f"{DURABLE_MARK_NAME} damaged: the end was not cross-checked against it"
            if exists
            else f"no {DURABLE_MARK_NAME} (a journal from before it existed)"
        )
    else:
        report.checked_against.append(
            f"{DURABLE_MARK_NAME}: durable up to seq {mark.durable_seq} at the writer's last "
            "rotation or close"
        )
        missing = mark.missing_after(end, newest_first)
        if missing is not None:
            report.missing.append(missing)
    if snapshot_dir is not None:
        from stages.persistence.snapshots import SnapshotError, SnapshotStore

        snapshots = Path(snapshot_dir).expanduser()
        if not snapshots.is_dir():
            raise JournalError(
                f"snapshot directory {snapshots} does not exist (or is not a directory)"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a corrupt snapshot is replay's business
            try:
                newest = SnapshotStore(snapshots).latest()
            except SnapshotError as error:
                raise JournalError(str(error)) from None
        if newest is None:
            report.checked_against.append(f"no valid snapshot in {snapshots}")
        else:
            report.checked_against.append(f"snapshot {newest.path.name}: seq {newest.seq}")
            if newest.seq > end:
                report.missing.append(
                    MissingRecords(
                        end + 1, newest.seq, f"snapshot {newest.path} covers up to seq {newest.seq}"
                    )
                )


def prune_segments(directory: str | os.PathLike[str], covered_seq: int) -> list[Path]:
    """Remove the segments every record of which is at most ``covered_seq``; return them.

    Call it with the seq of the oldest snapshot kept: recovery never needs records it covers.
    Only whole segments go (a segment's last record is the next segment's first seq - 1),
    and the last segment always stays, so the writer's position is never lost.
    """
    directory = Path(directory).expanduser()
    segments = list_segments(directory)
    removed = []
    for path, following in itertools.pairwise(segments):
        if int(following.name[:20]) - 1 > covered_seq:
            break
        path.unlink()
        removed.append(path)
    if removed:
        fsync_dir(directory)
    return removed
