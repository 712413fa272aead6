"""The match loop: an aggressor against the opposite side of its book, price-time.

Trades happen at the resting (maker) order's price, best level first, oldest first within
a level; self-trade prevention applies the aggressor's mode when it reaches a resting order
of its own account (``docs/matching.md``). ``fok_fillable`` answers, before anything moves,
whether the same walk would fill an all-or-nothing order completely.
"""

from __future__ import annotations

from stages.kernel_codes import (
    EF_DONE,
    EF_MAKER,
    EF_TAKER,
    EV_CANCELLED,
    EV_TRADE,
    R_OK,
    R_SELF_TRADE,
    STP_CANCEL_AGGRESSOR,
    STP_CANCEL_BOTH,
    STP_CANCEL_RESTING,
    STP_NONE,
)

from .events import write_event
from .jit import njit
from .layout import B_NLEVELS, B_SYMBOL, L_HEAD, L_PRICE, O_ACCT, O_ID, O_NEXT, O_QTY
from .levels import acceptable, opposite, shrink, side_row
from .order_pool import remove


@njit()
def fok_fillable(levels, pool, b, side, limit, qty, account, stp):
    """Would an all-or-nothing aggressor be filled completely by trades, right now?

    Walks the opposite side in priority order exactly as matching would: a self order under
    CANCEL_RESTING is skipped (it would be cancelled, not traded); under the other STP modes
    a self order ends the walk (matching would stop or eat the aggressor there).
    """
    opp = opposite(side)
    row = side_row(b, opp)
    orders = pool.rows
    level_rows = levels.rows
    avail = 0
    for j in range(levels.books[b, B_NLEVELS + opp] - 1, -1, -1):
        lvl = levels.side_levels[row, j]
        if not acceptable(side, limit, level_rows[lvl, L_PRICE]):
            return False
        o = level_rows[lvl, L_HEAD]
        while o != -1:
            if stp != STP_NONE and orders[o, O_ACCT] == account:
                if stp != STP_CANCEL_RESTING:
                    return False
            else:
                oq = orders[o, O_QTY]
                if oq >= qty - avail:  # avail + oq >= qty, without the sum (avail < qty)
                    return True
                avail += oq
            o = orders[o, O_NEXT]
    return False


@njit()
def match(ew, pos, stamp, levels, pool, b, side, limit, qty, order_id, account, stp):
    """HOT. Match an aggressor (``order_id`` of ``account``: ``qty`` on ``side`` of book
    ``b``, at ``limit`` or better, 0 = no limit; self-trade mode ``stp``) against the
    opposite side; return (remaining qty, next event slot).

    Emits TRADE pairs (taker's event first) and self-trade-prevention CANCELLED events (the
    aggressor's at its ``limit``). A remaining qty of 0 means the aggressor is finished
    (filled or cancelled by STP). Must not allocate: it only moves rows between free stacks
    and levels.
    """
    symbol = levels.books[b, B_SYMBOL]
    opp = opposite(side)
    row = side_row(b, opp)
    orders = pool.rows
    level_rows = levels.rows
    remaining = qty
    while remaining > 0:
        n = levels.books[b, B_NLEVELS + opp]
        if n == 0:
            break
        lvl = levels.side_levels[row, n - 1]
        level_price = level_rows[lvl, L_PRICE]
        if not acceptable(side, limit, level_price):
            break
        o = level_rows[lvl, L_HEAD]
        while o != -1 and remaining > 0:
            next_ = orders[o, O_NEXT]
            maker_qty = orders[o, O_QTY]
            maker_id = orders[o, O_ID]
            maker_account = orders[o, O_ACCT]
            if stp != STP_NONE and maker_account == account:
                if stp == STP_CANCEL_RESTING:
                    pos = write_event(ew, pos, stamp, maker_id, 0, level_price, maker_qty,
                                      maker_account, symbol, EV_CANCELLED, opp, R_SELF_TRADE,
                                      EF_DONE)  # fmt: skip
                    remove(levels, pool, o)
                elif stp == STP_CANCEL_AGGRESSOR:
                    pos = write_event(ew, pos, stamp, order_id, 0, limit, remaining, account,
                                      symbol, EV_CANCELLED, side, R_SELF_TRADE,
                                      EF_DONE)  # fmt: skip
                    return 0, pos
                elif stp == STP_CANCEL_BOTH:
                    pos = write_event(ew, pos, stamp, order_id, 0, limit, remaining, account,
                                      symbol, EV_CANCELLED, side, R_SELF_TRADE,
                                      EF_DONE)  # fmt: skip
                    pos = write_event(ew, pos, stamp, maker_id, 0, level_price, maker_qty,
                                      maker_account, symbol, EV_CANCELLED, opp, R_SELF_TRADE,
                                      EF_DONE)  # fmt: skip
                    remove(levels, pool, o)
                    return 0, pos
                else:  # STP_DECREMENT_AND_CANCEL
                    m = min(remaining, maker_qty)
                    remaining -= m
                    pos = write_event(ew, pos, stamp, order_id, 0, limit, m, account, symbol,
                                      EV_CANCELLED, side, R_SELF_TRADE,
                                      EF_DONE if remaining == 0 else 0)  # fmt: skip
                    pos = write_event(ew, pos, stamp, maker_id, 0, level_price, m,
                                      maker_account, symbol, EV_CANCELLED, opp, R_SELF_TRADE,
                                      EF_DONE if maker_qty == m else 0)  # fmt: skip
                    if maker_qty == m:
                        remove(levels, pool, o)
                    else:
                        shrink(levels, orders, o, m)
            else:
                q = min(remaining, maker_qty)
                remaining -= q
                pos = write_event(ew, pos, stamp, order_id, maker_id, level_price, q, account,
                                  symbol, EV_TRADE, side, R_OK,
                                  EF_TAKER | (EF_DONE if remaining == 0 else 0))  # fmt: skip
                pos = write_event(ew, pos, stamp, maker_id, order_id, level_price, q,
                                  maker_account, symbol, EV_TRADE, opp, R_OK,
                                  EF_MAKER | (EF_DONE if maker_qty == q else 0))  # fmt: skip
                if maker_qty == q:
                    remove(levels, pool, o)
                else:
                    shrink(levels, orders, o, q)
            o = next_
    return remaining, pos
