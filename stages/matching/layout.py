"""The matching core's state arrays: their column names and the two groups kernels pass.

The whole book state lives in a few preallocated int64 numpy arrays (one row per order, per
price level, per book) so the compiled hot loop touches no Python object. The Python
wrapper (``engine.py``) owns and grows them and hands them to the kernel entry points one
by one (numba types separate arrays through its C fast path; a tuple argument would cost
~2 µs per call in Python); each entry point groups them into ``PriceLevels`` and
``OrderPool`` for the helpers it calls. Commands and events are read and written by field
name through ``stages.record_words``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# --- order rows (OrderPool.rows): one row per order slot -----------------------------------
O_ID = 0  # order id; 0 = free slot
O_ACCT = 1
O_PRICE = 2
O_QTY = 3  # open quantity
O_SIDE = 4
O_BOOK = 5  # book index (not the symbol id)
O_LEVEL = 6  # level row (PriceLevels.rows), -1 while detached
O_PREV = 7  # previous order in the level's FIFO, -1 at the head
O_NEXT = 8  # next order in the level's FIFO, -1 at the tail
O_STP = 9  # SelfTradePrevention of the order (used when it is the aggressor)
O_FLAGS = 10  # CommandFlag bits it was entered with (POST_ONLY)
ORD_WIDTH = 11

# --- level rows (PriceLevels.rows): one row per price level -------------------------------
L_PRICE = 0
L_QTY = 1  # total open qty at the level
L_COUNT = 2  # number of orders at the level
L_HEAD = 3  # first order (oldest, first to fill)
L_TAIL = 4  # last order
LV_WIDTH = 5

# --- book rows (PriceLevels.books): one row per book (symbol), books sorted by symbol id ---
B_TICK = 0
B_LOT = 1
B_MIN = 2
B_MAX = 3
B_BAND_LO = 4
B_BAND_HI = 5
B_HALTED = 6
B_SYMBOL = 7
B_NLEVELS = 8  # + side: number of price levels on that side (length of its side row)
B_NORDERS = 10  # + side: number of resting orders on that side
BK_WIDTH = 12

# --- counters (shared by both groups) -------------------------------------------------------
C_OPEN = 0  # resting orders in all books
C_OFREE = 1  # entries on the order free stack
C_LFREE = 2  # entries on the level free stack
C_HTCOUNT = 3  # keys in the order-id hash table
CTR_WIDTH = 4

# --- exported order rows (export_orders / import_orders; the snapshot's ``orders``) --------
X_BOOK = 0  # book index (resting_orders() replaces it by the symbol id)
X_SIDE = 1
X_PRICE = 2
X_ORDER_ID = 3
X_ACCOUNT = 4
X_QTY = 5  # open quantity
X_STP = 6
X_FLAGS = 7
EXPORT_WIDTH = 8

# --- status codes returned by the hot loop: what to grow before resuming -------------------
ST_DONE = 0  # the batch is finished (and, before a command: nothing is short)
ST_OUT_FULL = 1
ST_GROW_ORDERS = 2
ST_GROW_LEVELS = 3
ST_GROW_SIDES = 4
ST_GROW_HASH = 5


class PriceLevels(NamedTuple):
    """Every book's price levels (``levels.py``).

    A book side is the row ``2 * book + side`` of ``side_keys`` / ``side_levels``: its
    ``books[book, B_NLEVELS + side]`` levels sorted by key, ascending, so the best level is
    the LAST entry on both sides (``levels.sort_key``).
    """

    books: np.ndarray  # int64[books, BK_WIDTH]: symbol rules, halt flag, counts per side
    side_keys: np.ndarray  # int64[2 * books, side capacity]: sort keys of the side's levels
    side_levels: np.ndarray  # int64[2 * books, side capacity]: level row of each key
    rows: np.ndarray  # int64[levels, LV_WIDTH]: price, total qty, count, FIFO head and tail
    free: np.ndarray  # int64[levels]: free level rows, a stack of counters[C_LFREE] entries
    counters: np.ndarray  # int64[CTR_WIDTH]


class OrderPool(NamedTuple):
    """Every order slot, the free ones and the id index (``order_pool.py``)."""

    rows: np.ndarray  # int64[orders, ORD_WIDTH]; O_ID 0 = free slot
    free: np.ndarray  # int64[orders]: free order rows, a stack of counters[C_OFREE] entries
    by_id: np.ndarray  # int64[size, 2]: order id -> row (stages.hashtable)
    counters: np.ndarray  # int64[CTR_WIDTH]
