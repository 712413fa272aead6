"""A journal's segment files: their names, their file header, the block header format, and
which segments a directory holds.

A journal is a directory of segment files named by the sequence of their first record
(``00000000000000000001.tpj``, 20 digits). Each starts with a checksummed file header
(magic ``TPJOURNL``, format version, record size, the record layout as JSON and its
fingerprint, the first sequence) and continues with blocks: a 32-byte checksummed header
(magic ``TPBK``, length, count, crc32c of the records, first sequence, flags) and then the
records. ``docs/journal.md`` is the reference for every byte.

Invariants: a segment's header names the layout of every record in it (stored, not only
fingerprinted, so a difference can be named and a journal read without knowing its dtype);
its first sequence equals its file name; sequences are contiguous across blocks and
segments; an append never spans segments (it is one block, or several flagged
``BLOCK_CONTINUES``), so a crash tears one append in one file. These bytes are a file
format: version 1 is read byte for byte by every later version.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c
import numpy as np

from ringbuffer.layout import fingerprint, layout_json
from stages.persistence.durable import fsync_dir
from stages.persistence.journal_errors import (
    JournalCorruptError,
    JournalError,
    JournalLayoutError,
)

MAGIC = b"TPJOURNL"
VERSION = 1
SEGMENT_SUFFIX = ".tpj"

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

#: A segment file's name; group 1 is its first sequence.
SEGMENT_NAME = re.compile(r"^(\d{20})\.tpj$")
_JOURNAL_FILE = re.compile(
    r"^(\d{20}\.tpj|\.\d{20}\.tpj\.tmp|writer\.lock|durable\.mark|\.durable\.mark\.tmp"
    r"|initial-state\.tps|\.initial-state\.tps\.[\d-]+\.tmp"
    r"|gateway-orders\.tpg|\.gateway-orders\.tpg\.\d+\.tmp)$"  # the gateway's order-id log
)


def is_journal_file(name: str) -> bool:
    """Whether a file name is one a journal writer makes (segments, lock, mark, temp files)."""
    return _JOURNAL_FILE.match(name) is not None


def segment_name(first_seq: int) -> str:
    """The file name of the segment whose first record has sequence ``first_seq``."""
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def list_segments(directory: Path) -> list[Path]:
    """The segment files of a journal directory, oldest first."""
    return sorted(p for p in directory.iterdir() if SEGMENT_NAME.match(p.name))


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


class ShortHeader(Exception):
    """The file holds no header (short or zero-filled): a segment whose creation was cut off."""


def read_segment_header(path: Path, data: bytes) -> SegmentHeader:
    """Parse and check a segment header from the first bytes of its file."""
    if len(data) < FILE_HEADER.size or data.count(0) == len(data):
        raise ShortHeader(len(data))
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
    name = SEGMENT_NAME.match(path.name)
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


def read_header_of(path: Path) -> SegmentHeader:
    """Read and check the header of the segment file ``path`` (``ShortHeader``: none there)."""
    with open(path, "rb") as f:
        head = f.read(FILE_HEADER.size)
        if len(head) == FILE_HEADER.size:
            (header_size,) = struct.unpack_from("<I", head, 12)
            if FILE_HEADER.size < header_size <= 1 << 20:
                head += f.read(header_size - FILE_HEADER.size)
    return read_segment_header(path, head)


def check_layout(header: SegmentHeader, dtype: np.dtype | None) -> None:
    """Raise :class:`JournalLayoutError` saying what differs unless the segment holds
    records of ``dtype`` (None: any layout)."""
    if dtype is not None and header.fingerprint != fingerprint(dtype):
        raise JournalLayoutError(
            f"journal segment {header.path} was written with another record layout: "
            f"{describe_layout_difference(header.dtype, dtype)}; open it with the layout "
            "it was written with (or a matching version of the code)"
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


def check_record_dtype(dtype: np.dtype) -> np.dtype:
    """``dtype`` as a numpy dtype, refused unless it has the little-endian int64 ``seq``
    field every journal record needs."""
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
