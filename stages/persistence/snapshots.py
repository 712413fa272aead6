"""Atomic, checksummed snapshots of engine state, so recovery need not replay from seq 1.

A snapshot is an opaque ``bytes`` payload (what ``Engine.snapshot()`` returns) plus the last
sequence it covers. It is written under a temporary name, fsynced, renamed into place and
the directory fsynced, so a crash leaves either the whole snapshot or none of it. Recovery
takes the newest snapshot that passes its checksum; a corrupt newest one is reported with a
:class:`SnapshotCorruptWarning` and the previous valid one is used. ``keep`` bounds how many
are kept, besides the snapshot of seq 0 (the initial state, which holds the configuration
and is never pruned).

Opening a store never changes the directory: a reader (``tradepipe replay``) may look at
the snapshots of a live run. A temporary file is named for its writer (pid and process
start time) and is removed only by a later save, and only once its writer is provably dead.

The initial state is also kept beside the journal (``initial-state.tps`` in the journal
directory, the same format), written once when a run starts, so a journal alone says which
configuration it was written under even when the snapshot directory is gone.

File ``snapshot-<seq, 20 digits>.tps``: a 64-byte header (magic ``TPSNAPSH``, version,
header size, covered seq, payload length, creation time, payload crc32c, header crc32c)
followed by the payload. ``docs/journal.md`` documents it beside the journal.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import crc32c

from stages.persistence.durable import (
    FULL_DISK_ERRNOS,
    create_directory,
    explain_os_error,
    fsync_dir,
)

MAGIC = b"TPSNAPSH"
VERSION = 1
#: magic, version, header_size, seq, payload_len, created (unix ns), reserved,
#: payload_crc, header_crc.
SNAPSHOT_HEADER = struct.Struct("<8sIIqqqIII")
assert SNAPSHOT_HEADER.size == 52
HEADER_SIZE = 64  # the struct, zero-padded to one cache line

_NAME = re.compile(r"^snapshot-(\d{20})\.tps$")
#: ``.snapshot-<seq>.tps.<pid>-<start time>.tmp`` (older files: ``.<pid>.tmp``)
_TEMP_NAME = re.compile(r"^\.snapshot-\d{20}\.tps\.(\d+)(?:-(\d+))?\.tmp$")
INITIAL_STATE_NAME = "initial-state.tps"


class SnapshotError(Exception):
    """A snapshot could not be written or read; the message names the file."""


class SnapshotWriteError(SnapshotError):
    """Saving a snapshot failed (full disk, read-only, no permission...); nothing was left.

    ``disk_full`` says whether freeing space is the fix; the journal is unaffected.
    """

    def __init__(self, message: str, path: Path, errno_: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno_
        self.disk_full = errno_ in FULL_DISK_ERRNOS


class SnapshotFailedWarning(UserWarning):
    """A periodic snapshot could not be saved; the run went on (the journal holds the data)."""


def is_snapshot_file(name: str) -> bool:
    """Whether a file name is one a snapshot store makes (snapshots and their temp files)."""
    return _NAME.match(name) is not None or _TEMP_NAME.match(name) is not None


def _start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), None if not running."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def _temp_writer_is_dead(name: str) -> bool:
    """Whether the process that wrote this temp file is provably gone."""
    match = _TEMP_NAME.match(name)
    if match is None:
        return False
    pid = int(match.group(1))
    started = _start_time(pid)
    if started is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False  # exists, another user's
        return False  # alive, but /proc is not readable: keep it
    return match.group(2) is not None and int(match.group(2)) != started


class SnapshotCorruptWarning(UserWarning):
    """A snapshot failed its checks and was skipped in favour of an older one."""


@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot: the state payload and the last sequence it covers."""

    seq: int
    payload: bytes
    path: Path
    created_ns: int


def snapshot_name(seq: int) -> str:
    return f"snapshot-{seq:020d}.tps"


def encode_snapshot(seq: int, payload: bytes, created_ns: int | None = None) -> bytes:
    """The full file content of a snapshot (header + payload)."""
    created = time.time_ns() if created_ns is None else created_ns
    head = SNAPSHOT_HEADER.pack(
        MAGIC, VERSION, HEADER_SIZE, seq, len(payload), created, 0, crc32c.crc32c(payload), 0
    )
    head = head[:48] + struct.pack("<I", crc32c.crc32c(head[:48])) + bytes(12)
    return head + payload


def decode_snapshot(path: Path, data: bytes) -> Snapshot:
    """Check a snapshot file's content; raise :class:`SnapshotError` saying what is wrong."""
    if len(data) < HEADER_SIZE:
        raise SnapshotError(f"snapshot {path}: {len(data)} bytes, shorter than its header")
    magic, version, header_size, seq, length, created, _r, payload_crc, header_crc = (
        SNAPSHOT_HEADER.unpack_from(data)
    )
    if magic != MAGIC:
        raise SnapshotError(f"snapshot {path}: magic {magic!r} is not {MAGIC!r}")
    if crc32c.crc32c(data[:48]) != header_crc or data[52:HEADER_SIZE] != bytes(12):
        raise SnapshotError(f"snapshot {path}: header checksum mismatch")
    if version != VERSION or header_size != HEADER_SIZE:
        raise SnapshotError(
            f"snapshot {path}: version {version} / header size {header_size}, "
            f"this code reads version {VERSION} with a {HEADER_SIZE}-byte header"
        )
    payload = data[HEADER_SIZE:]
    if len(payload) != length:
        raise SnapshotError(
            f"snapshot {path}: payload is {len(payload)} bytes, the header says {length}"
        )
    if crc32c.crc32c(payload) != payload_crc:
        raise SnapshotError(f"snapshot {path}: payload checksum mismatch")
    name = _NAME.match(path.name)
    if name and int(name.group(1)) != seq:
        raise SnapshotError(f"snapshot {path}: header covers seq {seq}, the name says otherwise")
    return Snapshot(seq, payload, path, created)


class SnapshotStore:
    """A directory of snapshots: atomic saves, newest-valid lookup, pruning to ``keep``.

    Opening one neither creates nor changes anything; the first save creates the directory.
    """

    def __init__(self, directory: str | os.PathLike[str], *, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"snapshot keep={keep} must be >= 1 (the newest is always kept)")
        self.directory = Path(directory).expanduser()
        self.keep = keep
        self._stale_checked = False

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SnapshotError(
                explain_os_error(exc, self.directory, "listing it", "snapshot directory")
            ) from None

    def paths(self) -> list[Path]:
        """Snapshot files, oldest first (none when the directory does not exist)."""
        return sorted(self.directory / n for n in self._names() if _NAME.match(n))

    def remove_stale_temp_files(self) -> list[Path]:
        """Remove temp files of saves whose writer is provably dead; return them.

        Only a writer calls this (``save`` does, once); a live writer's temp file is never
        touched, so a reader and a running snapshotter cannot interfere.
        """
        removed = []
        for name in self._names():
            if _temp_writer_is_dead(name):
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / name).unlink()
                    removed.append(self.directory / name)
        return removed

    def save(self, seq: int, payload: bytes) -> Path:
        """Write a snapshot covering up to ``seq`` atomically, then prune old ones.

        Raises :class:`SnapshotWriteError` (after removing its temp file) when the system
        refuses: a full disk, a read-only file system, no permission, a file in the way.
        """
        if seq < 0:
            raise ValueError(f"snapshot seq={seq} must be >= 0")
        path = self.directory / snapshot_name(seq)
        create_directory(
            self.directory,
            named="snapshot directory",
            kind="snapshot",
            doing="creating the snapshot directory",
            error=SnapshotWriteError,
        )
        if not self._stale_checked:
            self._stale_checked = True
            self.remove_stale_temp_files()
        _write_atomically(path, encode_snapshot(seq, bytes(payload)))
        self.prune()
        return path

    def prune(self) -> list[Path]:
        """Remove all but the ``keep`` newest snapshots, never seq 0; return what was removed.

        The snapshot of seq 0 is the initial state: it holds the configuration a replay
        of the whole journal needs, so it stays whatever ``keep`` says.
        """
        paths = self.paths()
        removed = [
            path
            for path in paths[: max(0, len(paths) - self.keep)]
            if path.name != snapshot_name(0)
        ]
        for path in removed:
            path.unlink(missing_ok=True)
        if removed:
            fsync_dir(self.directory)
        return removed

    def load(self, path: Path) -> Snapshot:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SnapshotError(explain_os_error(exc, path, "reading it", "snapshot")) from None
        return decode_snapshot(path, data)

    def latest(self, max_seq: int | None = None) -> Snapshot | None:
        """The newest snapshot that passes its checks (and covers at most ``max_seq``).

        A corrupt one is reported with a :class:`SnapshotCorruptWarning` and skipped.
        """
        for path in reversed(self.paths()):
            if max_seq is not None and int(path.name[9:29]) > max_seq:
                continue
            try:
                return self.load(path)
            except SnapshotError as exc:
                warnings.warn(
                    f"{exc}; skipping it for an older snapshot",
                    SnapshotCorruptWarning,
                    stacklevel=2,
                )
        return None


def _write_error(exc: OSError, path: Path, doing: str) -> SnapshotWriteError:
    return SnapshotWriteError(explain_os_error(exc, path, doing, "snapshot"), path, exc.errno)


def _process_tag() -> str:
    started = _start_time(os.getpid())
    return f"{os.getpid()}-{started}" if started is not None else str(os.getpid())


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temp name, fsync, rename, fsync the directory.

    On any failure the temp file is removed and :class:`SnapshotWriteError` raised.
    """
    tmp = path.parent / f".{path.name}.{_process_tag()}.tmp"
    fd = -1
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        view = memoryview(data)
        done = 0
        while done < len(data):
            done += os.write(fd, view[done:])
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise _write_error(exc, path, "writing it") from None


def write_initial_state(journal_dir: str | os.PathLike[str], payload: bytes) -> Path:
    """Keep the initial state (seq 0) beside the journal, once; return its path.

    Written before the first record, so a journal always says which configuration it was
    written under. An existing one is left as it is (a journal has one initial state).
    """
    path = Path(journal_dir).expanduser() / INITIAL_STATE_NAME
    if not path.exists():
        _write_atomically(path, encode_snapshot(0, bytes(payload)))
    return path


def read_initial_state(journal_dir: str | os.PathLike[str]) -> Snapshot | None:
    """The initial state kept beside a journal, None when it has none.

    A damaged one raises :class:`SnapshotError` naming the file: it is never ignored.
    """
    path = Path(journal_dir).expanduser() / INITIAL_STATE_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SnapshotError(explain_os_error(exc, path, "reading it", "snapshot")) from None
    return decode_snapshot(path, data)
