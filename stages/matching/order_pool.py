"""The order pool: one row per order slot, a free stack of rows, and the id index.

An order takes a row from the free stack when it comes to rest and gives it back when it
is filled or cancelled; a row whose ``O_ID`` is 0 is free. The index is an open-addressing
hash table from order id to row (``stages.hashtable``, shared with risk), sized by use: the
Python wrapper doubles it before a command could fill it past half, so ``counters``
keep the number of ids it holds (``C_HTCOUNT``) next to the number of open orders.

Nothing here allocates or grows: the caller checked before the command that a row is free
and the index has room (``capacity.py``).
"""

from __future__ import annotations

from stages import hashtable

from .jit import njit
from .layout import (
    C_HTCOUNT,
    C_OFREE,
    C_OPEN,
    O_ACCT,
    O_BOOK,
    O_FLAGS,
    O_ID,
    O_LEVEL,
    O_NEXT,
    O_PREV,
    O_PRICE,
    O_QTY,
    O_SIDE,
    O_STP,
)
from .levels import detach


@njit()
def index_insert(by_id, counters, order_id, row):
    hashtable.put(by_id, order_id, row)
    counters[C_HTCOUNT] += 1


@njit()
def _index_delete(by_id, counters, order_id):
    if hashtable.delete(by_id, order_id) >= 0:
        counters[C_HTCOUNT] -= 1


@njit()
def allocate(pool, order_id, account, price, qty, side, b, stp, flags):
    """Take a free row for a new resting order (not yet on a level); return it."""
    counters = pool.counters
    counters[C_OFREE] -= 1
    o = pool.free[counters[C_OFREE]]
    orders = pool.rows
    orders[o, O_ID] = order_id
    orders[o, O_ACCT] = account
    orders[o, O_PRICE] = price
    orders[o, O_QTY] = qty
    orders[o, O_SIDE] = side
    orders[o, O_BOOK] = b
    orders[o, O_LEVEL] = -1
    orders[o, O_PREV] = -1
    orders[o, O_NEXT] = -1
    orders[o, O_STP] = stp
    orders[o, O_FLAGS] = flags
    index_insert(pool.by_id, counters, order_id, o)
    counters[C_OPEN] += 1
    return o


@njit()
def release(pool, o):
    """Give row ``o`` (detached from its level) back to the free stack."""
    counters = pool.counters
    _index_delete(pool.by_id, counters, pool.rows[o, O_ID])
    pool.rows[o, O_ID] = 0
    pool.free[counters[C_OFREE]] = o
    counters[C_OFREE] += 1
    counters[C_OPEN] -= 1


@njit(inline="always")
def remove(levels, pool, o):
    """Take resting order ``o`` off the book: out of its level, its row freed."""
    detach(levels, pool.rows, o)
    release(pool, o)


@njit()
def rebuild_index(orders, new_by_id, counters):
    """Re-insert every live order into a fresh (larger) id index. Cold: the wrapper grows."""
    counters[C_HTCOUNT] = 0
    for r in range(orders.shape[0]):
        if orders[r, O_ID] != 0:
            index_insert(new_by_id, counters, orders[r, O_ID], r)
