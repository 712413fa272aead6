"""NASDAQ TotalView-ITCH 5.0 decoding: find message boundaries, then view each type as a dtype.

Users validate the pipeline against real exchange days, which come as ITCH 5.0 files: a stream
of binary messages, each preceded by a 2-byte big-endian length. Decoding happens in two
passes so that no Python runs per message:

1. ``frame`` walks the length prefixes in one compiled loop and returns every message's
   offset and type. The length of a message is fixed by its type in ITCH 5.0, so the length
   is derived from the type and checked against the prefix when the prefix is non-zero
   (some distributed files carry zeroed prefixes). Framing is a chain (each message's start
   depends on the previous one's length), which numpy cannot vectorise in O(n); the loop is
   compiled with numba, the project's tool for hot loops.
2. ``split_by_type`` copies each type's messages into one contiguous block and views it as
   that type's big-endian structured dtype (``DTYPES``), so fields are numpy columns.

Every field offset and length below follows the specification (NASDAQ TotalView-ITCH 5.0):
all messages share an 11-byte header (type, stock locate, tracking number, 6-byte timestamp
in ns since midnight); prices are 4-byte unsigned integers with 4 implied decimals
(``Price(4)``), except MWCB levels (8 bytes, 8 decimals); stock names are 8 ASCII bytes,
left-justified, space-padded.

Corrupt or truncated input raises ``Itch50FormatError`` naming the byte offset; every message
before that offset has already been handed to the caller.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from stages.ingest import feedfile

#: Length in bytes of each ITCH 5.0 message, without its 2-byte length prefix.
MESSAGE_LENGTHS: dict[str, int] = {
    "S": 12,  # system event
    "R": 39,  # stock directory
    "H": 25,  # stock trading action
    "Y": 20,  # Reg SHO short sale price test restricted indicator
    "L": 26,  # market participant position
    "V": 35,  # MWCB decline level
    "W": 12,  # MWCB status
    "K": 28,  # IPO quoting period update
    "J": 35,  # LULD auction collar
    "h": 21,  # operational halt
    "A": 36,  # add order, no MPID attribution
    "F": 40,  # add order with MPID attribution
    "E": 31,  # order executed
    "C": 36,  # order executed with price
    "X": 23,  # order cancel (partial)
    "D": 19,  # order delete
    "U": 35,  # order replace
    "P": 44,  # trade (non-cross)
    "Q": 40,  # cross trade
    "B": 19,  # broken trade
    "I": 50,  # net order imbalance indicator (NOII)
    "N": 20,  # retail price improvement indicator (RPII)
    "O": 48,  # direct listing with capital raise price discovery
}

#: The 11-byte header every message starts with. The 6-byte timestamp is split into its
#: high 2 and low 4 bytes because numpy has no 48-bit integer; see ``timestamps_ns``.
HEADER_FIELDS: list[tuple[str, str]] = [
    ("type", "S1"),
    ("stock_locate", ">u2"),
    ("tracking_number", ">u2"),
    ("timestamp_hi", ">u2"),
    ("timestamp_lo", ">u4"),
]
HEADER_LENGTH = 11

_BODY_FIELDS: dict[str, list[tuple[str, str]]] = {
    "S": [("event_code", "S1")],
    "R": [
        ("stock", "S8"),
        ("market_category", "S1"),
        ("financial_status_indicator", "S1"),
        ("round_lot_size", ">u4"),
        ("round_lots_only", "S1"),
        ("issue_classification", "S1"),
        ("issue_sub_type", "S2"),
        ("authenticity", "S1"),
        ("short_sale_threshold_indicator", "S1"),
        ("ipo_flag", "S1"),
        ("luld_reference_price_tier", "S1"),
        ("etp_flag", "S1"),
        ("etp_leverage_factor", ">u4"),
        ("inverse_indicator", "S1"),
    ],
    "H": [
        ("stock", "S8"),
        ("trading_state", "S1"),  # H halted, P paused, Q quotation only, T trading
        ("reserved", "S1"),
        ("reason", "S4"),
    ],
    "Y": [("stock", "S8"), ("reg_sho_action", "S1")],
    "L": [
        ("mpid", "S4"),
        ("stock", "S8"),
        ("primary_market_maker", "S1"),
        ("market_maker_mode", "S1"),
        ("market_participant_state", "S1"),
    ],
    "V": [("level1", ">u8"), ("level2", ">u8"), ("level3", ">u8")],  # Price(8)
    "W": [("breached_level", "S1")],
    "K": [
        ("stock", "S8"),
        ("ipo_quotation_release_time", ">u4"),  # seconds since midnight
        ("ipo_quotation_release_qualifier", "S1"),
        ("ipo_price", ">u4"),
    ],
    "J": [
        ("stock", "S8"),
        ("auction_collar_reference_price", ">u4"),
        ("upper_auction_collar_price", ">u4"),
        ("lower_auction_collar_price", ">u4"),
        ("auction_collar_extension", ">u4"),
    ],
    "h": [("stock", "S8"), ("market_code", "S1"), ("operational_halt_action", "S1")],
    "A": [
        ("order_reference_number", ">u8"),
        ("buy_sell_indicator", "S1"),
        ("shares", ">u4"),
        ("stock", "S8"),
        ("price", ">u4"),
    ],
    "F": [
        ("order_reference_number", ">u8"),
        ("buy_sell_indicator", "S1"),
        ("shares", ">u4"),
        ("stock", "S8"),
        ("price", ">u4"),
        ("attribution", "S4"),
    ],
    "E": [
        ("order_reference_number", ">u8"),
        ("executed_shares", ">u4"),
        ("match_number", ">u8"),
    ],
    "C": [
        ("order_reference_number", ">u8"),
        ("executed_shares", ">u4"),
        ("match_number", ">u8"),
        ("printable", "S1"),
        ("execution_price", ">u4"),
    ],
    "X": [("order_reference_number", ">u8"), ("cancelled_shares", ">u4")],
    "D": [("order_reference_number", ">u8")],
    "U": [
        ("original_order_reference_number", ">u8"),
        ("new_order_reference_number", ">u8"),
        ("shares", ">u4"),
        ("price", ">u4"),
    ],
    "P": [
        ("order_reference_number", ">u8"),
        ("buy_sell_indicator", "S1"),
        ("shares", ">u4"),
        ("stock", "S8"),
        ("price", ">u4"),
        ("match_number", ">u8"),
    ],
    "Q": [
        ("shares", ">u8"),
        ("stock", "S8"),
        ("cross_price", ">u4"),
        ("match_number", ">u8"),
        ("cross_type", "S1"),
    ],
    "B": [("match_number", ">u8")],
    "I": [
        ("paired_shares", ">u8"),
        ("imbalance_shares", ">u8"),
        ("imbalance_direction", "S1"),
        ("stock", "S8"),
        ("far_price", ">u4"),
        ("near_price", ">u4"),
        ("current_reference_price", ">u4"),
        ("cross_type", "S1"),
        ("price_variation_indicator", "S1"),
    ],
    "N": [("stock", "S8"), ("interest_flag", "S1")],
    "O": [
        ("stock", "S8"),
        ("open_eligibility_status", "S1"),
        ("minimum_allowable_price", ">u4"),
        ("maximum_allowable_price", ">u4"),
        ("near_execution_price", ">u4"),
        ("near_execution_time", ">u8"),
        ("lower_price_range_collar", ">u4"),
        ("upper_price_range_collar", ">u4"),
    ],
}

#: One packed (unaligned) big-endian structured dtype per message type.
DTYPES: dict[str, np.dtype] = {
    kind: np.dtype(HEADER_FIELDS + body) for kind, body in _BODY_FIELDS.items()
}
for _kind, _dtype in DTYPES.items():
    assert _dtype.itemsize == MESSAGE_LENGTHS[_kind], (_kind, _dtype.itemsize)


def field_at(kind: str, name: str) -> tuple[int, int]:
    """``(offset, length)`` in bytes of field ``name`` of message type ``kind``, counted from
    the type byte, read off ``DTYPES``: plain ints, which compiled code folds as constants."""
    base, offset = DTYPES[kind].fields[name][:2]
    return offset, base.itemsize


#: Message length indexed by type byte; 0 marks a byte that is not an ITCH 5.0 type.
LENGTH_BY_TYPE_BYTE = np.zeros(256, dtype=np.int64)
for _kind, _length in MESSAGE_LENGTHS.items():
    LENGTH_BY_TYPE_BYTE[ord(_kind)] = _length

#: Message types that change a book (A F add, E C execute, X cancel, D delete, U replace).
ORDER_TYPES = "AFECXDU"

# Framing outcome codes (``frame``'s ``status``).
FRAME_OK = 0
FRAME_TRUNCATED = 1  # the buffer ends inside a prefix or a message
FRAME_UNKNOWN_TYPE = 2  # the type byte is not an ITCH 5.0 message type
FRAME_BAD_LENGTH = 3  # a non-zero prefix disagrees with the type's length

_FRAME_PROBLEMS = {
    FRAME_TRUNCATED: "truncated message",
    FRAME_UNKNOWN_TYPE: "unknown message type",
    FRAME_BAD_LENGTH: "length prefix disagrees with the message type",
}


class Itch50FormatError(ValueError):
    """The input is not valid ITCH 5.0 at ``offset``; every message before it was delivered."""

    def __init__(self, offset: int, problem: str, messages_before: int) -> None:
        self.offset = offset
        self.problem = problem
        self.messages_before = messages_before
        super().__init__(
            f"ITCH 5.0 input invalid at byte offset {offset}: {problem} "
            f"({messages_before} messages before it were processed)"
        )


@numba.njit(cache=True, nogil=True)
def _frame(buf, length_by_type, offsets, types):
    size = buf.shape[0]
    pos = 0
    n = 0
    while pos < size:
        if pos + 3 > size:
            return n, pos, FRAME_TRUNCATED, 0
        kind = buf[pos + 2]
        length = length_by_type[kind]
        if length == 0:
            return n, pos, FRAME_UNKNOWN_TYPE, kind
        prefix = (np.int64(buf[pos]) << 8) | np.int64(buf[pos + 1])
        if prefix != 0 and prefix != length:
            return n, pos, FRAME_BAD_LENGTH, prefix
        if pos + 2 + length > size:
            return n, pos, FRAME_TRUNCATED, 0
        offsets[n] = pos + 2
        types[n] = kind
        n += 1
        pos += 2 + length
    return n, pos, FRAME_OK, 0


@dataclass(frozen=True)
class Framed:
    """Message boundaries found in one buffer.

    ``offsets[i]`` is where message ``i``'s type byte sits in the buffer, ``types[i]`` that
    byte. ``end`` is the offset just past the last whole message; when ``status`` is not
    ``FRAME_OK`` the problem starts at ``end`` (``detail`` is the bad type byte or prefix).
    """

    offsets: np.ndarray
    types: np.ndarray
    end: int
    status: int
    detail: int

    def problem(self) -> str:
        """A sentence for a person about what is wrong at ``end``."""
        text = _FRAME_PROBLEMS[self.status]
        if self.status == FRAME_UNKNOWN_TYPE:
            text += f" 0x{self.detail:02x}; expected one of {''.join(MESSAGE_LENGTHS)}"
        elif self.status == FRAME_BAD_LENGTH:
            text += f" (prefix {self.detail})"
        return text


def frame(buf: np.ndarray) -> Framed:
    """Find every whole message in ``buf`` (uint8), stopping at the first invalid one.

    Hot: one compiled pass, no Python per message; allocates only the two result arrays
    (sized for the shortest possible message, then trimmed without copying).
    """
    capacity = buf.shape[0] // 14 + 1  # shortest message: 12 bytes + 2-byte prefix
    offsets = np.empty(capacity, dtype=np.int64)
    types = np.empty(capacity, dtype=np.uint8)
    n, end, status, detail = _frame(buf, LENGTH_BY_TYPE_BYTE, offsets, types)
    return Framed(offsets[:n], types[:n], int(end), int(status), int(detail))


@numba.njit(cache=True, nogil=True)
def _gather(buf, offsets, types, length_by_type, byte_start, index_start, out, index_out):
    """Copy message i to its type's block (next free slot) and record i in that type's index.

    The byte copy is unrolled by eight: messages are 12..50 bytes, too short for a memcpy
    call to pay off and too irregular for the compiler to vectorise on its own.
    """
    cursor = byte_start.copy()
    rank = index_start.copy()
    for i in range(offsets.shape[0]):
        kind = types[i]
        length = length_by_type[kind]
        dst = cursor[kind]
        cursor[kind] = dst + length
        src = offsets[i]
        j = 0
        while j + 8 <= length:
            out[dst + j] = buf[src + j]
            out[dst + j + 1] = buf[src + j + 1]
            out[dst + j + 2] = buf[src + j + 2]
            out[dst + j + 3] = buf[src + j + 3]
            out[dst + j + 4] = buf[src + j + 4]
            out[dst + j + 5] = buf[src + j + 5]
            out[dst + j + 6] = buf[src + j + 6]
            out[dst + j + 7] = buf[src + j + 7]
            j += 8
        while j < length:
            out[dst + j] = buf[src + j]
            j += 1
        r = rank[kind]
        rank[kind] = r + 1
        index_out[r] = i


@dataclass
class Messages:
    """One decoded buffer: every message, in file order, and each type as a structured array.

    ``types[i]`` / ``offsets[i]``: type byte and absolute byte offset (of the type byte) of the
    i-th message; ``by_type["A"]`` is every add order as a ``DTYPES["A"]`` array and
    ``positions["A"]`` the index in ``types`` of each of them, so a consumer can restore the
    file order across types.
    """

    types: np.ndarray
    offsets: np.ndarray
    by_type: dict[str, np.ndarray] = field(default_factory=dict)
    positions: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.types.shape[0])


def split_by_type(buf: np.ndarray, framed: Framed, base_offset: int = 0) -> Messages:
    """Copy each type's messages into one block and view it as that type's dtype.

    Hot: one counting pass (``np.bincount``) and one compiled copy pass; no Python per
    message. ``base_offset`` is added to the offsets so they are positions in the file.
    """
    counts = np.bincount(framed.types, minlength=256).astype(np.int64)
    sizes = counts * LENGTH_BY_TYPE_BYTE
    byte_start = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    index_start = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    index_out = np.empty(len(framed.types), dtype=np.int64)
    _gather(
        buf,
        framed.offsets,
        framed.types,
        LENGTH_BY_TYPE_BYTE,
        byte_start,
        index_start,
        out,
        index_out,
    )
    messages = Messages(framed.types, framed.offsets + base_offset)
    for kind in np.flatnonzero(counts):
        name = chr(kind)
        start, count = int(byte_start[kind]), int(counts[kind])
        block = out[start : start + count * MESSAGE_LENGTHS[name]]
        messages.by_type[name] = block.view(DTYPES[name])
        first = int(index_start[kind])
        messages.positions[name] = index_out[first : first + count]
    return messages


def timestamps_ns(messages: np.ndarray) -> np.ndarray:
    """The 48-bit timestamps (ns since midnight) of a structured ITCH array, as int64."""
    hi = messages["timestamp_hi"].astype(np.int64)
    lo = messages["timestamp_lo"].astype(np.int64)
    return (hi << 32) | lo


def header_timestamps_ns(buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Timestamps of the messages whose type bytes sit at ``offsets`` in ``buf``, as int64
    (the header's 6-byte big-endian timestamp, ``timestamp_hi`` then ``timestamp_lo``)."""
    first, _ = field_at("A", "timestamp_hi")
    last, length = field_at("A", "timestamp_lo")
    ts = np.zeros(offsets.shape[0], dtype=np.int64)
    for byte in range(first, last + length):
        ts = (ts << 8) | buf[offsets + byte].astype(np.int64)
    return ts


def stock_names(stocks: np.ndarray) -> list[str]:
    """8-byte space-padded stock fields as Python strings without the padding."""
    return [s.decode("ascii", "replace").rstrip() for s in stocks.tolist()]


@dataclass(frozen=True)
class Chunk:
    """A buffer of whole messages from a file, its framing, and where it starts in the file."""

    buf: np.ndarray
    framed: Framed
    base_offset: int

    def messages(self) -> Messages:
        """Split this chunk into per-type structured arrays (see ``split_by_type``)."""
        return split_by_type(self.buf, self.framed, self.base_offset)


def iter_chunks(path: str | Path, chunk_bytes: int = 64 << 20) -> Iterator[Chunk]:
    """Read an ITCH 5.0 input (``feedfile.open_feed``: a file, gzip, a pipe, ``-``) as chunks
    of whole messages, in order; the input is opened once and read once.

    An uncompressed regular file is memory-mapped and each chunk is a window on it (no
    copy); anything else is read into fresh ``chunk_bytes`` buffers (streamed, never the
    whole input in memory). A message cut by a chunk's end starts the next chunk. When the
    input is invalid, the chunk holding every message before the problem is yielded first,
    then ``Itch50FormatError`` is raised with the absolute byte offset of the problem (in
    the decompressed data for gzip). Raises ``feedfile.FeedInputError`` for an input that
    is not a file or a pipe.
    """
    if chunk_bytes < 64:
        raise ValueError(f"chunk_bytes={chunk_bytes} is too small; use at least 64 bytes")
    with feedfile.open_feed(path) as source:
        if source.mappable:
            yield from _mapped_chunks(source, chunk_bytes)
        else:
            yield from _streamed_chunks(source, chunk_bytes)


def _mapped_chunks(source: feedfile.FeedSource, chunk_bytes: int) -> Iterator[Chunk]:
    size = source.size
    mapped = mmap.mmap(source.fd, 0, access=mmap.ACCESS_READ)
    if hasattr(mapped, "madvise"):
        mapped.madvise(mmap.MADV_SEQUENTIAL)
    data = np.frombuffer(mapped, dtype=np.uint8)  # keeps the mapping alive while used
    start = 0
    total = 0
    while start < size:
        end = min(start + chunk_bytes, size)
        view = data[start:end]
        framed = frame(view)
        if framed.types.shape[0]:
            yield Chunk(view, framed, start)
        total += framed.types.shape[0]
        if framed.status == FRAME_OK:
            start = end
        elif framed.status == FRAME_TRUNCATED and end < size:
            start += framed.end
        else:
            raise Itch50FormatError(start + framed.end, framed.problem(), total)


def _streamed_chunks(source: feedfile.FeedSource, chunk_bytes: int) -> Iterator[Chunk]:
    """Chunks of a stream: each a fresh buffer (a consumer may keep views of the last one)
    that starts with the cut message the previous buffer ended with."""
    carry = np.zeros(0, dtype=np.uint8)
    start = 0  # input offset of the buffer's first byte
    total = 0
    while True:
        buf = np.empty(chunk_bytes, dtype=np.uint8)
        kept = carry.shape[0]
        buf[:kept] = carry
        try:
            got = source.read_into(memoryview(buf)[kept:])
        except feedfile.CompressedDataError as error:
            damaged: feedfile.CompressedDataError | None = error
            got = error.offset - (start + kept)  # what was read before the damage
        else:
            damaged = None
        end = kept + got
        at_end = end < chunk_bytes or damaged is not None
        view = buf[:end]
        framed = frame(view)
        if framed.types.shape[0]:
            yield Chunk(view, framed, start)
        total += framed.types.shape[0]
        if framed.status == FRAME_TRUNCATED and not at_end:
            carry = view[framed.end :].copy()
            start += framed.end
            continue
        if damaged is not None and framed.status in (FRAME_OK, FRAME_TRUNCATED):
            raise Itch50FormatError(start + framed.end, damaged.problem, total)
        if framed.status != FRAME_OK:
            raise Itch50FormatError(start + framed.end, framed.problem(), total)
        if at_end:
            return
        carry = carry[:0]
        start += end


@dataclass
class Itch50Stats:
    """Counts over an ITCH 5.0 file: messages by type, add orders per stock, time span.

    Built chunk by chunk (``add``) so a file of any size is summarised in bounded memory;
    ``error`` holds the format problem that ended the file early, if any.
    """

    messages: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    symbols: dict[str, int] = field(default_factory=dict)
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    error: Itch50FormatError | None = None

    def add(self, chunk: Chunk) -> None:
        """Count one chunk. Vectorised: a bincount of type bytes, a unique over add orders."""
        framed = chunk.framed
        n = framed.types.shape[0]
        if n == 0:
            return
        self.messages += n
        counts = np.bincount(framed.types, minlength=256)
        for kind in np.flatnonzero(counts):
            name = chr(kind)
            self.by_type[name] = self.by_type.get(name, 0) + int(counts[kind])
        for kind in "AF":
            where = framed.offsets[framed.types == ord(kind)]
            if where.shape[0] == 0:
                continue
            at, length = field_at(kind, "stock")
            stock_field = where[:, None] + np.arange(at, at + length)
            stocks = chunk.buf[stock_field].copy().view("S8").reshape(-1)
            names, per_name = np.unique(stocks, return_counts=True)
            for stock, count in zip(stock_names(names), per_name.tolist(), strict=True):
                self.symbols[stock] = self.symbols.get(stock, 0) + count
        ends = header_timestamps_ns(chunk.buf, framed.offsets[[0, -1]])
        if self.first_ts_ns is None:
            self.first_ts_ns = int(ends[0])
        self.last_ts_ns = int(ends[1])

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of ``tradepipe feed stats``: types and symbols in sorted order."""
        out: dict[str, object] = {
            "messages": self.messages,
            "by_type": dict(sorted(self.by_type.items())),
            "symbols": dict(sorted(self.symbols.items())),
            "first_ts_ns": self.first_ts_ns,
            "last_ts_ns": self.last_ts_ns,
        }
        if self.error is not None:
            out["error"] = {"offset": self.error.offset, "problem": self.error.problem}
        return out


def file_stats(path: str | Path, chunk_bytes: int = 64 << 20) -> Itch50Stats:
    """Summarise an ITCH 5.0 file; a format problem is recorded in ``error``, not raised."""
    stats = Itch50Stats()
    try:
        for chunk in iter_chunks(path, chunk_bytes):
            stats.add(chunk)
    except Itch50FormatError as error:
        stats.error = error
    return stats
