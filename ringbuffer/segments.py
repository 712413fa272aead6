"""Named POSIX shared-memory segments with a lifecycle the supervisor controls.

Why not plain ``multiprocessing.shared_memory.SharedMemory``: on Python 3.11/3.12 every
*attaching* process registers the segment with the resource tracker, which unlinks it when
that process exits (CPython gh-82300) — a stage that stops would destroy the ring for
everyone. So segments are opened here with the same primitives the stdlib uses
(``_posixshmem.shm_open`` + ``mmap``) and never registered: the creator unlinks them
explicitly, and ``remove_stale_segments`` (``tradepipe clean``) removes what a crash left.

Names are ``tradepipe.<creator pid>.<label>``: the pid tells whether the creator is alive,
so stale segments are recognisable without opening them. ``/dev/shm`` is writable by every
user, so anything may sit there under such a name: only a regular file whose name is
exactly what ``segment_name`` makes (a pid of 1..2^31-1 without leading zeros, a label
without dots) counts as a segment; the rest is reported, never touched.
"""

from __future__ import annotations

import _posixshmem
import contextlib
import errno
import fcntl
import mmap
import os
import stat
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from ringbuffer.errors import AttachError

PREFIX = "tradepipe"
SHM_DIR = Path("/dev/shm")
MAX_PID = 2**31 - 1  # pid_t is a 32-bit int


def segment_name(label: str, pid: int | None = None) -> str:
    """The full segment name for ``label`` created by ``pid`` (default: this process)."""
    if not label or "/" in label or "." in label:
        raise ValueError(f"segment label {label!r} must be non-empty, without '/' or '.'")
    return f"{PREFIX}.{os.getpid() if pid is None else pid}.{label}"


def creator_pid(name: str) -> int | None:
    """The creator pid encoded in a segment name, or None if ``segment_name`` cannot have
    made the name (wrong prefix, a pid out of range or with leading zeros, a bad label)."""
    parts = name.split(".", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    digits, label = parts[1], parts[2]
    if not (digits.isascii() and digits.isdigit()) or digits.startswith("0"):
        return None
    if len(digits) > len(str(MAX_PID)) or not 0 < int(digits) <= MAX_PID:
        return None
    if not label or "." in label or "/" in label:
        return None
    return int(digits)


@dataclass
class Segment:
    """A mapped segment. ``buf`` is the writable mapping; close it before unlinking twice."""

    name: str
    size: int
    buf: mmap.mmap

    def close(self) -> None:
        """Unmap. If numpy views still point into the mapping, it is released when they die."""
        # With exported views alive, the mapping goes away with the last of them instead.
        with contextlib.suppress(BufferError):
            self.buf.close()

    def unlink(self) -> None:
        """Remove the name from /dev/shm; mappings stay valid until closed."""
        unlink_segment(self.name)


def create_segment(name: str, size: int) -> Segment:
    """Create a new zero-filled segment of ``size`` bytes; fails if the name exists."""
    if size <= 0:
        raise ValueError(f"segment size must be positive, got {size}")
    fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
    try:
        os.ftruncate(fd, size)
        buf = mmap.mmap(fd, size)
    except BaseException:
        os.close(fd)
        _posixshmem.shm_unlink("/" + name)
        raise
    os.close(fd)
    return Segment(name, size, buf)


def attach_segment(name: str) -> Segment:
    """Map an existing segment read-write, without registering it anywhere."""
    try:
        fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
    except FileNotFoundError:
        raise AttachError(f"shared-memory segment {name!r} does not exist") from None
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise AttachError(f"shared-memory segment {name!r} is empty (creation unfinished?)")
        buf = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    return Segment(name, size, buf)


def unlink_segment(name: str) -> None:
    """Remove ``name`` from /dev/shm; a missing segment is not an error."""
    with contextlib.suppress(FileNotFoundError):
        _posixshmem.shm_unlink("/" + name)


_FLOCK = struct.Struct("@hhqqi4x")  # struct flock of 64-bit Linux (off_t is 64-bit)
#: open-file-description locks (Linux >= 3.15): released when the holder's fd is closed,
#: which the kernel does when the holder dies, however it dies
OFD_LOCKS = (
    sys.platform.startswith("linux") and hasattr(fcntl, "F_OFD_SETLK") and sys.maxsize > 2**32
)
NO_LOCK = -1  # what ``lock_byte`` returns where OFD locks do not exist


def lock_byte(name: str, offset: int) -> int | None:
    """Take an exclusive lock on byte ``offset`` of segment ``name``, without waiting.

    Returns the file descriptor that holds the lock (close it to release the lock), None if
    another holder has it (in any process, this one included), or ``NO_LOCK`` where the
    platform has no open-file-description locks. The lock is the kernel's, so taking it is
    atomic, and it dies with its holder: a crashed process never keeps it.
    """
    if not OFD_LOCKS:
        return NO_LOCK
    try:
        fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
    except FileNotFoundError:
        raise AttachError(f"shared-memory segment {name!r} does not exist") from None
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0))
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


@dataclass(frozen=True)
class SegmentInfo:
    name: str
    creator_pid: int
    size: int
    creator_alive: bool


def scan_segments() -> tuple[list[SegmentInfo], list[tuple[str, str]]]:
    """Every segment of this project in /dev/shm, with whether its creator still runs, and
    ``(name, why)`` for each entry that looks like one of ours but is not (skipped)."""
    found: list[SegmentInfo] = []
    skipped: list[tuple[str, str]] = []
    if not SHM_DIR.is_dir():
        return found, skipped
    for path in sorted(SHM_DIR.iterdir()):
        name = path.name
        if not name.startswith(PREFIX + "."):
            continue  # somebody else's
        pid = creator_pid(name)
        if pid is None:
            skipped.append((name, "not a tradepipe segment name"))
            continue
        try:
            status = path.lstat()
        except FileNotFoundError:
            continue  # removed meanwhile
        except OSError as error:
            skipped.append((name, error.strerror or str(error)))
            continue
        if not stat.S_ISREG(status.st_mode):
            skipped.append((name, "not a regular file"))
            continue
        found.append(SegmentInfo(name, pid, status.st_size, psutil.pid_exists(pid)))
    return found, skipped


def list_segments() -> list[SegmentInfo]:
    """Every segment of this project in /dev/shm, with whether its creator still runs."""
    return scan_segments()[0]


@dataclass
class CleanReport:
    """What ``remove_stale_segments`` did: removed names, and ``(name, why)`` for entries
    skipped because they are not segments of ours and for segments it could not remove."""

    removed: list[str]
    skipped: list[tuple[str, str]]
    failed: list[tuple[str, str]]


def clean_segments(include_live: bool = False) -> CleanReport:
    """Unlink segments whose creator is dead (or all of ours with ``include_live``); one
    entry that cannot be handled never stops the others."""
    infos, skipped = scan_segments()
    report = CleanReport([], skipped, [])
    for info in infos:
        if include_live or not info.creator_alive:
            try:
                unlink_segment(info.name)
            except OSError as error:
                report.failed.append((info.name, error.strerror or str(error)))
                continue
            report.removed.append(info.name)
    return report


def remove_stale_segments(include_live: bool = False) -> list[str]:
    """Unlink segments whose creator is dead (or all of ours with ``include_live``); the
    names removed (``clean_segments`` also says what was skipped or failed)."""
    return clean_segments(include_live).removed
