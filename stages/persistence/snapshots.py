"""Atomic, checksummed snapshots of engine state, so recovery need not replay from seq 1.

A snapshot is an opaque ``bytes`` payload (what ``Engine.snapshot()`` returns) plus the last
sequence it covers. It is written under a temporary name, fsynced, renamed into place and
the directory fsynced, so a crash leaves either the whole snapshot or none of it. Recovery
takes the newest snapshot that passes its checksum; a corrupt newest one is reported with a
:class:`SnapshotCorruptWarning` and the previous valid one is used. ``keep`` bounds how many
are kept.

File ``snapshot-<seq, 20 digits>.tps``: a 64-byte header (magic ``TPSNAPSH``, version,
header size, covered seq, payload length, creation time, payload crc32c, header crc32c)
followed by the payload. ``docs/journal.md`` documents it beside the journal.
"""

from __future__ import annotations

import os
import re
import struct
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import crc32c

from stages.persistence.durable import fsync_dir

MAGIC = b"TPSNAPSH"
VERSION = 1
#: magic, version, header_size, seq, payload_len, created (unix ns), reserved,
#: payload_crc, header_crc.
SNAPSHOT_HEADER = struct.Struct("<8sIIqqqIII")
assert SNAPSHOT_HEADER.size == 52
HEADER_SIZE = 64  # the struct, zero-padded to one cache line

_NAME = re.compile(r"^snapshot-(\d{20})\.tps$")


class SnapshotError(Exception):
    """A snapshot could not be written or read; the message names the file."""


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
    """A directory of snapshots: atomic saves, newest-valid lookup, pruning to ``keep``."""

    def __init__(self, directory: str | os.PathLike[str], *, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"snapshot keep={keep} must be >= 1 (the newest is always kept)")
        self.directory = Path(directory)
        self.keep = keep
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(".snapshot-*.tmp"):
            stale.unlink()  # a save cut off by a crash; never a valid snapshot

    def paths(self) -> list[Path]:
        """Snapshot files, oldest first."""
        return sorted(p for p in self.directory.iterdir() if _NAME.match(p.name))

    def save(self, seq: int, payload: bytes) -> Path:
        """Write a snapshot covering up to ``seq`` atomically, then prune old ones."""
        if seq < 0:
            raise ValueError(f"snapshot seq={seq} must be >= 0")
        path = self.directory / snapshot_name(seq)
        tmp = self.directory / f".{path.name}.{os.getpid()}.tmp"
        data = encode_snapshot(seq, bytes(payload))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            done = 0
            while done < len(data):
                done += os.write(fd, view[done:])
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise SnapshotError(f"snapshot {path}: write failed: {exc}") from exc
        os.close(fd)
        os.replace(tmp, path)
        fsync_dir(self.directory)
        self.prune()
        return path

    def prune(self) -> list[Path]:
        """Remove all but the ``keep`` newest snapshots; return what was removed."""
        paths = self.paths()
        removed = paths[: max(0, len(paths) - self.keep)]
        for path in removed:
            path.unlink(missing_ok=True)
        if removed:
            fsync_dir(self.directory)
        return removed

    def load(self, path: Path) -> Snapshot:
        return decode_snapshot(path, path.read_bytes())

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
