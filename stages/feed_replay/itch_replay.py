"""ITCH 5.0 → commands: replay an ITCH file or stream into one engine, a book per stock.

The symbol id of a book is the message's stock locate, set up by the R (stock directory)
messages. A/F → NEW limit GTC; E/C/X → REDUCE by the shares, or CANCEL when they reach
the open size; D → CANCEL; U → CANCEL of the original + NEW of the new reference (ITCH
replaces lose priority); H with trading state H or P → HALT, Q or T → RESUME (only on a
change). A reference to an order never added (or already gone), an add of a live
reference and an add for a locate without R message are counted and skipped.

Translation is one compiled pass per batch over the framed messages, reading each field
at its offset in ``itch50.DTYPES`` (``itch50.field_at``, folded as constants). ITCH
executions and replaces name an order without repeating its side or size, so the
translator keeps, per live reference, its open shares, side and locate in one int64 of a
numba typed dict: no Python runs per message.
"""

# ruff: noqa: SIM109  (explicit compares compile to plain compares in numba; `in` a tuple may not)

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
from numba import types as nbtypes
from numba.typed import Dict

from stages.feed_replay.driver import ENGINE_BATCH, command_batch, new_engine
from stages.feed_replay.tallies import (
    COUNT_DUPLICATE_ADD,
    COUNT_OVER_EXECUTED,
    COUNT_UNKNOWN_REF,
    COUNT_UNKNOWN_SYMBOL,
    EventTally,
    new_counters,
)
from stages.ingest import feedfile, itch50
from stages.kernel_codes import (
    CMD_CANCEL,
    CMD_HALT,
    CMD_NEW,
    CMD_REDUCE,
    CMD_RESUME,
    SIDE_BUY,
    SIDE_SELL,
    TIF_GTC,
)
from stages.matching import MatchingEngine


def _field(*where: tuple[str, str]) -> tuple[int, int]:
    """``(offset, length)`` of a field that the message types of ``where`` (kind, field
    name pairs) all hold at the same place, so one kernel branch reads them alike."""
    found = {itch50.field_at(kind, name) for kind, name in where}
    if len(found) != 1:
        raise AssertionError(f"ITCH fields {where} are not at one place: {sorted(found)}")
    return found.pop()


# --- message type bytes the translator acts on
_ADD = ord("A")
_ADD_MPID = ord("F")
_EXECUTED = ord("E")
_EXECUTED_WITH_PRICE = ord("C")
_CANCEL = ord("X")
_DELETE = ord("D")
_REPLACE = ord("U")
_TRADING_ACTION = ord("H")
_DIRECTORY = ord("R")

# --- the fields it reads, as (offset from the type byte, length)
_LOCATE = _field(*((kind, "stock_locate") for kind in "AFECXDUH"))
_REF = _field(*((kind, "order_reference_number") for kind in "AFECXD"))
_ADD_SIDE = _field(("A", "buy_sell_indicator"), ("F", "buy_sell_indicator"))
_ADD_SHARES = _field(("A", "shares"), ("F", "shares"))
_ADD_PRICE = _field(("A", "price"), ("F", "price"))
_REDUCED_SHARES = _field(
    ("E", "executed_shares"), ("C", "executed_shares"), ("X", "cancelled_shares")
)
_OLD_REF = _field(("U", "original_order_reference_number"))
_NEW_REF = _field(("U", "new_order_reference_number"))
_NEW_SHARES = _field(("U", "shares"))
_NEW_PRICE = _field(("U", "price"))
_STATE = _field(("H", "trading_state"))

# --- field values
_SELL_INDICATOR = ord("S")  # buy_sell_indicator of a sell order ('B' buy)
_STATE_HALTED = ord("H")  # trading_state: halted
_STATE_PAUSED = ord("P")  # trading_state: paused ('Q' quotation only, 'T' trading)

# --- a live order as one int64 of the translator's dict: open shares in the low bits
# (so a reduce is a subtraction), then the side's bit, then the stock locate
_SHARES_BITS = 8 * _ADD_SHARES[1]
_SHARES_MASK = (1 << _SHARES_BITS) - 1
_SIDE_SHIFT = _SHARES_BITS
_SIDE_MASK = 1
_LOCATE_SHIFT = _SHARES_BITS + 1
_LOCATE_MASK = (1 << 8 * _LOCATE[1]) - 1
if max(SIDE_BUY, SIDE_SELL) > _SIDE_MASK or 8 * _NEW_SHARES[1] > _SHARES_BITS:
    raise AssertionError("a side must fit one bit and a replace's shares an add's")
if _LOCATE_SHIFT + 8 * _LOCATE[1] > 63:
    raise AssertionError("shares, side and locate must fit a positive int64")
#: Books an engine may need: one per possible stock locate.
_LOCATES = _LOCATE_MASK + 1


@numba.njit(inline="always")
def _read(buf, message, at):
    """The big-endian unsigned field ``at`` (offset, length) of the message whose type
    byte is ``buf[message]``."""
    value = np.int64(0)
    for k in range(at[1]):
        value = (value << 8) | np.int64(buf[message + at[0] + k])
    return value


@numba.njit(inline="always")
def _live(shares, side, locate):
    return shares | (side << _SIDE_SHIFT) | (locate << _LOCATE_SHIFT)


@numba.njit(cache=True, nogil=True)
def _translate_itch(
    buf, offsets, types, known_locate, halted, orders, c_oid, c_price, c_qty, c_sym, c_kind,
    c_side, counters,
):  # fmt: skip
    """HOT. ITCH messages -> command fields; returns the number of commands written.

    ``orders`` maps reference -> ``_live(open shares, side, locate)``. Must not call
    Python per message: reads the raw bytes, writes the preallocated command columns (at
    most two commands per message, for U).
    """
    n = 0
    for i in range(offsets.shape[0]):
        t = types[i]
        p = offsets[i]
        loc = _read(buf, p, _LOCATE)
        if t == _ADD or t == _ADD_MPID:
            ref = _read(buf, p, _REF)
            side = SIDE_SELL if buf[p + _ADD_SIDE[0]] == _SELL_INDICATOR else SIDE_BUY
            shares = _read(buf, p, _ADD_SHARES)
            if known_locate[loc] == 0:
                counters[COUNT_UNKNOWN_SYMBOL] += 1
                continue
            if ref in orders:
                counters[COUNT_DUPLICATE_ADD] += 1
                continue
            orders[ref] = _live(shares, side, loc)
            c_kind[n] = CMD_NEW
            c_oid[n] = ref
            c_side[n] = side
            c_price[n] = _read(buf, p, _ADD_PRICE)
            c_qty[n] = shares
            c_sym[n] = loc
            n += 1
        elif t == _EXECUTED or t == _EXECUTED_WITH_PRICE or t == _CANCEL or t == _DELETE:
            ref = _read(buf, p, _REF)
            packed = orders[ref] if ref in orders else np.int64(-1)
            if packed < 0:
                counters[COUNT_UNKNOWN_REF] += 1
                continue
            open_qty = packed & _SHARES_MASK
            qty = open_qty if t == _DELETE else _read(buf, p, _REDUCED_SHARES)
            if qty == 0 and t != _DELETE:  # executes or cancels nothing
                continue
            c_oid[n] = ref
            c_side[n] = (packed >> _SIDE_SHIFT) & _SIDE_MASK
            c_sym[n] = (packed >> _LOCATE_SHIFT) & _LOCATE_MASK
            c_price[n] = 0
            if qty >= open_qty:
                if qty > open_qty:
                    counters[COUNT_OVER_EXECUTED] += 1
                c_kind[n] = CMD_CANCEL
                c_qty[n] = 0
                del orders[ref]
            else:
                c_kind[n] = CMD_REDUCE
                c_qty[n] = qty
                orders[ref] = packed - qty
            n += 1
        elif t == _REPLACE:
            ref = _read(buf, p, _OLD_REF)
            packed = orders[ref] if ref in orders else np.int64(-1)
            if packed < 0:
                counters[COUNT_UNKNOWN_REF] += 1
                continue
            side = (packed >> _SIDE_SHIFT) & _SIDE_MASK
            sym = (packed >> _LOCATE_SHIFT) & _LOCATE_MASK
            del orders[ref]
            c_kind[n] = CMD_CANCEL
            c_oid[n] = ref
            c_side[n] = side
            c_sym[n] = sym
            c_price[n] = 0
            c_qty[n] = 0
            n += 1
            new_ref = _read(buf, p, _NEW_REF)
            if new_ref in orders:
                counters[COUNT_DUPLICATE_ADD] += 1
                continue
            shares = _read(buf, p, _NEW_SHARES)
            orders[new_ref] = _live(shares, side, sym)
            c_kind[n] = CMD_NEW
            c_oid[n] = new_ref
            c_side[n] = side
            c_sym[n] = sym
            c_price[n] = _read(buf, p, _NEW_PRICE)
            c_qty[n] = shares
            n += 1
        elif t == _TRADING_ACTION:
            if known_locate[loc] == 0:
                continue
            state = buf[p + _STATE[0]]
            want = 1 if state == _STATE_HALTED or state == _STATE_PAUSED else 0
            if halted[loc] != want:
                halted[loc] = want
                c_kind[n] = CMD_HALT if want else CMD_RESUME
                c_oid[n] = 0
                c_side[n] = SIDE_BUY
                c_sym[n] = loc
                c_price[n] = 0
                c_qty[n] = 0
                n += 1
    return n


@dataclass
class ItchReplayResult:
    """Outcome of an ITCH replay; ``error`` is the format problem that ended it early."""

    engine: MatchingEngine | None
    stock_names: dict[int, str]
    messages: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    commands: int = 0
    unknown_refs: int = 0
    duplicate_adds: int = 0
    over_executed: int = 0
    unknown_symbol_adds: int = 0
    late_directory: int = 0  # R messages of a stream read after the books were built
    tally: EventTally = field(default_factory=EventTally)
    seconds: float = 0.0
    error: itch50.Itch50FormatError | None = None


#: Type bytes of the ITCH messages that change a book (orders, trading actions).
_BOOK_TYPE_BYTES = np.frombuffer((itch50.ORDER_TYPES + "H").encode(), dtype=np.uint8)


def _directory(chunk: itch50.Chunk) -> dict[int, str]:
    """Stock locate -> stock name of the R (stock directory) messages of one chunk."""
    at = chunk.framed.offsets[chunk.framed.types == _DIRECTORY]
    if at.shape[0] == 0:
        return {}
    raw = chunk.buf[at[:, None] + np.arange(itch50.MESSAGE_LENGTHS["R"])]
    rows = raw.copy().view(itch50.DTYPES["R"]).reshape(-1)
    return dict(zip(rows["stock_locate"].tolist(), itch50.stock_names(rows["stock"]), strict=True))


def itch_symbols(path: str | Path, chunk_bytes: int = 64 << 20) -> dict[int, str]:
    """Stock locate -> stock name from every R (stock directory) message of the file.

    A framing pass only; a format error ends the scan (the replay reports it).
    """
    names: dict[int, str] = {}
    try:
        for chunk in itch50.iter_chunks(path, chunk_bytes):
            names.update(_directory(chunk))
    except itch50.Itch50FormatError:
        pass
    return names


def replay_itch(
    path: str | Path,
    chunk_bytes: int = 64 << 20,
    order_capacity: int = 1 << 16,
    names: dict[int, str] | None = None,
) -> ItchReplayResult:
    """Drive one engine (a book per stock locate of an R message) with an ITCH 5.0 input.

    A file (gzip or not) is read twice: a framing pass collects the R messages, since the
    engine takes its symbols at construction. A pipe, FIFO or stdin can be read only once:
    the books are those of the R messages in the chunk holding the first message that
    changes a book and before it (a real day lists every stock before the first order);
    an R message after that is counted in ``late_directory`` and the adds for its locate as
    adds without a directory message.

    ``names`` is ``itch_symbols(path)`` when the caller has it already (files only).

    Everything before a format problem is applied and reported; the problem is recorded in
    ``error`` rather than raised.
    """
    rewindable = feedfile.is_rewindable(path)
    if not rewindable:
        names = {}
    elif names is None:
        names = itch_symbols(path, chunk_bytes)
    else:
        names = dict(names)
    result = ItchReplayResult(None, names)
    known = np.zeros(_LOCATES, dtype=np.uint8)
    halted = np.zeros(_LOCATES, dtype=np.uint8)
    orders = Dict.empty(key_type=nbtypes.int64, value_type=nbtypes.int64)
    counters = new_counters()
    seq = 1
    started = time.perf_counter()
    engine = None

    def build_engine() -> MatchingEngine | None:
        known[list(names)] = 1
        return new_engine(sorted(names), order_capacity) if names else None

    if rewindable:
        engine = result.engine = build_engine()
    try:
        for chunk in itch50.iter_chunks(path, chunk_bytes):
            framed = chunk.framed
            if not rewindable:
                listed = _directory(chunk)
                if engine is None:
                    names.update(listed)
                    if np.isin(framed.types, _BOOK_TYPE_BYTES).any():
                        engine = result.engine = build_engine()
                else:
                    late = [loc for loc in listed if loc not in names]
                    result.late_directory += len(late)
            result.messages += len(framed.types)
            counts = np.bincount(framed.types, minlength=256)
            for k in np.flatnonzero(counts):
                result.by_type[chr(k)] = result.by_type.get(chr(k), 0) + int(counts[k])
            for first in range(0, len(framed.types), ENGINE_BATCH):
                last = min(first + ENGINE_BATCH, len(framed.types))
                cap = 2 * (last - first)  # a U message is two commands
                cols = [np.empty(cap, dtype=np.int64) for _ in range(6)]
                oid, price, qty, sym, kind, side = cols
                n = _translate_itch(
                    chunk.buf, framed.offsets[first:last], framed.types[first:last], known,
                    halted, orders, oid, price, qty, sym, kind, side, counters,
                )  # fmt: skip
                if n == 0:
                    continue
                if engine is None:  # pragma: no cover - n > 0 needs a known locate
                    raise RuntimeError("commands without any configured symbol")
                commands = command_batch(n, seq, oid, price, qty, sym, kind, side, TIF_GTC)
                seq += n
                result.commands += n
                result.tally.add(engine.process(commands))
    except itch50.Itch50FormatError as error:
        result.error = error
    result.seconds = time.perf_counter() - started
    result.unknown_refs = int(counters[COUNT_UNKNOWN_REF])
    result.duplicate_adds = int(counters[COUNT_DUPLICATE_ADD])
    result.over_executed = int(counters[COUNT_OVER_EXECUTED])
    result.unknown_symbol_adds = int(counters[COUNT_UNKNOWN_SYMBOL])
    return result
