"""LOBSTER → commands: replay a LOBSTER message file into a one-symbol engine.

LOBSTER message types become commands (one symbol, ``LOBSTER_SYMBOL``): 1 → NEW limit
GTC; 2 → REDUCE; 3 → CANCEL; 4 → an IOC from the opposite side at the execution's price
and size, so tradepipe's own time priority decides which resting order fills (fills of
another order than the one LOBSTER names are counted); 5, 6 → nothing; 7 → HALT (price
-1) / RESUME (0 quoting, 1 trading). With a seeded book (``lobster_seeds``) a 2/3/4
whose id was never added applies to the seeded order at that side and price while one
is left (never below zero), otherwise it is counted as an unknown reference.

Translation is one compiled pass per batch: LOBSTER names orders by id and some rules
need per-order state (which ids are live, what is left of each seeded order), kept in
numba typed dicts and arrays so no Python runs per message. The book after every
message comes from ``depth.TrackedDepth``.
"""

# ruff: noqa: SIM109  (explicit compares compile to plain compares in numba; `in` a tuple may not)

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numba
import numpy as np
from numba import types as nbtypes
from numba.typed import Dict

from stages.feed_replay.depth import TrackedDepth
from stages.feed_replay.driver import ENGINE_BATCH, command_batch, new_engine
from stages.feed_replay.lobster_seeds import SEED_ID_BASE, SeededBook, seed_key
from stages.feed_replay.tallies import (
    COUNT_SEEDED_APPLIED,
    COUNT_UNKNOWN_REF,
    EventTally,
    new_counters,
)
from stages.ingest.lobster import (
    DELETE,
    DIRECTION_BUY,
    HALT_PRICE,
    LEVEL_COLUMNS,
    NEW_LIMIT,
    PARTIAL_CANCEL,
    TRADING_HALT,
    VISIBLE_EXECUTION,
    OrderbookWriter,
)
from stages.kernel_codes import (
    CMD_CANCEL,
    CMD_HALT,
    CMD_NEW,
    CMD_REDUCE,
    CMD_RESUME,
    SIDE_BUY,
    SIDE_SELL,
    TIF_GTC,
    TIF_IOC,
)
from stages.matching import MatchingEngine
from stages.records import EVENT_DTYPE, EventFlag, EventType

#: Order ids of the IOCs that stand for LOBSTER executions: this base + message index.
IOC_ID_BASE = 1 << 60
#: The symbol id of a LOBSTER replay (a LOBSTER file holds one ticker).
LOBSTER_SYMBOL = 1


@numba.njit(inline="always")
def _opposite(side):
    return SIDE_SELL if side == SIDE_BUY else SIDE_BUY


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
        side = SIDE_BUY if directions[m] == DIRECTION_BUY else SIDE_SELL
        named[m] = 0
        m += 1
        if kind == NEW_LIMIT:
            known[oid] = 1
            c_kind[n] = CMD_NEW
            c_oid[n] = oid
            c_side[n] = side
            c_price[n] = price
            c_qty[n] = size
            c_tif[n] = TIF_GTC
            c_msg[n] = m - 1
            n += 1
        elif kind == PARTIAL_CANCEL or kind == DELETE or kind == VISIBLE_EXECUTION:
            key = seed_key(price, side)
            slot = seed_slot[key] if key in seed_slot else np.int64(-1)
            if oid in known:
                target = oid
                c_kind[n] = CMD_REDUCE if kind == PARTIAL_CANCEL else CMD_CANCEL
                c_qty[n] = size if kind == PARTIAL_CANCEL else 0
                if kind == DELETE:
                    del known[oid]
            elif slot >= 0 and seed_rem[slot] > 0:
                counters[COUNT_SEEDED_APPLIED] += 1
                target = seed_id[slot]
                if kind == VISIBLE_EXECUTION:
                    seed_rem[slot] -= min(size, seed_rem[slot])
                elif size < seed_rem[slot]:
                    c_kind[n] = CMD_REDUCE
                    c_qty[n] = size
                    seed_rem[slot] -= size
                else:
                    c_kind[n] = CMD_CANCEL
                    c_qty[n] = 0
                    seed_rem[slot] = 0
            else:
                counters[COUNT_UNKNOWN_REF] += 1
                continue
            if kind == VISIBLE_EXECUTION:
                named[m - 1] = target
                c_kind[n] = CMD_NEW
                c_oid[n] = IOC_ID_BASE + m - 1
                c_side[n] = _opposite(side)
                c_price[n] = price
                c_qty[n] = size
                c_tif[n] = TIF_IOC
            else:
                c_oid[n] = target
                c_side[n] = side
                c_price[n] = 0
                c_tif[n] = TIF_GTC
            c_msg[n] = m - 1
            n += 1
            if kind == VISIBLE_EXECUTION and target == oid and slot >= 0 and seed_rem[slot] > 0:
                return m, n  # the IOC may take the (older) seeded order first
        elif kind == TRADING_HALT:
            want = 1 if price == HALT_PRICE else 0
            if halted[0] != want:
                halted[0] = want
                c_kind[n] = CMD_HALT if want else CMD_RESUME
                c_oid[n] = 0
                c_side[n] = SIDE_BUY
                c_price[n] = 0
                c_qty[n] = 0
                c_tif[n] = TIF_GTC
                c_msg[n] = m - 1
                n += 1
    return m, n


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


def replay_lobster(
    messages: np.ndarray,
    levels: int,
    seed_row: np.ndarray | None = None,
    book_out=None,
    batch: int = ENGINE_BATCH,
) -> LobsterReplayResult:
    """Replay LOBSTER ``messages`` (``lobster.MESSAGE_DTYPE``) into a one-symbol engine.

    With ``seed_row`` (the orderbook file's first row) the book is seeded from it, every
    level the row has, whatever ``levels`` is, and the replay starts at the second
    message. ``book_out`` (a binary stream), if given, receives one LOBSTER orderbook row
    of ``levels`` levels per replayed message.
    """
    if levels < 1:
        raise ValueError(f"levels = {levels} is invalid: expected >= 1")
    engine = new_engine([LOBSTER_SYMBOL])
    result = LobsterReplayResult(engine)
    start = 0
    seq = 1
    seeds = SeededBook.from_row(seed_row, LOBSTER_SYMBOL)
    if seed_row is not None:
        seeds.commands["seq"] = np.arange(seq, seq + len(seeds))
        seq += len(seeds)
        engine.process(seeds.commands)
        start = 1 if len(messages) else 0

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
    depth = TrackedDepth(LOBSTER_SYMBOL, len(np.unique(prices)) + len(seeds) + 1)
    for cmd in seeds.commands:
        depth.add(int(cmd["side"]), int(cmd["price"]), int(cmd["qty"]))

    known = Dict.empty(key_type=nbtypes.int64, value_type=nbtypes.int64)
    halted = np.zeros(1, dtype=np.uint8)
    counters = new_counters()
    named = np.zeros(len(messages), dtype=np.int64)
    cols = [np.empty(batch, dtype=np.int64) for _ in range(7)]
    c_oid, c_price, c_qty, c_kind, c_side, c_tif, c_msg = cols
    writer = None
    if book_out is not None:  # written by a thread while the replay goes on
        writer = OrderbookWriter(book_out, LEVEL_COLUMNS * levels, background=True)
    # the depth rows of one batch; reused, so its pages are faulted in once, not per batch
    rows_buffer = np.empty(
        (min(batch, max(len(messages) - start, 1)), LEVEL_COLUMNS * levels), np.int64
    )
    started = time.perf_counter()
    m = start
    try:
        while m < len(messages):
            stop = min(m + batch, len(messages))
            seed_rem_before = seeds.remaining.copy()
            nxt, n = _translate_lobster(
                kinds, ids, sizes, prices, directions, m, stop, known, seeds.slot_of_level,
                seeds.remaining, seeds.order_ids, halted, c_oid, c_price, c_qty, c_kind,
                c_side, c_tif, c_msg, named, counters,
            )  # fmt: skip
            commands = command_batch(
                n, seq, c_oid, c_price, c_qty, LOBSTER_SYMBOL, c_kind, c_side, c_tif
            )
            events = engine.process(commands) if n else np.zeros(0, dtype=EVENT_DTYPE)
            result.commands += n
            result.tally.add(events)
            if len(seeds):
                seeds.resync(events, seed_rem_before)
            result.other_order_fills += _other_order_fills(events, named)
            msg_cmd_end = np.searchsorted(c_msg[:n], np.arange(m, nxt), side="right")
            rows = rows_buffer[: nxt - m]
            bad = depth.apply(events, seq, c_qty[:n].copy(), msg_cmd_end, rows, levels)
            depth.check(engine, bad, nxt)
            if writer is not None:
                writer.write(rows)
            seq += n
            m = nxt
    finally:
        if writer is not None:
            writer.close()  # waits for the background writes; raises what they raised
    result.seconds = time.perf_counter() - started
    result.unknown_refs = int(counters[COUNT_UNKNOWN_REF])
    result.seeded_applied = int(counters[COUNT_SEEDED_APPLIED])
    return result


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
