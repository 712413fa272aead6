"""The top-N levels of one book after every replayed message, kept from the engine's events.

A LOBSTER replay writes the book after each message. ``MatchingEngine.depth`` is a
Python call per query (a few µs), too slow for a row per message at a million messages
per second, so ``TrackedDepth`` keeps the book's price levels itself, from the engine's
own event stream, in one compiled pass per batch: ACCEPTED plus the taker's trades is
what rests, maker trades, cancels and reduces are what leaves. After every batch the
tracked levels are compared with ``MatchingEngine.depth`` over the whole book; a
difference raises (a bug here, not a data problem).

Levels are kept per side (``SIDE_BUY`` / ``SIDE_SELL`` index the arrays) as sorted keys,
best level last: the price for bids, minus the price for asks. Rows are LOBSTER
orderbook rows (``stages.ingest.lobster``: ask price, ask size, bid price, bid size per
level; LOBSTER's empty-level prices where the book has fewer levels).
"""

# ruff: noqa: SIM109  (explicit compares compile to plain compares in numba; `in` a tuple may not)

from __future__ import annotations

import numba
import numpy as np

from stages.ingest.lobster import (
    ASK_PRICE_COL,
    ASK_SIZE_COL,
    BID_PRICE_COL,
    BID_SIZE_COL,
    EMPTY_ASK_PRICE,
    EMPTY_BID_PRICE,
    LEVEL_COLUMNS,
)
from stages.kernel_codes import (
    EF_TAKER,
    EV_ACCEPTED,
    EV_CANCELLED,
    EV_REPLACED,
    EV_TRADE,
    R_FOK_NOT_FILLED,
    R_IOC_REMAINDER,
    R_MARKET_NO_LIQUIDITY,
    SIDE_BUY,
    SIDE_SELL,
)


@numba.njit(inline="always")
def _level_key(side, price):
    """Sort key of a level: ascending keys put each side's best level last."""
    return price if side == SIDE_BUY else -price


@numba.njit(inline="always")
def _level_change(keys, qtys, nlev, side, price, delta):
    """Add ``delta`` to the level of ``price`` (keys ascending, best last); 1 if inconsistent."""
    key = _level_key(side, price)
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
def _add_level_qty(keys, qtys, nlev, side, price, qty):
    return _level_change(keys, qtys, nlev, side, price, qty)


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
            if kind == EV_ACCEPTED:  # the order rests with what its taker trades leave
                if pend_qty > 0:
                    bad += _level_change(keys, qtys, nlev, pend_side, pend_price, pend_qty)
                pend_qty = ev_qty[e]
                pend_side = ev_side[e]
                pend_price = ev_price[e]
            elif kind == EV_TRADE:
                if ev_flags[e] & EF_TAKER:
                    pend_qty -= ev_qty[e]
                else:
                    bad += _level_change(keys, qtys, nlev, ev_side[e], ev_price[e], -ev_qty[e])
            elif kind == EV_CANCELLED:
                r = ev_reason[e]
                if r == R_IOC_REMAINDER or r == R_FOK_NOT_FILLED or r == R_MARKET_NO_LIQUIDITY:
                    pend_qty = 0  # the remainder of an order that never rested
                else:
                    bad += _level_change(keys, qtys, nlev, ev_side[e], ev_price[e], -ev_qty[e])
            elif kind == EV_REPLACED:  # by a REDUCE: the level loses the reduced quantity
                c = ev_seq[e] - seq0
                bad += _level_change(keys, qtys, nlev, ev_side[e], ev_price[e], -cmd_qty[c])
            e += 1
        if pend_qty > 0:
            bad += _level_change(keys, qtys, nlev, pend_side, pend_price, pend_qty)
        pend_qty = 0
        asks = nlev[SIDE_SELL]
        bids = nlev[SIDE_BUY]
        for lvl in range(levels):
            col = LEVEL_COLUMNS * lvl
            if lvl < asks:
                rows[m, col + ASK_PRICE_COL] = -keys[SIDE_SELL, asks - 1 - lvl]
                rows[m, col + ASK_SIZE_COL] = qtys[SIDE_SELL, asks - 1 - lvl]
            else:
                rows[m, col + ASK_PRICE_COL] = EMPTY_ASK_PRICE
                rows[m, col + ASK_SIZE_COL] = 0
            if lvl < bids:
                rows[m, col + BID_PRICE_COL] = keys[SIDE_BUY, bids - 1 - lvl]
                rows[m, col + BID_SIZE_COL] = qtys[SIDE_BUY, bids - 1 - lvl]
            else:
                rows[m, col + BID_PRICE_COL] = EMPTY_BID_PRICE
                rows[m, col + BID_SIZE_COL] = 0
    return bad


class TrackedDepth:
    """The price levels of one book (symbol ``symbol`` of an engine), from its events.

    ``capacity`` bounds the levels per side: every distinct price the replay can send.
    """

    def __init__(self, symbol: int, capacity: int) -> None:
        self.symbol = symbol
        self.keys = np.zeros((2, capacity), dtype=np.int64)
        self.qtys = np.zeros((2, capacity), dtype=np.int64)
        self.nlev = np.zeros(2, dtype=np.int64)

    def add(self, side: int, price: int, qty: int) -> None:
        """Add ``qty`` (> 0) at ``price`` on ``side``: an order entered outside ``apply``."""
        _add_level_qty(self.keys, self.qtys, self.nlev, side, price, qty)

    def apply(
        self,
        events: np.ndarray,
        seq0: int,
        cmd_qty: np.ndarray,
        msg_cmd_end: np.ndarray,
        rows: np.ndarray,
        levels: int,
    ) -> int:
        """Apply the events of a batch of commands numbered from ``seq0`` (``cmd_qty``
        their quantities); message ``m`` of the batch ends before command
        ``msg_cmd_end[m]``, and its row ``rows[m]`` gets the top ``levels`` levels after it.
        Returns the number of inconsistent events (see ``check``). Hot: one compiled pass.
        """
        return _track_depth(
            events["seq"], events["kind"], events["side"], events["price"], events["qty"],
            events["flags"], events["reason"], seq0, cmd_qty, msg_cmd_end, self.keys,
            self.qtys, self.nlev, rows, levels,
        )  # fmt: skip

    def check(self, engine, bad: int, at_message: int) -> None:
        """The tracked levels must equal the engine's book; anything else is a bug here."""
        bids, asks = engine.depth(self.symbol, 1 << 30)
        keys, qtys, nlev = self.keys, self.qtys, self.nlev
        nbid, nask = nlev[SIDE_BUY], nlev[SIDE_SELL]
        tracked_bids = np.stack([keys[SIDE_BUY, :nbid][::-1], qtys[SIDE_BUY, :nbid][::-1]], 1)
        tracked_asks = np.stack([-keys[SIDE_SELL, :nask][::-1], qtys[SIDE_SELL, :nask][::-1]], 1)
        if (
            bad
            or not np.array_equal(bids[:, :2], tracked_bids)
            or not np.array_equal(asks[:, :2], tracked_asks)
        ):
            raise RuntimeError(
                f"depth tracked from events disagrees with the engine's book after message "
                f"{at_message} ({bad} inconsistent events): this is a bug in "
                "stages.feed_replay.depth"
            )
