"""Block scanning: the one place that decides whether a block is valid, a torn tail or
corruption, and the repair of a torn tail.

A block is valid when both checksums match, its first sequence is the one expected, its
length matches its count and every record's ``seq`` continues the block's first sequence
(:func:`first_gap`). A bad block is judged by what follows it, because after a power loss
any page of the last, never acknowledged append may be lost or stale while later pages
reached the disk:

* in the last segment, a bad block with no valid block after it is a **torn tail**
  (:class:`TornAppend` from :func:`scan_blocks`; :func:`cut_torn_tail` reports it with a
  ``TornTailWarning`` and, under the writer lock, truncates it);
* a bad block followed by a valid one (searched for at every offset a block can start at,
  the blocks of the torn append itself excepted) is **corruption**: a later append was
  written, so the bad one may have been acknowledged (``JournalCorruptError``, never cut);
* anything wrong in an earlier segment is corruption.

The forward search runs only on a bad block, as a C-speed ``find`` of the block magic;
reading a sound journal never pays for it. ``docs/journal.md`` has the full table.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c
import numba
import numpy as np

from ringbuffer.records import concat_records
from stages.persistence.durable import fsync_dir
from stages.persistence.journal_errors import JournalCorruptError, TornTailWarning
from stages.persistence.journal_lock import lock_journal
from stages.persistence.journal_segments import (
    BLOCK_CONTINUES,
    BLOCK_HEADER,
    BLOCK_MAGIC,
    SEGMENT_NAME,
    SegmentHeader,
)


@numba.njit(cache=True, nogil=True)
def first_gap(seqs: np.ndarray, first: int) -> int:
    """HOT. The index of the first ``seqs[i] != first + i``, or -1 when all are contiguous.

    Compiled: one pass over the (strided) seq column, no allocation, no Python per record.
    """
    for i in range(seqs.shape[0]):
        if seqs[i] != first + i:
            return i
    return -1


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


class TornAppend(Exception):
    """The last segment's tail is torn from ``offset`` (first lost sequence ``seq``) on."""

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


def scan_blocks(
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
    :class:`TornAppend` when the segment's tail is torn (only possible in the last segment; an
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
                raise TornAppend(append_offset, append_seq, reason)
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


def check_torn_segment(path: Path, size: int, record_size: int | None) -> None:
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


def cut_torn_tail(path: Path, torn: TornAppend, *, repair: bool, locked: bool = False) -> TornTail:
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


def drop_torn_segment(path: Path, size: int, *, repair: bool, locked: bool = False) -> TornTail:
    """Report a segment whose creation was cut off and, if ``repair``, remove it."""
    first = int(path.name[:20]) if SEGMENT_NAME.match(path.name) else -1
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
