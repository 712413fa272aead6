"""Price levels: each book side's sorted level array and the FIFO of orders at a level.

A level row (``L_*``) holds a price, its total open quantity, its order count and the head
and tail of its FIFO, linked through the order rows (``O_PREV`` / ``O_NEXT``). A book side
keeps its levels sorted by ``sort_key``, ascending, so the best level is the LAST entry on
both sides: the best price is read without scanning, and inserting or removing levels near
the touch, where nearly all activity is, moves only a few entries; other prices are found
by binary search. Level rows come from a free stack and go back to it when they empty.

Nothing here allocates or grows: the caller checked before the command that a level row
and a side slot are free (``capacity.py``).
"""

from __future__ import annotations

from stages.kernel_codes import SIDE_BUY

from .jit import njit
from .layout import (
    B_NLEVELS,
    B_NORDERS,
    C_LFREE,
    L_COUNT,
    L_HEAD,
    L_PRICE,
    L_QTY,
    L_TAIL,
    O_BOOK,
    O_LEVEL,
    O_NEXT,
    O_PREV,
    O_PRICE,
    O_QTY,
    O_SIDE,
)


@njit(inline="always")
def side_row(b, side):
    """The row of book ``b``'s ``side`` in ``side_keys`` / ``side_levels``."""
    return 2 * b + side


@njit(inline="always")
def opposite(side):
    """The other side (SIDE_BUY <-> SIDE_SELL)."""
    return 1 - side


@njit(inline="always")
def sort_key(side, price):
    """Sort key of a level: ascending keys put the best level last on both sides."""
    return price if side == SIDE_BUY else -price


@njit(inline="always")
def _bisect(side_keys, row, n, key):
    """Where ``key`` is, or would be inserted, among the ``n`` sorted keys of a side row."""
    lo = 0
    hi = n
    # the touch is at the end: look there first, it is where most levels are
    if n > 0 and side_keys[row, n - 1] < key:
        return n
    while lo < hi:
        mid = (lo + hi) >> 1
        if side_keys[row, mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit()
def level_for(levels, b, side, price):
    """The level row for ``price`` on a side, created (empty) if absent."""
    row = side_row(b, side)
    n = levels.books[b, B_NLEVELS + side]
    key = sort_key(side, price)
    side_keys = levels.side_keys
    side_levels = levels.side_levels
    pos = _bisect(side_keys, row, n, key)
    if pos < n and side_keys[row, pos] == key:
        return side_levels[row, pos]
    levels.counters[C_LFREE] -= 1
    lvl = levels.free[levels.counters[C_LFREE]]
    level_rows = levels.rows
    level_rows[lvl, L_PRICE] = price
    level_rows[lvl, L_QTY] = 0
    level_rows[lvl, L_COUNT] = 0
    level_rows[lvl, L_HEAD] = -1
    level_rows[lvl, L_TAIL] = -1
    for j in range(n, pos, -1):
        side_keys[row, j] = side_keys[row, j - 1]
        side_levels[row, j] = side_levels[row, j - 1]
    side_keys[row, pos] = key
    side_levels[row, pos] = lvl
    levels.books[b, B_NLEVELS + side] = n + 1
    return lvl


@njit()
def drop_level(levels, b, side, lvl, price):
    """Take the (empty) level ``lvl`` at ``price`` out of its side; free its row."""
    row = side_row(b, side)
    n = levels.books[b, B_NLEVELS + side]
    side_keys = levels.side_keys
    side_levels = levels.side_levels
    if side_levels[row, n - 1] == lvl:
        pos = n - 1
    else:
        pos = _bisect(side_keys, row, n, sort_key(side, price))
    for j in range(pos, n - 1):
        side_keys[row, j] = side_keys[row, j + 1]
        side_levels[row, j] = side_levels[row, j + 1]
    levels.books[b, B_NLEVELS + side] = n - 1
    levels.free[levels.counters[C_LFREE]] = lvl
    levels.counters[C_LFREE] += 1


@njit()
def attach(levels, orders, o):
    """Append resting order ``o`` (price, qty, side, book set) at the tail of its level."""
    b = orders[o, O_BOOK]
    side = orders[o, O_SIDE]
    lvl = level_for(levels, b, side, orders[o, O_PRICE])
    level_rows = levels.rows
    tail = level_rows[lvl, L_TAIL]
    orders[o, O_LEVEL] = lvl
    orders[o, O_PREV] = tail
    orders[o, O_NEXT] = -1
    if tail == -1:
        level_rows[lvl, L_HEAD] = o
    else:
        orders[tail, O_NEXT] = o
    level_rows[lvl, L_TAIL] = o
    level_rows[lvl, L_QTY] += orders[o, O_QTY]
    level_rows[lvl, L_COUNT] += 1
    levels.books[b, B_NORDERS + side] += 1


@njit()
def detach(levels, orders, o):
    """Unlink order ``o`` from its level (dropping the level if it empties); keep the row."""
    level_rows = levels.rows
    lvl = orders[o, O_LEVEL]
    prev = orders[o, O_PREV]
    next_ = orders[o, O_NEXT]
    if prev == -1:
        level_rows[lvl, L_HEAD] = next_
    else:
        orders[prev, O_NEXT] = next_
    if next_ == -1:
        level_rows[lvl, L_TAIL] = prev
    else:
        orders[next_, O_PREV] = prev
    level_rows[lvl, L_QTY] -= orders[o, O_QTY]
    level_rows[lvl, L_COUNT] -= 1
    b = orders[o, O_BOOK]
    side = orders[o, O_SIDE]
    levels.books[b, B_NORDERS + side] -= 1
    orders[o, O_LEVEL] = -1
    if level_rows[lvl, L_COUNT] == 0:
        drop_level(levels, b, side, lvl, level_rows[lvl, L_PRICE])


@njit(inline="always")
def shrink(levels, orders, o, by):
    """Reduce resting order ``o`` in place by ``by`` (it keeps its time priority)."""
    orders[o, O_QTY] -= by
    levels.rows[orders[o, O_LEVEL], L_QTY] -= by


@njit(inline="always")
def top(levels, b, side):
    """(price, total qty, order count) of the best level of a side; zeros when it is empty."""
    n = levels.books[b, B_NLEVELS + side]
    if n == 0:
        return 0, 0, 0
    lvl = levels.side_levels[side_row(b, side), n - 1]
    level_rows = levels.rows
    return level_rows[lvl, L_PRICE], level_rows[lvl, L_QTY], level_rows[lvl, L_COUNT]


@njit(inline="always")
def acceptable(side, limit, level_price):
    """May an aggressor of ``side`` with ``limit`` (0 = unbounded) trade at level_price?"""
    if limit == 0:
        return True
    if side == SIDE_BUY:
        return level_price <= limit
    return level_price >= limit


@njit(inline="always")
def crosses(levels, b, side, price):
    """Would an order of ``side`` at ``price`` meet the best opposite level?"""
    opp = opposite(side)
    n = levels.books[b, B_NLEVELS + opp]
    if n == 0:
        return False
    return acceptable(
        side, price, levels.rows[levels.side_levels[side_row(b, opp), n - 1], L_PRICE]
    )
