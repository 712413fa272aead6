"""LOBSTER message and orderbook files: compiled CSV reading and writing.

Users compare tradepipe's books with LOBSTER's (lobsterdata.com) reconstructions of NASDAQ
books, so both of LOBSTER's CSV files are read and the orderbook format is written back:

* message file, one row per event: ``Time,Type,OrderID,Size,Price,Direction``; time in seconds
  after midnight with up to 9 decimals (kept here as integer ns), price in dollars × 10000,
  direction 1 = buy limit order, -1 = sell limit order. Types: 1 new limit order, 2 partial
  cancel, 3 delete, 4 visible execution, 5 hidden execution, 6 cross trade, 7 trading halt
  (price -1 halt, 0 quoting resumes, 1 trading resumes).
* orderbook file, one row per message, the book after it: ``AskPrice1,AskSize1,BidPrice1,
  BidSize1,AskPrice2,...``; an empty level is written as ask price 9999999999, bid price
  -9999999999, size 0.

CSV parsing and writing run in compiled loops (numba): ``np.loadtxt`` manages a few hundred
thousand rows per second, the replay target is a million messages per second.
"""

from __future__ import annotations

import io
import mmap
import os
import queue
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numba
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

from stages.ingest import feedfile
from stages.matching.symbols import MAX_QTY

#: One parsed message-file row; ``time_ns`` is the time column in integer nanoseconds.
MESSAGE_DTYPE = np.dtype(
    [
        ("time_ns", "<i8"),
        ("type", "<i8"),
        ("order_id", "<i8"),
        ("size", "<i8"),
        ("price", "<i8"),
        ("direction", "<i8"),
    ]
)
MESSAGE_COLUMNS = 6

NEW_LIMIT = 1
PARTIAL_CANCEL = 2
DELETE = 3
VISIBLE_EXECUTION = 4
HIDDEN_EXECUTION = 5
CROSS_TRADE = 6
TRADING_HALT = 7
MESSAGE_TYPES = {
    NEW_LIMIT: "new limit order",
    PARTIAL_CANCEL: "partial cancel",
    DELETE: "delete",
    VISIBLE_EXECUTION: "visible execution",
    HIDDEN_EXECUTION: "hidden execution",
    CROSS_TRADE: "cross trade",
    TRADING_HALT: "trading halt",
}
HALT_PRICE = -1  # type 7 with this price: trading halts
QUOTE_RESUME_PRICE = 0  # quoting resumes (trading still halted)
TRADE_RESUME_PRICE = 1  # trading resumes

#: Direction column values.
DIRECTION_BUY = 1
DIRECTION_SELL = -1

#: An orderbook row holds, for each level, these columns in this order.
LEVEL_COLUMNS = 4
ASK_PRICE_COL, ASK_SIZE_COL, BID_PRICE_COL, BID_SIZE_COL = range(LEVEL_COLUMNS)

EMPTY_ASK_PRICE = 9999999999
EMPTY_BID_PRICE = -9999999999

# Parse outcome codes.
PARSE_OK = 0
PARSE_BAD_CHARACTER = 1
PARSE_TOO_FEW_COLUMNS = 2
PARSE_TOO_MANY_COLUMNS = 3
PARSE_EMPTY_FIELD = 4  # no digits where a number must be (empty, or text such as a header)
PARSE_OUT_OF_RANGE = 5  # a number outside its column's bounds (or beyond int64)
_PROBLEMS = {
    PARSE_BAD_CHARACTER: "unexpected character",
    PARSE_TOO_FEW_COLUMNS: "too few columns",
    PARSE_TOO_MANY_COLUMNS: "too many columns",
    PARSE_EMPTY_FIELD: "empty field",
}

#: Largest size accepted: the matching engine's largest order quantity (``MAX_QTY``, the
#: default and ceiling of ``SymbolSpec.max_qty``, 2**35 - 1).
MAX_SIZE = MAX_QTY
#: Largest price magnitude accepted (the replay keys price levels by ``2 * price + side``).
MAX_PRICE = (1 << 62) - 1
#: Largest order id accepted: the ids above are the replay's own (executions, seeded book).
MAX_ORDER_ID = (1 << 60) - 1
#: Largest time accepted, in seconds after midnight (the ns value must fit an int64).
MAX_TIME_SECONDS = 9_223_372_035
MESSAGE_HEADER = ("Time", "Type", "OrderID", "Size", "Price", "Direction")
_DIRECTION_COL = 5
#: Bytes read (and parsed) at a time: the text is streamed, only the parsed rows are kept.
READ_CHUNK_BYTES = 16 << 20


class LobsterFormatError(ValueError):
    """A LOBSTER file is malformed at ``line`` (1-based), byte ``offset``."""

    def __init__(self, path: str, line: int, offset: int, problem: str, expected: str) -> None:
        self.path = path
        self.line = line
        self.offset = offset
        self.problem = problem
        super().__init__(
            f"{path}: line {line} (byte offset {offset}): {problem}; expected {expected}"
        )


@numba.njit(cache=True, nogil=True)
def _parse_csv(buf, ncols, time_col, out, low, high, nonzero_col):
    """HOT. Parse rows of ``ncols`` integers (column ``time_col`` a decimal -> ns) into
    ``out``; every value must lie in ``low[col]..high[col]`` (and not be 0 in column
    ``nonzero_col``). Must not allocate or call Python per row.

    Returns (rows, status, byte offset of the problem, line of the problem, its column).
    A number that overflows int64 is out of range, never wrapped.
    """
    size = buf.shape[0]
    pos = 0
    row = 0
    line = 1
    while pos < size:
        c = buf[pos]
        if c == 10 or c == 13:  # blank line (or the \n of \r\n)
            if c == 10:
                line += 1
            pos += 1
            continue
        for col in range(ncols):
            field = pos
            negative = False
            if pos < size and buf[pos] == 45:  # '-'
                negative = True
                pos += 1
            value = np.int64(0)
            digits = 0
            while pos < size and 48 <= buf[pos] <= 57:
                value = value * 10 + (buf[pos] - 48)
                digits += 1
                pos += 1
            # 18 digits always fit; 19 fit unless the sum wrapped; 20 never do
            overflow = digits > 18 and (digits > 19 or value < 0)
            if col == time_col:
                overflow = overflow or value > MAX_TIME_SECONDS
                frac = np.int64(0)
                frac_digits = 0
                if pos < size and buf[pos] == 46:  # '.'
                    pos += 1
                    while pos < size and 48 <= buf[pos] <= 57:
                        if frac_digits < 9:
                            frac = frac * 10 + (buf[pos] - 48)
                            frac_digits += 1
                        digits += 1
                        pos += 1
                while frac_digits < 9:
                    frac *= 10
                    frac_digits += 1
                value = value * 1_000_000_000 + frac
            if digits == 0:
                return row, PARSE_EMPTY_FIELD, field, line, col
            if negative:
                value = -value
            if (
                overflow
                or value < low[col]
                or value > high[col]
                or (col == nonzero_col and value == 0)
            ):
                return row, PARSE_OUT_OF_RANGE, field, line, col
            out[row, col] = value
            at_end = pos >= size or buf[pos] == 10 or buf[pos] == 13
            if col < ncols - 1:
                if at_end:
                    return row, PARSE_TOO_FEW_COLUMNS, pos, line, col
                if buf[pos] != 44:  # ','
                    return row, PARSE_BAD_CHARACTER, pos, line, col
                pos += 1
            elif not at_end:
                if buf[pos] == 44:
                    return row, PARSE_TOO_MANY_COLUMNS, pos, line, col
                return row, PARSE_BAD_CHARACTER, pos, line, col
        row += 1
    return row, PARSE_OK, pos, line, 0


@dataclass(frozen=True)
class _Columns:
    """What a file's columns are called and which values each accepts."""

    names: list[str]
    low: np.ndarray
    high: np.ndarray
    time_col: int = -1
    nonzero_col: int = -1
    why: dict[int, str] = field(default_factory=dict)  # column -> reason for its bounds

    @property
    def expected(self) -> str:
        if len(self.names) == MESSAGE_COLUMNS and self.time_col == 0:
            return ",".join(self.names)
        return f"{len(self.names)} integer columns"


def _message_columns() -> _Columns:
    big = MAX_PRICE  # type: any code is counted, none may wrap
    low = np.array([0, -big, 0, 0, -MAX_PRICE, -1], dtype=np.int64)
    high = np.array([MAX_TIME_SECONDS * 10**9 + 999_999_999, big, MAX_ORDER_ID, MAX_SIZE,
                     MAX_PRICE, 1], dtype=np.int64)  # fmt: skip
    why = {
        2: "larger ids are the replay's own orders",
        3: "the matching engine's largest order quantity, max_qty",
        4: "dollars x 10000",
    }
    return _Columns(list(MESSAGE_HEADER), low, high, 0, _DIRECTION_COL, why)


def _orderbook_columns(ncols: int) -> _Columns:
    names = []
    for lvl in range(1, ncols // 4 + 1):
        names += [f"AskPrice{lvl}", f"AskSize{lvl}", f"BidPrice{lvl}", f"BidSize{lvl}"]
    low = np.tile(np.array([-MAX_PRICE, 0], dtype=np.int64), ncols // 2)
    high = np.tile(np.array([MAX_PRICE, MAX_SIZE], dtype=np.int64), ncols // 2)
    return _Columns(names, low, high)


def _field_text(buf: np.ndarray, at: int) -> str:
    """The text of the field starting at ``at`` (up to the next comma or line end)."""
    text = bytes(buf[at : min(buf.shape[0], at + 41)])
    for mark in (b",", b"\n", b"\r"):
        text = text.split(mark, 1)[0]
    return text.decode("ascii", "replace")


def _shown(text: str) -> str:
    return repr(text[:24]) + ("..." if len(text) > 24 else "")


def _format_error(
    name: str, buf: np.ndarray, cols: _Columns, status: int, at: int, line: int, col: int,
    base_offset: int, base_line: int,
) -> LobsterFormatError:  # fmt: skip
    """The error for a parse outcome: what is at ``buf[at]`` and what would be right
    (``buf`` starts at input offset ``base_offset``, after ``base_line`` lines)."""
    expected = cols.expected
    if status == PARSE_EMPTY_FIELD:
        text = _field_text(buf, at)
        if not text:
            problem = f"empty field ({cols.names[col]})"
        else:
            problem = f"not a number: {_shown(text)} ({cols.names[col]})"
            if base_line + line == 1 and col == 0 and text.isalpha():
                problem += ", a header row? LOBSTER files have none"
    elif status == PARSE_OUT_OF_RANGE:
        column = cols.names[col]
        text = _shown(_field_text(buf, at))
        if col == cols.nonzero_col:
            problem = f"{column} {text} is not a direction"
            expected = f"{column} 1 (buy) or -1 (sell)"
        else:
            problem = f"{column} {text} is out of range"
            if col == cols.time_col:
                expected = f"{column} in 0..{MAX_TIME_SECONDS} seconds"
            else:
                expected = f"{column} in {cols.low[col]}..{cols.high[col]}"
            if col in cols.why:
                expected += f" ({cols.why[col]})"
    else:
        problem = _PROBLEMS[status]
    return LobsterFormatError(name, base_line + line, base_offset + at, problem, expected)


def _last_newline(buf: np.ndarray) -> int:
    """Index just past the last ``\n`` of ``buf``, or 0 without one. Looks at the end first:
    rows are short."""
    window = 1 << 20
    for start in (max(0, buf.shape[0] - window), 0):
        found = np.flatnonzero(buf[start:] == 10)
        if found.shape[0]:
            return start + int(found[-1]) + 1
        if start == 0:
            break
    return 0


def _parse(path: str | Path, columns: _Columns | None) -> np.ndarray:
    """Every row of a LOBSTER CSV input as an int64 (rows, columns) table.

    The input (``feedfile.open_feed``: a file, gzip, a pipe, ``-``) is read once, in chunks
    of whole lines; ``columns`` None means an orderbook file as wide as its first row.
    """
    parts: list[np.ndarray] = []
    chunk_bytes = READ_CHUNK_BYTES
    buf = np.empty(chunk_bytes, dtype=np.uint8)
    kept = 0  # bytes of a cut line carried to the front of buf
    base_offset = 0  # input offset of buf[0]
    base_line = 0  # lines before buf[0]
    with feedfile.open_feed(path) as source:
        name = source.name
        if source.mappable:  # a plain file: one pass over a mapping, no read copies
            mapped = mmap.mmap(source.fd, 0, access=mmap.ACCESS_READ)
            return _parse_whole(name, np.frombuffer(mapped, dtype=np.uint8), columns)
        while True:
            try:
                got = source.read_into(memoryview(buf)[kept:])
            except feedfile.CompressedDataError as error:
                got = error.offset - (base_offset + kept)
                damaged: feedfile.CompressedDataError | None = error
            else:
                damaged = None
            end = kept + got
            at_end = end < chunk_bytes or damaged is not None
            upto = end if at_end else _last_newline(buf[:end])
            if columns is None:
                columns = _orderbook_columns(_first_row_cells(name, buf[:end]))
                if not columns.names:
                    break
            ncols = len(columns.names)
            cut = upto if upto else end  # a full chunk without a line end: find what is wrong
            text = buf[:cut]
            out = np.empty((int(np.count_nonzero(text == 10)) + 1, ncols), dtype=np.int64)
            rows, status, at, line, col = _parse_csv(
                text, ncols, columns.time_col, out, columns.low, columns.high, columns.nonzero_col
            )
            if status != PARSE_OK and (upto or at < cut - 1):
                raise _format_error(
                    name, text, columns, status, at, line, col, base_offset, base_line
                )
            if not upto:
                raise LobsterFormatError(
                    name, base_line + 1, base_offset, f"a line longer than {chunk_bytes} bytes",
                    columns.expected,
                )  # fmt: skip
            if damaged is not None:
                raise LobsterFormatError(
                    name, base_line + line, base_offset + upto, damaged.problem, columns.expected
                )
            parts.append(out[:rows])
            if at_end:
                break
            base_line += line - 1
            base_offset += upto
            kept = end - upto
            buf[:kept] = buf[upto:end].copy()
    if columns is None or not columns.names:
        return np.zeros((0, 0), dtype=np.int64)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros((0, len(columns.names)), np.int64)


def _parse_whole(name: str, buf: np.ndarray, columns: _Columns | None) -> np.ndarray:
    """``_parse`` of a whole input in one buffer."""
    if columns is None:
        columns = _orderbook_columns(_first_row_cells(name, buf))
        if not columns.names:
            return np.zeros((0, 0), dtype=np.int64)
    ncols = len(columns.names)
    out = np.empty((int(np.count_nonzero(buf == 10)) + 1, ncols), dtype=np.int64)
    rows, status, at, line, col = _parse_csv(
        buf, ncols, columns.time_col, out, columns.low, columns.high, columns.nonzero_col
    )
    if status != PARSE_OK:
        raise _format_error(name, buf, columns, status, at, line, col, 0, 0)
    return out[:rows]


def _first_row_cells(name: str, buf: np.ndarray) -> int:
    """Cells of the first non-empty line of an orderbook file (4 per level); 0 if none."""
    text = bytes(buf[: min(buf.shape[0], 1 << 20)]).lstrip(b"\r\n")
    if not text:
        return 0
    first = text.split(b"\n", 1)[0]
    cells = first.count(b",") + 1
    if cells % 4:
        raise LobsterFormatError(
            name, 1, 0, f"{cells} columns", "4 per level (ask price, size, bid ...)"
        )
    return cells


def read_messages(path: str | Path) -> np.ndarray:
    """Every row of a LOBSTER message file (or gzip, pipe, ``-``) as a ``MESSAGE_DTYPE``
    array.

    Raises ``LobsterFormatError`` naming the line and byte offset of a malformed row: a
    missing or non-numeric field, a value out of its column's range (never wrapped), a
    direction other than 1 or -1.
    """
    table = _parse(path, _message_columns())
    if table.shape[0] == 0:
        return np.zeros(0, dtype=MESSAGE_DTYPE)
    return np.ascontiguousarray(table).view(MESSAGE_DTYPE).reshape(-1)


def read_orderbook(path: str | Path, levels: int | None = None) -> np.ndarray:
    """A LOBSTER orderbook file as an int64 array of shape (rows, 4 × levels).

    ``levels`` defaults to what the first row holds; a row of another width is an error.
    """
    columns = None if levels is None else _orderbook_columns(4 * levels)
    return _parse(path, columns)


@intrinsic
def _move_bytes(typingctx, dst, dst_at, src, src_at, count):
    """``dst[dst_at:dst_at + count] = src[src_at:src_at + count]`` as one ``memmove``.

    numba compiles a byte loop between two arrays that may be the same one as a plain byte
    loop (it cannot prove they do not overlap); the orderbook rows' unchanged text is a few
    hundred bytes per row, and this copy is what the writer spends its time on. No checks:
    the caller guarantees both ranges are inside their arrays.
    """
    sig = types.void(dst, dst_at, src, src_at, count)

    def codegen(context, builder, signature, args):
        dst_v, dst_at_v, src_v, src_at_v, count_v = args
        dst_t, _, src_t, _, _ = signature.args
        d = context.make_array(dst_t)(context, builder, dst_v)
        s = context.make_array(src_t)(context, builder, src_v)
        cgutils.raw_memmove(
            builder, builder.gep(d.data, [dst_at_v]), builder.gep(s.data, [src_at_v]), count_v, 1
        )
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(inline="always")
def _format_int(value, dst, at, digits):
    """Decimal text of ``value`` at ``dst[at:]``; returns the position after it."""
    n = 0
    v = -value if value < 0 else value
    while True:
        digits[n] = 48 + v % 10
        n += 1
        v //= 10
        if v == 0:
            break
    if value < 0:
        dst[at] = 45
        at += 1
    for j in range(n - 1, -1, -1):
        dst[at] = digits[j]
        at += 1
    return at


@numba.njit(cache=True, nogil=True)
def _format_rows(table, out, prev_text, prev_len, prev_row, col_start, scratch):
    """HOT. ASCII CSV of an int64 table into ``out``; returns the number of bytes written.

    Must not allocate per row or call Python. Consecutive book rows mostly repeat
    themselves, so each row copies the unchanged prefix
    and suffix of the previous row's text and formats only the span of cells that changed.
    The previous row's values are ``prev_row`` and its cells start at ``col_start``; its
    text is the previous row in ``out``, or ``prev_text[:prev_len[0]]`` for the first row
    of a call (``prev_len[0] == 0``: no previous row).
    """
    pos = 0
    ncols = table.shape[1]
    digits = np.empty(20, dtype=np.uint8)
    src = prev_text
    src_at = 0
    src_len = prev_len[0]
    for r in range(table.shape[0]):
        row_start = pos
        if src_len == 0:
            first = 0
            last = ncols - 1
        else:
            first = 0
            while first < ncols and table[r, first] == prev_row[first]:
                first += 1
            if first == ncols:  # identical row
                _move_bytes(out, pos, src, src_at, src_len)
                pos += src_len
                src = out
                src_at = row_start
                continue
            last = ncols - 1
            while last > first and table[r, last] == prev_row[last]:
                last -= 1
        head = col_start[first] if src_len else 0
        _move_bytes(out, pos, src, src_at, head)
        pos += head
        for c in range(first, last + 1):
            scratch[c] = pos - row_start
            value = table[r, c]
            # a level shift moves a cell 4 columns: reuse the previous row's text if it has it
            same = -1
            if src_len:
                if value == prev_row[c]:
                    same = c
                elif c >= 4 and value == prev_row[c - 4]:
                    same = c - 4
                elif c + 4 < ncols and value == prev_row[c + 4]:
                    same = c + 4
            if same >= 0:
                a = src_at + col_start[same]
                b = src_at + (col_start[same + 1] if same + 1 < ncols else src_len) - 1
                for j in range(b - a):
                    out[pos + j] = src[a + j]
                pos += b - a
            else:
                pos = _format_int(value, out, pos, digits)
            out[pos] = 44 if c < ncols - 1 else 10
            pos += 1
        if last < ncols - 1:
            tail_from = col_start[last + 1]
            n = src_len - tail_from
            shift = (pos - row_start) - tail_from
            _move_bytes(out, pos, src, src_at + tail_from, n)
            pos += n
            for c in range(last + 1, ncols):
                col_start[c] += shift
        for c in range(first, last + 1):
            col_start[c] = scratch[c]
            prev_row[c] = table[r, c]
        src = out
        src_at = row_start
        src_len = pos - row_start
    _move_bytes(prev_text, 0, src, src_at, src_len)
    prev_len[0] = src_len
    return pos


class OrderbookWriter:
    """Writes LOBSTER orderbook rows to a binary stream, reusing its buffers across calls.

    Hot path of a LOBSTER replay with output: one compiled pass per block of rows that
    re-formats only the span of cells that changed since the row before (see
    ``_format_rows``).

    With ``background=True`` the formatted blocks are written by a writer thread while the
    caller goes on (formatting releases the GIL, a file write waits for the disk): a replay
    writes ~270 bytes per message, more than a disk absorbs at a million messages a second
    once the page cache pushes back, so the replay must not stop while a write waits. At
    most ``QUEUE_BLOCKS`` blocks wait; ``flush()`` (or ``close()``, or leaving a ``with``
    block) waits until all is written and raises what a write raised. Until then the
    stream belongs to the writer.
    """

    BLOCK_BYTES = 1 << 19
    QUEUE_BLOCKS = 8

    def __init__(self, stream: IO[bytes], columns: int, background: bool = False) -> None:
        self.stream = stream
        self.columns = columns
        self.background = background
        self._prev_text = np.zeros(columns * 21, dtype=np.uint8)
        self._prev_len = np.zeros(1, dtype=np.int64)
        self._prev_row = np.zeros(columns, dtype=np.int64)
        self._col_start = np.zeros(columns, dtype=np.int64)
        self._scratch = np.zeros(columns, dtype=np.int64)
        # blocks of rows small enough for the text to stay in cache until it is written
        self._block = max(1, self.BLOCK_BYTES // (columns * 21))
        # 20 characters at most per int64, plus a comma
        self._out = np.empty(self._block * columns * 21 + 1, dtype=np.uint8)
        self._thread: threading.Thread | None = None
        self._free: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[np.ndarray, int] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None

    def write(self, rows: np.ndarray) -> None:
        """Format ``rows`` (int64, ``columns`` wide) and write (or queue) their text."""
        table = np.ascontiguousarray(rows, dtype=np.int64)
        if table.ndim != 2 or table.shape[1] != self.columns:
            raise ValueError(
                f"orderbook rows of shape {table.shape} given to a writer of "
                f"{self.columns} columns; expected (n, {self.columns})"
            )
        block = self._block
        for first in range(0, table.shape[0], block):
            out = self._take_buffer()
            n = _format_rows(
                table[first : first + block], out, self._prev_text, self._prev_len,
                self._prev_row, self._col_start, self._scratch,
            )  # fmt: skip
            if self.background:
                self._full.put((out, n))
            else:
                self.stream.write(memoryview(out[:n]))

    def flush(self) -> None:
        """Wait until every queued block is written; raise what a background write raised."""
        if self._thread is not None:
            self._full.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """``flush()``; the stream stays open (it is the caller's)."""
        self.flush()

    def __enter__(self) -> OrderbookWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _take_buffer(self) -> np.ndarray:
        if not self.background:
            return self._out
        if self._error is not None:
            self.flush()  # raises the write error
        if self._thread is None:
            self._free = queue.SimpleQueue()
            self._free.put(self._out)
            for _ in range(self.QUEUE_BLOCKS - 1):
                self._free.put(np.empty_like(self._out))
            self._thread = threading.Thread(
                target=self._write_blocks, name="orderbook-writer", daemon=True
            )
            self._thread.start()
        return self._free.get()

    def _write_blocks(self) -> None:
        """The writer thread: write queued blocks in order until the ``None`` sentinel;
        after a failed write, drop the rest (``flush`` raises the error)."""
        release = _PageRelease(self.stream)
        while True:
            item = self._full.get()
            if item is None:
                return
            out, n = item
            if self._error is None:
                try:
                    self.stream.write(memoryview(out[:n]))
                    release.written(n)
                except BaseException as error:  # re-raised in the caller's thread
                    self._error = error
            self._free.put(out)


class _PageRelease:
    """Starts the write-back of an output file's pages as they are written, then drops them.

    A replay writes hundreds of MB that it will not read back. Left to the page cache they
    pile up as dirty pages that the kernel flushes late, throttling the writer, and every
    new page of cache is fresh memory to fault in (measured on this project's 2-vCPU VM:
    ~420 MB/s sustained into a growing cache, > 1 GB/s into a cache kept small). Every
    ``STEP`` bytes, ``posix_fadvise(DONTNEED)`` over the last ``1 + LAG`` steps starts the
    write-back of the newest one and drops the older ones once clean, so the file's cache
    stays a few tens of MB (the same remedy as ``dd oflag=nocache`` or PostgreSQL's
    ``*_flush_after``). Advice only: streams without a regular file behind them (BytesIO,
    pipes) are left alone, and a failing call is never an error.
    """

    STEP = 16 << 20
    LAG = 2

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.fd = -1
        self.marks: list[int] = []
        if not hasattr(os, "posix_fadvise"):
            return
        try:
            fd = stream.fileno()
            if stat.S_ISREG(os.fstat(fd).st_mode):
                self.marks = [stream.tell()]
                self.end = self.marks[0]
                self.fd = fd
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self.fd = -1

    def written(self, n: int) -> None:
        """Count ``n`` more bytes written; every ``STEP`` bytes, advise the kernel."""
        if self.fd < 0:
            return
        self.end += n
        if self.end - self.marks[-1] < self.STEP:
            return
        self.marks.append(self.end)
        del self.marks[: -(self.LAG + 2)]
        start = self.marks[0]
        try:
            self.stream.flush()
            os.posix_fadvise(self.fd, start, self.end - start, os.POSIX_FADV_DONTNEED)
        except (OSError, ValueError):
            self.fd = -1


def format_orderbook(rows: np.ndarray) -> bytes:
    """Orderbook-file text for an int64 (rows, 4 × levels) array; one line per row."""
    table = np.ascontiguousarray(rows, dtype=np.int64)
    if table.ndim != 2:
        raise ValueError(f"orderbook rows must be 2-D, got shape {table.shape}")
    stream = io.BytesIO()
    OrderbookWriter(stream, table.shape[1]).write(table)
    return stream.getvalue()


def write_orderbook(stream: IO[bytes], rows: np.ndarray) -> None:
    """Append ``rows`` (see ``format_orderbook``) to a binary stream."""
    OrderbookWriter(stream, np.shape(rows)[1]).write(rows)


def empty_book_rows(n: int, levels: int) -> np.ndarray:
    """``n`` orderbook rows of an empty book, as LOBSTER writes empty levels."""
    rows = np.zeros((n, 4 * levels), dtype=np.int64)
    rows[:, 0::4] = EMPTY_ASK_PRICE
    rows[:, 2::4] = EMPTY_BID_PRICE
    return rows
