"""Column numbers of the matching engine's state arrays, shared by the compiled core and its
Python wrapper so both read the same layout.

The whole book state lives in a few preallocated int64 numpy arrays (one row per order, per
price level, per book) so the compiled hot loop touches no Python object. Commands and
events are read and written as eight little-endian int64 words each (the 64-byte records of
``stages.records`` viewed as ``<i8``); the ``W*`` helpers below name the packed fields.
"""

from __future__ import annotations

# --- ORD: one row per order slot -----------------------------------------------------------
O_ID = 0  # order id; 0 = free slot
O_ACCT = 1
O_PRICE = 2
O_QTY = 3  # open quantity
O_SIDE = 4
O_BOOK = 5  # book index (not the symbol id)
O_LEVEL = 6  # level row in LV, -1 while detached
O_PREV = 7  # previous order in the level's FIFO, -1 at the head
O_NEXT = 8  # next order in the level's FIFO, -1 at the tail
O_STP = 9  # SelfTradePrevention of the order (used when it is the aggressor)
O_FLAGS = 10  # CommandFlag bits it was entered with (POST_ONLY)
ORD_WIDTH = 11

# --- LV: one row per price level -----------------------------------------------------------
L_PRICE = 0
L_QTY = 1  # total open qty at the level
L_COUNT = 2  # number of orders at the level
L_HEAD = 3  # first order (oldest, first to fill)
L_TAIL = 4  # last order
LV_WIDTH = 5

# --- BK: one row per book (symbol), books sorted by symbol id ------------------------------
B_TICK = 0
B_LOT = 1
B_MIN = 2
B_MAX = 3
B_BAND_LO = 4
B_BAND_HI = 5
B_HALTED = 6
B_SYMBOL = 7
B_NLEVELS = 8  # + side: number of price levels on that side (length of its SPX/SLV row)
B_NORDERS = 10  # + side: number of resting orders on that side
BK_WIDTH = 12

# --- CTR: counters ---------------------------------------------------------------------------
C_OPEN = 0  # resting orders in all books
C_OFREE = 1  # entries on the order free stack
C_LFREE = 2  # entries on the level free stack
C_HTCOUNT = 3  # keys in the order-id hash table
CTR_WIDTH = 4

# --- status codes returned by the hot loop: what to grow before resuming -------------------
ST_DONE = 0
ST_OUT_FULL = 1
ST_GROW_ORDERS = 2
ST_GROW_LEVELS = 3
ST_GROW_SIDES = 4
ST_GROW_HASH = 5
