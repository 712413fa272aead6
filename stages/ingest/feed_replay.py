"""Replay ITCH 5.0 and LOBSTER order flow into tradepipe's matching engine, in batches.

Users tune the pipeline against real exchange days: the decoded messages of ``itch50`` and
``lobster`` are translated into COMMAND_DTYPE batches and driven through ``MatchingEngine``,
and what could not be applied is counted, never fatal.

Translation is one compiled pass per batch (numba) over the decoded messages, because both
feeds refer to orders by id and some rules need per-order state (ITCH executions name an
order and its remaining size decides between REDUCE and CANCEL; a LOBSTER id that was
never added refers to the seeded book). The state lives in numba typed dicts and arrays,
so no Python runs per message.

ITCH 5.0 → commands (symbol id = the message's stock locate, set up by R messages):
A/F → NEW limit GTC; E/C/X → REDUCE by the shares, or CANCEL when they reach the open
size; D → CANCEL; U → CANCEL of the original + NEW of the new reference (ITCH replaces lose
priority); H with trading state H or P → HALT, Q or T → RESUME (only on a change). A
reference to an order never added (or already gone) is counted and skipped.

LOBSTER → commands (one symbol): 1 → NEW limit GTC; 2 → REDUCE; 3 → CANCEL; 4 → an IOC
from the opposite side at the execution's price and size, so tradepipe's own time
priority decides which resting order fills (fills of another order than the one LOBSTER
names are counted); 5, 6 → nothing; 7 → HALT (price -1) / RESUME (0 quoting, 1 trading).
With a seeded book (one order per level of the orderbook file's first row), a 2/3/4 whose
id was never added applies to the seeded order at that side and price while one is left
(never below zero), otherwise it is counted as an unknown reference.

LOBSTER output needs the top-N depth after every message. ``MatchingEngine.depth`` is a
Python call per query; instead ``_track_depth`` maintains price levels from the engine's
own event stream (ACCEPTED + TAKER trades = what rests, MAKER trades / cancels / reduces =
what leaves), and after every batch the tracked book is checked against
``MatchingEngine.depth`` (a mismatch is a bug and raises).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
from numba import types as nbtypes
from numba.typed import Dict

from stages.ingest import feedfile, itch50, lobster
from stages.matching import MatchingEngine, SymbolSpec
from stages.records import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    CommandType,
    EventFlag,
    EventType,
    OrderType,
    Reason,
    Side,
    TimeInForce,
)

#: Order ids of the IOCs that stand for LOBSTER executions: this base + message index.
IOC_ID_BASE = 1 << 60
#: Order ids of the seeded LOBSTER book: this base + 2 × level + side.
SEED_ID_BASE = 1 << 61
#: The one account every replayed order belongs to (cancels must come from the owner).
REPLAY_ACCOUNT = 1
#: The symbol id of a LOBSTER replay (a LOBSTER file holds one ticker).
LOBSTER_SYMBOL = 1
#: Commands handed to the engine at once (bounds the event buffer).
ENGINE_BATCH = 1 << 15

_K_NEW = int(CommandType.NEW)
_K_CANCEL = int(CommandType.CANCEL)
_K_REDUCE = int(CommandType.REDUCE)
_K_HALT = int(CommandType.HALT)
_K_RESUME = int(CommandType.RESUME)
_TIF_GTC = int(TimeInForce.GTC)
_TIF_IOC = int(TimeInForce.IOC)
_EMPTY_ASK = lobster.EMPTY_ASK_PRICE
_EMPTY_BID = lobster.EMPTY_BID_PRICE

# Translation counters (index into the counters array).
C_UNKNOWN_REF = 0  # referenced an order never added or already gone
C_DUPLICATE_ADD = 1  # ITCH add of a reference that is live
C_OVER_EXECUTED = 2  # ITCH execution/cancel of more shares than were open
C_UNKNOWN_SYMBOL = 3  # ITCH add for a stock locate without an R message
C_SEEDED_APPLIED = 4  # LOBSTER 2/3/4 with an unknown id applied to a seeded order
N_COUNTERS = 5


def _order_dict() -> Dict:
    return Dict.empty(key_type=nbtypes.int64, value_type=nbtypes.int64)


@numba.njit(inline="always")
def _be(buf, at, n):
    value = np.int64(0)
    for k in range(n):
        value = (value << 8) | np.int64(buf[at + k])
    return value


@numba.njit(cache=True, nogil=True)
def _translate_itch(
    buf, offsets, types, known_locate, halted, orders, c_oid, c_price, c_qty, c_sym, c_kind,
    c_side, counters,
):  # fmt: skip
    """HOT. ITCH messages -> command fields; returns the number of commands written.

    ``orders`` maps reference -> open shares | side << 32 | locate << 33. Must not call
    Python per message: reads the raw bytes, writes the preallocated command columns (at
    most two commands per message, for U).
    """
    n = 0
    for i in range(offsets.shape[0]):
        t = types[i]
        p = offsets[i]
        loc = _be(buf, p + 1, 2)
        if t == 65 or t == 70:  # A, F
            ref = _be(buf, p + 11, 8)
            side = 1 if buf[p + 19] == 83 else 0  # 'S'
            shares = _be(buf, p + 20, 4)
            if known_locate[loc] == 0:
                counters[C_UNKNOWN_SYMBOL] += 1
                continue
            if ref in orders:
                counters[C_DUPLICATE_ADD] += 1
                continue
            orders[ref] = shares | (side << 32) | (loc << 33)
            c_kind[n] = _K_NEW
            c_oid[n] = ref
            c_side[n] = side
            c_price[n] = _be(buf, p + 32, 4)
            c_qty[n] = shares
            c_sym[n] = loc
            n += 1
        elif t == 69 or t == 67 or t == 88 or t == 68:  # E, C, X, D
            ref = _be(buf, p + 11, 8)
            packed = orders[ref] if ref in orders else np.int64(-1)
            if packed < 0:
                counters[C_UNKNOWN_REF] += 1
                continue
            open_qty = packed & 0xFFFFFFFF
            qty = open_qty if t == 68 else _be(buf, p + 19, 4)
            if qty == 0 and t != 68:  # executes or cancels nothing
                continue
            c_oid[n] = ref
            c_side[n] = (packed >> 32) & 1
            c_sym[n] = (packed >> 33) & 0xFFFF
            c_price[n] = 0
            if qty >= open_qty:
                if qty > open_qty:
                    counters[C_OVER_EXECUTED] += 1
                c_kind[n] = _K_CANCEL
                c_qty[n] = 0
                del orders[ref]
            else:
                c_kind[n] = _K_REDUCE
                c_qty[n] = qty
                orders[ref] = packed - qty
            n += 1
        elif t == 85:  # U
            ref = _be(buf, p + 11, 8)
            packed = orders[ref] if ref in orders else np.int64(-1)
            if packed < 0:
                counters[C_UNKNOWN_REF] += 1
                continue
            side = (packed >> 32) & 1
            sym = (packed >> 33) & 0xFFFF
            del orders[ref]
            c_kind[n] = _K_CANCEL
            c_oid[n] = ref
            c_side[n] = side
            c_sym[n] = sym
            c_price[n] = 0
            c_qty[n] = 0
            n += 1
            new_ref = _be(buf, p + 19, 8)
            if new_ref in orders:
                counters[C_DUPLICATE_ADD] += 1
                continue
            shares = _be(buf, p + 27, 4)
            orders[new_ref] = shares | (side << 32) | (sym << 33)
            c_kind[n] = _K_NEW
            c_oid[n] = new_ref
            c_side[n] = side
            c_sym[n] = sym
            c_price[n] = _be(buf, p + 31, 4)
            c_qty[n] = shares
            n += 1
        elif t == 72:  # H
            if known_locate[loc] == 0:
                continue
            state = buf[p + 19]
            want = 1 if state == 72 or state == 80 else 0  # 'H' halted, 'P' paused
            if halted[loc] != want:
                halted[loc] = want
                c_kind[n] = _K_HALT if want else _K_RESUME
                c_oid[n] = 0
                c_side[n] = 0
                c_sym[n] = loc
                c_price[n] = 0
                c_qty[n] = 0
                n += 1
    return n


def _command_batch(
    n: int, seq0: int, oid, price, qty, sym, kind, side, tif
) -> np.ndarray:  # fmt: skip
    commands = np.zeros(n, dtype=COMMAND_DTYPE)
    commands["seq"] = np.arange(seq0, seq0 + n)
    commands["ts_ingest"] = time.perf_counter_ns()
    commands["order_id"] = oid[:n]
    commands["price"] = price[:n]
    commands["qty"] = qty[:n]
    commands["symbol"] = sym[:n]
    commands["kind"] = kind[:n]
    commands["side"] = side[:n]
    commands["tif"] = tif if np.isscalar(tif) else tif[:n]
    commands["order_type"] = int(OrderType.LIMIT)
    commands["account"] = REPLAY_ACCOUNT
    return commands


@dataclass
class EventTally:
    """What the engine answered: events by type, rejects by reason, traded volume."""

    events: dict[str, int] = field(default_factory=dict)
    rejects: dict[str, int] = field(default_factory=dict)
    trades: int = 0
    traded_qty: int = 0

    def add(self, events: np.ndarray) -> None:
        """Vectorised: bincounts over kind and reject reason."""
        kinds = np.bincount(events["kind"], minlength=16)
        for k in np.flatnonzero(kinds):
            name = EventType(int(k)).name
            self.events[name] = self.events.get(name, 0) + int(kinds[k])
        rejected = events["reason"][events["kind"] == EventType.REJECTED]
        if rejected.shape[0]:
            reasons = np.bincount(rejected, minlength=128)
            for r in np.flatnonzero(reasons):
                name = Reason(int(r)).name
                self.rejects[name] = self.rejects.get(name, 0) + int(reasons[r])
        takers = (events["kind"] == EventType.TRADE) & ((events["flags"] & EventFlag.TAKER) != 0)
        self.trades += int(np.count_nonzero(takers))
        self.traded_qty += int(events["qty"][takers].sum())


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
    at = chunk.framed.offsets[chunk.framed.types == ord("R")]
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
    known = np.zeros(1 << 16, dtype=np.uint8)
    halted = np.zeros(1 << 16, dtype=np.uint8)
    orders = _order_dict()
    counters = np.zeros(N_COUNTERS, dtype=np.int64)
    seq = 1
    started = time.perf_counter()
    engine = None

    def build_engine() -> MatchingEngine | None:
        known[list(names)] = 1
        specs = [SymbolSpec(symbol=loc) for loc in sorted(names)]
        return MatchingEngine(specs, order_capacity, emit_book_top=False) if specs else None

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
                cap = 2 * (last - first)
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
                commands = _command_batch(n, seq, oid, price, qty, sym, kind, side, _TIF_GTC)
                seq += n
                result.commands += n
                result.tally.add(engine.process(commands))
    except itch50.Itch50FormatError as error:
        result.error = error
    result.seconds = time.perf_counter() - started
    result.unknown_refs = int(counters[C_UNKNOWN_REF])
    result.duplicate_adds = int(counters[C_DUPLICATE_ADD])
    result.over_executed = int(counters[C_OVER_EXECUTED])
    result.unknown_symbol_adds = int(counters[C_UNKNOWN_SYMBOL])
    return result


# ------------------------------------------------------------------------------ LOBSTER
@numba.njit(cache=True, nogil=True)
def _translate_lobster(
    kinds, ids, sizes, prices, directions, start, stop, known, seed_slot, seed_rem, seed_id,
    halted, c_oid, c_price, c_qty, c_kind, c_side, c_tif, c_msg, named, counters,
):  # fmt: skip
    """HOT. LOBSTER messages [start, stop) -> commands; returns (next message, commands).

    At most one command per message. Stops early, after an execution IOC that may fill a
    seeded order other than the one it names (the seeded sizes must then be re-read from
    the engine's events before going on). Must not call Python per message.
    """
    n = 0
    m = start
    while m < stop:
        kind = kinds[m]
        oid = ids[m]
        size = sizes[m]
        price = prices[m]
        side = 0 if directions[m] == 1 else 1
        named[m] = 0
        m += 1
        if kind == 1:
            known[oid] = 1
            c_kind[n] = _K_NEW
            c_oid[n] = oid
            c_side[n] = side
            c_price[n] = price
            c_qty[n] = size
            c_tif[n] = _TIF_GTC
            c_msg[n] = m - 1
            n += 1
        elif kind == 2 or kind == 3 or kind == 4:
            key = price * 2 + side
            slot = seed_slot[key] if key in seed_slot else np.int64(-1)
            if oid in known:
                target = oid
                c_kind[n] = _K_REDUCE if kind == 2 else _K_CANCEL
                c_qty[n] = size if kind == 2 else 0
                if kind == 3:
                    del known[oid]
            elif slot >= 0 and seed_rem[slot] > 0:
                counters[C_SEEDED_APPLIED] += 1
                target = seed_id[slot]
                if kind == 4:
                    seed_rem[slot] -= min(size, seed_rem[slot])
                elif size < seed_rem[slot]:
                    c_kind[n] = _K_REDUCE
                    c_qty[n] = size
                    seed_rem[slot] -= size
                else:
                    c_kind[n] = _K_CANCEL
                    c_qty[n] = 0
                    seed_rem[slot] = 0
            else:
                counters[C_UNKNOWN_REF] += 1
                continue
            if kind == 4:
                named[m - 1] = target
                c_kind[n] = _K_NEW
                c_oid[n] = IOC_ID_BASE + m - 1
                c_side[n] = 1 - side
                c_price[n] = price
                c_qty[n] = size
                c_tif[n] = _TIF_IOC
            else:
                c_oid[n] = target
                c_side[n] = side
                c_price[n] = 0
                c_tif[n] = _TIF_GTC
            c_msg[n] = m - 1
            n += 1
            if kind == 4 and target == oid and slot >= 0 and seed_rem[slot] > 0:
                return m, n  # the IOC may take the (older) seeded order first
        elif kind == 7:
            want = 1 if price == -1 else 0
            if halted[0] != want:
                halted[0] = want
                c_kind[n] = _K_HALT if want else _K_RESUME
                c_oid[n] = 0
                c_side[n] = 0
                c_price[n] = 0
                c_qty[n] = 0
                c_tif[n] = _TIF_GTC
                c_msg[n] = m - 1
                n += 1
    return m, n


@numba.njit(inline="always")
def _level_change(keys, qtys, nlev, side, price, delta):
    """Add ``delta`` to the level of ``price`` (keys ascending, best last); 1 if inconsistent."""
    key = price if side == 0 else -price
    count = nlev[side]
    j = np.searchsorted(keys[side, :count], key)
    if j < count and keys[side, j] == key:
        qtys[side, j] += delta
        if qtys[side, j] == 0:
            for k in range(j, count - 1):
                keys[side, k] = keys[side, k + 1]
                qtys[side, k] = qtys[side, k + 1]
            nlev[side] = count - 1
        return 1 if qtys[side, j] < 0 else 0
    if delta < 0:
        return 1
    for k in range(count, j, -1):
        keys[side, k] = keys[side, k - 1]
        qtys[side, k] = qtys[side, k - 1]
    keys[side, j] = key
    qtys[side, j] = delta
    nlev[side] = count + 1
    return 0


@numba.njit(cache=True, nogil=True)
def _track_depth(
    ev_seq, ev_kind, ev_side, ev_price, ev_qty, ev_flags, ev_reason, seq0, cmd_qty,
    msg_cmd_end, keys, qtys, nlev, rows, levels,
):  # fmt: skip
    """HOT. Apply a batch's events to the tracked levels; write the top ``levels`` after
    every message into ``rows``. Returns the number of inconsistencies (0 when the events
    describe a consistent book). Must not allocate or call Python per event.
    """
    bad = 0
    e = 0
    nev = ev_seq.shape[0]
    pend_qty = 0
    pend_side = 0
    pend_price = 0
    for m in range(msg_cmd_end.shape[0]):
        end_cmd = msg_cmd_end[m]
        while e < nev and ev_seq[e] - seq0 < end_cmd:
            kind = ev_kind[e]
            if kind == 1:  # ACCEPTED: the order rests with what its taker trades leave
                if pend_qty > 0:
                    bad += _level_change(keys, qtys, nlev, pend_side, pend_price, pend_qty)
                pend_qty = ev_qty[e]
                pend_side = ev_side[e]
                pend_price = ev_price[e]
            elif kind == 3:  # TRADE
                if ev_flags[e] & 2:
                    pend_qty -= ev_qty[e]
                else:
                    bad += _level_change(keys, qtys, nlev, ev_side[e], ev_price[e], -ev_qty[e])
            elif kind == 4:  # CANCELLED
                r = ev_reason[e]
                if r == 2 or r == 3 or r == 4:  # IOC / FOK / market remainder: never rested
                    pend_qty = 0
                else:
                    bad += _level_change(keys, qtys, nlev, ev_side[e], ev_price[e], -ev_qty[e])
            elif kind == 5:  # REPLACED by a REDUCE: the level loses the reduced quantity
                c = ev_seq[e] - seq0
                bad += _level_change(keys, qtys, nlev, ev_side[e], ev_price[e], -cmd_qty[c])
            e += 1
        if pend_qty > 0:
            bad += _level_change(keys, qtys, nlev, pend_side, pend_price, pend_qty)
        pend_qty = 0
        for lvl in range(levels):
            col = 4 * lvl
            if lvl < nlev[1]:
                rows[m, col] = -keys[1, nlev[1] - 1 - lvl]
                rows[m, col + 1] = qtys[1, nlev[1] - 1 - lvl]
            else:
                rows[m, col] = _EMPTY_ASK
                rows[m, col + 1] = 0
            if lvl < nlev[0]:
                rows[m, col + 2] = keys[0, nlev[0] - 1 - lvl]
                rows[m, col + 3] = qtys[0, nlev[0] - 1 - lvl]
            else:
                rows[m, col + 2] = _EMPTY_BID
                rows[m, col + 3] = 0
    return bad


@dataclass
class LobsterReplayResult:
    """Outcome of a LOBSTER replay: counts for the summary and the final engine."""

    engine: MatchingEngine
    messages: int = 0
    by_type: dict[int, int] = field(default_factory=dict)
    commands: int = 0
    unknown_refs: int = 0
    seeded_applied: int = 0
    other_order_fills: int = 0
    tally: EventTally = field(default_factory=EventTally)
    seconds: float = 0.0


def seed_commands(first_row: np.ndarray, levels: int) -> np.ndarray:
    """One resting GTC order per non-empty level of a LOBSTER orderbook row."""
    rows = []
    for lvl in range(min(levels, first_row.shape[0] // 4)):
        ask_price, ask_size, bid_price, bid_size = first_row[4 * lvl : 4 * lvl + 4]
        if ask_size > 0 and ask_price != lobster.EMPTY_ASK_PRICE:
            rows.append((SEED_ID_BASE + 2 * lvl + 1, ask_price, ask_size, int(Side.SELL)))
        if bid_size > 0 and bid_price != lobster.EMPTY_BID_PRICE:
            rows.append((SEED_ID_BASE + 2 * lvl, bid_price, bid_size, int(Side.BUY)))
    commands = np.zeros(len(rows), dtype=COMMAND_DTYPE)
    for i, (oid, price, size, side) in enumerate(rows):
        commands[i]["order_id"] = oid
        commands[i]["price"] = price
        commands[i]["qty"] = size
        commands[i]["side"] = side
    commands["kind"] = _K_NEW
    commands["symbol"] = LOBSTER_SYMBOL
    commands["account"] = REPLAY_ACCOUNT
    return commands


def replay_lobster(
    messages: np.ndarray,
    levels: int,
    seed_row: np.ndarray | None = None,
    book_out=None,
    batch: int = ENGINE_BATCH,
) -> LobsterReplayResult:
    """Replay LOBSTER ``messages`` (``lobster.MESSAGE_DTYPE``) into a one-symbol engine.

    With ``seed_row`` (the orderbook file's first row) the book is seeded from it, every
    level the row has, whatever ``levels`` is, and the replay starts at the second message. ``book_out`` (a binary stream), if given, receives
    one LOBSTER orderbook row of ``levels`` levels per replayed message.
    """
    if levels < 1:
        raise ValueError(f"levels = {levels} is invalid: expected >= 1")
    engine = MatchingEngine([SymbolSpec(symbol=LOBSTER_SYMBOL)], emit_book_top=False)
    result = LobsterReplayResult(engine)
    start = 0
    seq = 1
    seed_slot = _order_dict()
    seeds = np.zeros(0, dtype=COMMAND_DTYPE)
    if seed_row is not None:
        seed_row = np.asarray(seed_row, dtype=np.int64)
        seeds = seed_commands(seed_row, seed_row.shape[0] // 4)  # every level the file has
        seeds["seq"] = np.arange(seq, seq + len(seeds))
        seq += len(seeds)
        engine.process(seeds)
        for i, cmd in enumerate(seeds):
            seed_slot[int(cmd["price"]) * 2 + int(cmd["side"])] = i
        start = 1 if len(messages) else 0
    nseed = len(seeds)
    seed_rem = seeds["qty"].astype(np.int64)
    seed_id = seeds["order_id"].astype(np.int64)
    seed_index = {int(oid): i for i, oid in enumerate(seed_id)}

    kinds = np.ascontiguousarray(messages["type"])
    ids = np.ascontiguousarray(messages["order_id"])
    sizes = np.ascontiguousarray(messages["size"])
    prices = np.ascontiguousarray(messages["price"])
    directions = np.ascontiguousarray(messages["direction"])
    replayed = kinds[start:]
    result.messages = len(replayed)
    values, counts = np.unique(replayed, return_counts=True)
    result.by_type = {int(v): int(c) for v, c in zip(values, counts, strict=True)}

    # tracked levels: capacity for every distinct price (plus seeds) on each side
    cap = len(np.unique(prices)) + nseed + 1
    keys = np.zeros((2, cap), dtype=np.int64)
    qtys = np.zeros((2, cap), dtype=np.int64)
    nlev = np.zeros(2, dtype=np.int64)
    for cmd in seeds:
        _level_change(keys, qtys, nlev, int(cmd["side"]), int(cmd["price"]), int(cmd["qty"]))

    known = _order_dict()
    halted = np.zeros(1, dtype=np.uint8)
    counters = np.zeros(N_COUNTERS, dtype=np.int64)
    named = np.zeros(len(messages), dtype=np.int64)
    cols = [np.empty(batch, dtype=np.int64) for _ in range(7)]
    c_oid, c_price, c_qty, c_kind, c_side, c_tif, c_msg = cols
    writer = None
    if book_out is not None:  # written by a thread while the replay goes on
        writer = lobster.OrderbookWriter(book_out, 4 * levels, background=True)
    # the depth rows of one batch; reused, so its pages are faulted in once, not per batch
    rows_buffer = np.empty((min(batch, max(len(messages) - start, 1)), 4 * levels), np.int64)
    started = time.perf_counter()
    m = start
    try:
        while m < len(messages):
            stop = min(m + batch, len(messages))
            seed_rem_before = seed_rem.copy()
            nxt, n = _translate_lobster(
                kinds, ids, sizes, prices, directions, m, stop, known, seed_slot, seed_rem,
                seed_id, halted, c_oid, c_price, c_qty, c_kind, c_side, c_tif, c_msg, named,
                counters,
            )  # fmt: skip
            commands = _command_batch(n, seq, c_oid, c_price, c_qty, np.full(n, LOBSTER_SYMBOL),
                                      c_kind, c_side, c_tif)  # fmt: skip
            events = engine.process(commands) if n else np.zeros(0, dtype=EVENT_DTYPE)
            result.commands += n
            result.tally.add(events)
            if nseed:
                _resync_seeds(events, seed_index, seed_rem_before, seed_rem)
            result.other_order_fills += _other_order_fills(events, named)
            msg_cmd_end = np.searchsorted(c_msg[:n], np.arange(m, nxt), side="right")
            rows = rows_buffer[: nxt - m]
            bad = _track_depth(
                events["seq"], events["kind"], events["side"], events["price"], events["qty"],
                events["flags"], events["reason"], seq, c_qty[:n].copy(), msg_cmd_end, keys, qtys,
                nlev, rows, levels,
            )  # fmt: skip
            _check_tracked(engine, keys, qtys, nlev, bad, nxt)
            if writer is not None:
                writer.write(rows)
            seq += n
            m = nxt
    finally:
        if writer is not None:
            writer.close()  # waits for the background writes; raises what they raised
    result.seconds = time.perf_counter() - started
    result.unknown_refs = int(counters[C_UNKNOWN_REF])
    result.seeded_applied = int(counters[C_SEEDED_APPLIED])
    return result


def _resync_seeds(
    events: np.ndarray, seed_index: dict[int, int], before: np.ndarray, seed_rem: np.ndarray
) -> None:
    """Set the seeded orders' remaining sizes to ``before`` (the sizes at the start of the
    batch) updated by what the engine did to them; the translator's own updates were a
    prediction."""
    seed_rem[:] = before
    ids = events["order_id"]
    mask = (ids >= SEED_ID_BASE) & (ids < SEED_ID_BASE + 2 * len(seed_rem) + 2)
    for event in events[mask]:
        slot = seed_index.get(int(event["order_id"]))
        if slot is None:
            continue
        kind = int(event["kind"])
        if kind == EventType.TRADE:
            seed_rem[slot] -= int(event["qty"])
        elif kind == EventType.CANCELLED:
            seed_rem[slot] = 0
        elif kind == EventType.REPLACED:
            seed_rem[slot] = int(event["qty"])


def _other_order_fills(events: np.ndarray, named: np.ndarray) -> int:
    """Execution IOCs whose fills include a maker other than the order LOBSTER named."""
    ids = events["order_id"]
    takers = (
        (events["kind"] == EventType.TRADE)
        & ((events["flags"] & EventFlag.TAKER) != 0)
        & (ids >= IOC_ID_BASE)
        & (ids < SEED_ID_BASE)
    )
    if not takers.any():
        return 0
    msg = ids[takers] - IOC_ID_BASE
    wrong = events["other_id"][takers] != named[msg]
    return int(np.unique(msg[wrong]).shape[0])


def _check_tracked(engine, keys, qtys, nlev, bad: int, at_message: int) -> None:
    """The tracked levels must equal the engine's book; anything else is a bug here."""
    bids, asks = engine.depth(LOBSTER_SYMBOL, 1 << 30)
    tracked_bids = np.stack([keys[0, : nlev[0]][::-1], qtys[0, : nlev[0]][::-1]], axis=1)
    tracked_asks = np.stack([-keys[1, : nlev[1]][::-1], qtys[1, : nlev[1]][::-1]], axis=1)
    if (
        bad
        or not np.array_equal(bids[:, :2], tracked_bids)
        or not np.array_equal(asks[:, :2], tracked_asks)
    ):
        raise RuntimeError(
            f"depth tracked from events disagrees with the engine's book after message "
            f"{at_message} ({bad} inconsistent events): this is a bug in feed_replay"
        )
