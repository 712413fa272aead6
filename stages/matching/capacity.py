"""Room for the worst case of a command, checked before anything of it is applied.

The core never grows an array: before each command ``shortage`` checks that its worst case
fits (an order row, a level row, a slot on each side of its book, the id index under half
load, the events it may write) and otherwise names what is short, so ``run_batch`` can
return *before touching anything*; the Python wrapper grows that and resumes there.
"""

# ruff: noqa: SIM109  (explicit branches compile to plain compares in numba)

from __future__ import annotations

from stages import hashtable
from stages.kernel_codes import CMD_KILL_SWITCH, CMD_NEW, CMD_REPLACE, MAX_SIDE, SIDE_BUY, SIDE_SELL

from .jit import njit
from .layout import (
    B_NLEVELS,
    B_NORDERS,
    C_HTCOUNT,
    C_LFREE,
    C_OFREE,
    C_OPEN,
    L_COUNT,
    L_PRICE,
    O_ACCT,
    O_BOOK,
    O_ID,
    O_SIDE,
    ST_DONE,
    ST_GROW_HASH,
    ST_GROW_LEVELS,
    ST_GROW_ORDERS,
    ST_GROW_SIDES,
    ST_OUT_FULL,
)
from .levels import acceptable, opposite, side_row

#: fewest free event slots before any command: covers every command but NEW, REPLACE and
#: KILL_SWITCH, whose bound ``events_bound`` computes
MIN_EVENT_ROOM = 8


@njit()
def _orders_reachable(levels, b, side, limit):
    """How many resting orders an aggressor of ``side`` with ``limit`` could touch."""
    opp = opposite(side)
    row = side_row(b, opp)
    total = 0
    for j in range(levels.books[b, B_NLEVELS + opp] - 1, -1, -1):
        lvl = levels.side_levels[row, j]
        if not acceptable(side, limit, levels.rows[lvl, L_PRICE]):
            break
        total += levels.rows[lvl, L_COUNT]
    return total


@njit()
def _orders_of_account(orders, account):
    """Resting orders of ``account`` (0: of every account)."""
    total = 0
    for r in range(orders.shape[0]):
        if orders[r, O_ID] != 0 and (account == 0 or orders[r, O_ACCT] == account):
            total += 1
    return total


@njit(inline="always")
def events_bound(kind, b, side, price, order_id, account, levels, pool, room):
    """An upper bound on the events one command can emit, as tight as ``room`` requires."""
    if kind == CMD_NEW or kind == CMD_REPLACE:
        if b < 0:
            return 4
        if kind == CMD_REPLACE:
            o = hashtable.find(pool.by_id, order_id)
            if o < 0:
                return 4
            side = pool.rows[o, O_SIDE]
        if side > MAX_SIDE:
            return 4
        # two events per resting order it can reach (a TRADE pair, or STP cancels), + its own
        cheap = 2 * levels.books[b, B_NORDERS + opposite(side)] + 8
        if cheap <= room:
            return cheap
        return 2 * _orders_reachable(levels, b, side, price) + 8
    if kind == CMD_KILL_SWITCH:
        nbooks = levels.books.shape[0]
        cheap = pool.counters[C_OPEN] + 2 * nbooks + 2
        if cheap <= room:
            return cheap
        return _orders_of_account(pool.rows, account) + 2 * nbooks + 2
    return 4


@njit(inline="always")
def shortage(command, room, book_of_symbol, levels, pool):
    """``(ST_DONE, 0)`` when the worst case of ``command`` fits, else what to grow first:
    ``(ST_GROW_*, 0)``, or ``(ST_OUT_FULL, event slots needed)`` when ``room`` (free event
    slots) is too small."""
    counters = pool.counters
    if counters[C_OFREE] < 1:
        return ST_GROW_ORDERS, 0
    if counters[C_LFREE] < 1:
        return ST_GROW_LEVELS, 0
    if 2 * (counters[C_HTCOUNT] + 1) > pool.by_id.shape[0]:
        return ST_GROW_HASH, 0
    kind = command.kind
    order_id = command.order_id
    b = book_of_symbol[command.symbol]
    if kind == CMD_REPLACE:
        o = hashtable.find(pool.by_id, order_id)
        if o >= 0:
            b = pool.rows[o, O_BOOK]
    side_capacity = levels.side_keys.shape[1]
    if b >= 0 and (
        levels.books[b, B_NLEVELS + SIDE_BUY] >= side_capacity
        or levels.books[b, B_NLEVELS + SIDE_SELL] >= side_capacity
    ):
        return ST_GROW_SIDES, 0
    if room < MIN_EVENT_ROOM:
        return ST_OUT_FULL, MIN_EVENT_ROOM
    need = events_bound(kind, b, command.side, command.price, order_id,
                        command.account, levels, pool, room)  # fmt: skip
    if need > room:
        return ST_OUT_FULL, need
    return ST_DONE, 0
