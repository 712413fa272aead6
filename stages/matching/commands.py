"""What each command kind does to the books, and the events it answers with.

One handler per kind, called by ``book.run_batch`` once ``capacity.shortage`` found room
for the command's worst case. A handler reads the command's fields by name and checks them
in the order ``docs/matching.md`` (validation order) gives. Each returns ``(next event
slot, reason)``: R_OK when it applied the command and wrote its events, otherwise the
reason of the first failed check, with nothing touched and nothing written, and
``run_batch`` answers with the one ``reject`` event. The handlers are inlined into
``run_batch``: together they are its body.
"""

# ruff: noqa: SIM114  (explicit branches compile to plain compares in numba)

from __future__ import annotations

from typing import NamedTuple

from stages import hashtable
from stages.kernel_codes import (
    CF_POST_ONLY,
    CMD_DEPOSIT,
    CMD_HALT,
    EF_DONE,
    EV_ACCEPTED,
    EV_BALANCE,
    EV_CANCELLED,
    EV_HALTED,
    EV_KILL_SWITCH,
    EV_KILL_SWITCH_RELEASED,
    EV_REJECTED,
    EV_REPLACED,
    EV_RESUMED,
    KNOWN_COMMAND_FLAGS,
    MAX_ORDER_TYPE,
    MAX_SIDE,
    MAX_STP,
    MAX_TIF,
    OT_LIMIT,
    OT_MARKET,
    R_DUPLICATE_ORDER_ID,
    R_FOK_NOT_FILLED,
    R_INVALID_COMMAND,
    R_INVALID_PRICE,
    R_INVALID_QTY,
    R_IOC_REMAINDER,
    R_KILL_SWITCH_CANCEL,
    R_LOT_SIZE,
    R_MARKET_NO_LIQUIDITY,
    R_NOT_OWNER,
    R_OK,
    R_POST_ONLY_WOULD_TAKE,
    R_REDUCE_TOO_LARGE,
    R_SYMBOL_HALTED,
    R_UNKNOWN_ORDER,
    R_UNKNOWN_SYMBOL,
    R_USER_CANCEL,
    TIF_FOK,
    TIF_GTC,
    TIF_IOC,
)
from stages.record_words import (
    C_ACCOUNT,
    C_FLAGS,
    C_KIND,
    C_ORDER_ID,
    C_ORDER_TYPE,
    C_PRICE,
    C_QTY,
    C_REASON,
    C_SEQ,
    C_SIDE,
    C_STP,
    C_SYMBOL,
    C_TIF,
    C_TS_INGEST,
    get,
)

from . import symbol_rules
from .events import TOPS_PER_BOOK, save_tops, write_event, write_top_changes
from .jit import njit
from .layout import (
    B_HALTED,
    B_NLEVELS,
    B_SYMBOL,
    L_HEAD,
    O_ACCT,
    O_BOOK,
    O_FLAGS,
    O_ID,
    O_NEXT,
    O_PRICE,
    O_QTY,
    O_SIDE,
    O_STP,
)
from .levels import attach, crosses, detach, shrink, side_row
from .match import fok_fillable, match
from .order_pool import allocate, release, remove


class Command(NamedTuple):
    """The fields of one command the core uses, read once by name (``read_command``)."""

    seq: int
    ts_ingest: int
    order_id: int
    price: int
    qty: int
    account: int
    symbol: int
    kind: int
    side: int
    order_type: int
    tif: int
    stp: int
    flags: int
    reason: int  # != R_OK: refused upstream (risk, ingest), only reported here


@njit(inline="always")
def read_command(cw, i):
    """Command ``i`` of a ``command_words`` view."""
    return Command(
        get(cw, i, C_SEQ),
        get(cw, i, C_TS_INGEST),
        get(cw, i, C_ORDER_ID),
        get(cw, i, C_PRICE),
        get(cw, i, C_QTY),
        get(cw, i, C_ACCOUNT),
        get(cw, i, C_SYMBOL),
        get(cw, i, C_KIND),
        get(cw, i, C_SIDE),
        get(cw, i, C_ORDER_TYPE),
        get(cw, i, C_TIF),
        get(cw, i, C_STP),
        get(cw, i, C_FLAGS),
        get(cw, i, C_REASON),
    )


@njit(inline="always")
def reject(command, ew, pos, stamp, reason):
    """REJECTED with ``reason``, echoing the command's own fields; nothing is touched."""
    return write_event(ew, pos, stamp, command.order_id, 0, command.price, command.qty,
                       command.account, command.symbol, EV_REJECTED, command.side, reason,
                       0)  # fmt: skip


@njit(inline="always")
def new_order(command, b, ew, pos, stamp, levels, pool, tops, emit_top):
    """NEW: ACCEPTED, then what it trades; the rest rests (GTC) or is cancelled."""
    order_id = command.order_id
    price = command.price
    qty = command.qty
    account = command.account
    symbol = command.symbol
    side = command.side
    order_type = command.order_type
    tif = command.tif
    stp = command.stp
    flags = command.flags
    post_only = flags & CF_POST_ONLY
    books = levels.books
    reason = R_OK
    if b < 0:
        reason = R_UNKNOWN_SYMBOL
    elif (
        side > MAX_SIDE
        or order_type > MAX_ORDER_TYPE
        or tif > MAX_TIF
        or stp > MAX_STP
        or (flags & ~KNOWN_COMMAND_FLAGS) != 0
    ):
        reason = R_INVALID_COMMAND
    elif post_only != 0 and (order_type != OT_LIMIT or tif != TIF_GTC):
        reason = R_INVALID_COMMAND
    elif order_id <= 0:
        reason = R_INVALID_COMMAND
    elif qty <= 0:
        reason = R_INVALID_QTY
    elif price < 0 or (order_type == OT_LIMIT and price == 0):
        reason = R_INVALID_PRICE
    elif books[b, B_HALTED] != 0:
        reason = R_SYMBOL_HALTED
    elif hashtable.find(pool.by_id, order_id) >= 0:
        reason = R_DUPLICATE_ORDER_ID
    else:
        reason = symbol_rules.check(books, b, price, qty, order_type == OT_LIMIT)
        if reason == R_OK and post_only != 0 and crosses(levels, b, side, price):
            reason = R_POST_ONLY_WOULD_TAKE
    if reason != R_OK:
        return pos, reason
    save_tops(levels, b, tops, 0)
    pos = write_event(ew, pos, stamp, order_id, 0, price, qty, account, symbol, EV_ACCEPTED,
                      side, R_OK, 0)  # fmt: skip
    if tif == TIF_FOK and not fok_fillable(levels, pool, b, side, price, qty, account, stp):
        pos = write_event(ew, pos, stamp, order_id, 0, price, qty, account, symbol,
                          EV_CANCELLED, side, R_FOK_NOT_FILLED, EF_DONE)  # fmt: skip
    else:
        remaining, pos = match(ew, pos, stamp, levels, pool, b, side, price, qty, order_id, account,
                         stp)  # fmt: skip
        if remaining > 0:
            if order_type == OT_MARKET:
                pos = write_event(ew, pos, stamp, order_id, 0, price, remaining, account, symbol,
                                  EV_CANCELLED, side, R_MARKET_NO_LIQUIDITY, EF_DONE)  # fmt: skip
            elif tif == TIF_IOC:
                pos = write_event(ew, pos, stamp, order_id, 0, price, remaining, account, symbol,
                                  EV_CANCELLED, side, R_IOC_REMAINDER, EF_DONE)  # fmt: skip
            else:
                o = allocate(pool, order_id, account, price, remaining, side, b, stp, flags)
                attach(levels, pool.rows, o)
    if emit_top:
        pos = write_top_changes(ew, pos, stamp, levels, b, tops)
    return pos, R_OK


@njit(inline="always")
def _own_order(command, pool):
    """(row, R_OK) of the open order the command names, if its account owns it; else
    (-1 or the row, the reason)."""
    o = hashtable.find(pool.by_id, command.order_id)
    if o < 0:
        return o, R_UNKNOWN_ORDER
    if pool.rows[o, O_ACCT] != command.account:
        return o, R_NOT_OWNER
    return o, R_OK


@njit(inline="always")
def cancel(command, ew, pos, stamp, levels, pool, tops, emit_top):
    """CANCEL: CANCELLED(USER_CANCEL) with the open qty; the order leaves the book."""
    o, reason = _own_order(command, pool)
    if reason != R_OK:
        return pos, reason
    orders = pool.rows
    b = orders[o, O_BOOK]
    save_tops(levels, b, tops, 0)
    pos = write_event(ew, pos, stamp, orders[o, O_ID], 0, orders[o, O_PRICE], orders[o, O_QTY],
                      orders[o, O_ACCT], levels.books[b, B_SYMBOL], EV_CANCELLED,
                      orders[o, O_SIDE], R_USER_CANCEL, EF_DONE)  # fmt: skip
    remove(levels, pool, o)
    if emit_top:
        pos = write_top_changes(ew, pos, stamp, levels, b, tops)
    return pos, R_OK


@njit(inline="always")
def reduce(command, ew, pos, stamp, levels, pool, tops, emit_top):
    """REDUCE by qty (0 < qty < open, whole lots): REPLACED with the new open qty; the order
    keeps its place."""
    o, reason = _own_order(command, pool)
    qty = command.qty
    orders = pool.rows
    if reason == R_OK:
        if qty <= 0:
            reason = R_INVALID_QTY
        elif qty >= orders[o, O_QTY]:
            reason = R_REDUCE_TOO_LARGE
        elif not symbol_rules.whole_lots(levels.books, orders[o, O_BOOK], qty):
            reason = R_LOT_SIZE
    if reason != R_OK:
        return pos, reason
    b = orders[o, O_BOOK]
    save_tops(levels, b, tops, 0)
    shrink(levels, orders, o, qty)
    pos = write_event(ew, pos, stamp, orders[o, O_ID], 0, orders[o, O_PRICE], orders[o, O_QTY],
                      orders[o, O_ACCT], levels.books[b, B_SYMBOL], EV_REPLACED,
                      orders[o, O_SIDE], R_OK, 0)  # fmt: skip
    if emit_top:
        pos = write_top_changes(ew, pos, stamp, levels, b, tops)
    return pos, R_OK


@njit(inline="always")
def replace(command, ew, pos, stamp, levels, pool, tops, emit_top):
    """REPLACE to (price, qty = new open qty), checked like a new order: REPLACED; same
    price and no more qty keeps the order's place, otherwise it trades what crosses (with
    its own STP mode) and rests at the back of its new level."""
    o, reason = _own_order(command, pool)
    price = command.price
    qty = command.qty
    orders = pool.rows
    books = levels.books
    if reason == R_OK:
        b = orders[o, O_BOOK]
        if books[b, B_HALTED] != 0:
            reason = R_SYMBOL_HALTED
        elif qty <= 0:
            reason = R_INVALID_QTY
        elif price <= 0:
            reason = R_INVALID_PRICE
        else:
            reason = symbol_rules.check(books, b, price, qty, True)
            if (
                reason == R_OK
                and (orders[o, O_FLAGS] & CF_POST_ONLY) != 0
                and crosses(levels, b, orders[o, O_SIDE], price)
            ):
                reason = R_POST_ONLY_WOULD_TAKE
    if reason != R_OK:
        return pos, reason
    b = orders[o, O_BOOK]
    order_id = orders[o, O_ID]
    account = orders[o, O_ACCT]
    side = orders[o, O_SIDE]
    save_tops(levels, b, tops, 0)
    old_price = orders[o, O_PRICE]
    old_qty = orders[o, O_QTY]
    pos = write_event(ew, pos, stamp, order_id, 0, price, qty, account, books[b, B_SYMBOL],
                      EV_REPLACED, side, R_OK, 0)  # fmt: skip
    if price == old_price and qty <= old_qty:
        shrink(levels, orders, o, old_qty - qty)
    else:
        detach(levels, orders, o)
        remaining, pos = match(ew, pos, stamp, levels, pool, b, side, price, qty, order_id, account,
                         orders[o, O_STP])  # fmt: skip
        if remaining > 0:
            orders[o, O_PRICE] = price
            orders[o, O_QTY] = remaining
            attach(levels, orders, o)
        else:
            release(pool, o)
    if emit_top:
        pos = write_top_changes(ew, pos, stamp, levels, b, tops)
    return pos, R_OK


@njit(inline="always")
def halt_or_resume(command, b, ew, pos, stamp, levels):
    """HALT / RESUME a known symbol: HALTED / RESUMED."""
    if b < 0:
        return pos, R_UNKNOWN_SYMBOL
    halt = command.kind == CMD_HALT
    levels.books[b, B_HALTED] = 1 if halt else 0
    pos = write_event(ew, pos, stamp, 0, 0, 0, 0, command.account, command.symbol,
                      EV_HALTED if halt else EV_RESUMED, 0, R_OK, 0)  # fmt: skip
    return pos, R_OK


@njit(inline="always")
def kill_switch(command, ew, pos, stamp, levels, pool, tops, emit_top):
    """KILL_SWITCH: cancel every resting order of the account (account 0: every order) in
    every book, best level first, oldest first; then KILL_SWITCH."""
    account = command.account
    nbooks = levels.books.shape[0]
    orders = pool.rows
    for b in range(nbooks):
        save_tops(levels, b, tops, TOPS_PER_BOOK * b)
    for b in range(nbooks):
        symbol = levels.books[b, B_SYMBOL]
        for side in range(2):
            row = side_row(b, side)
            # walk levels best first; dropping level j only shifts levels above j
            for j in range(levels.books[b, B_NLEVELS + side] - 1, -1, -1):
                o = levels.rows[levels.side_levels[row, j], L_HEAD]
                while o != -1:
                    next_ = orders[o, O_NEXT]
                    if account == 0 or orders[o, O_ACCT] == account:
                        pos = write_event(ew, pos, stamp, orders[o, O_ID], 0, orders[o, O_PRICE],
                                          orders[o, O_QTY], orders[o, O_ACCT], symbol,
                                          EV_CANCELLED, side, R_KILL_SWITCH_CANCEL,
                                          EF_DONE)  # fmt: skip
                        remove(levels, pool, o)
                    o = next_
    pos = write_event(ew, pos, stamp, 0, 0, 0, 0, account, command.symbol, EV_KILL_SWITCH,
                      0, R_OK, 0)  # fmt: skip
    if emit_top:
        for b in range(nbooks):
            pos = write_top_changes(
                ew, pos, stamp, levels, b, tops[TOPS_PER_BOOK * b : TOPS_PER_BOOK * (b + 1)]
            )
    return pos, R_OK


@njit(inline="always")
def kill_switch_release(command, ew, pos, stamp):
    """KILL_SWITCH_RELEASE: KILL_SWITCH_RELEASED (risk, not matching, blocks orders)."""
    pos = write_event(ew, pos, stamp, 0, 0, 0, 0, command.account, command.symbol,
                      EV_KILL_SWITCH_RELEASED, 0, R_OK, 0)  # fmt: skip
    return pos, R_OK


@njit(inline="always")
def deposit_or_withdraw(command, ew, pos, stamp):
    """DEPOSIT / WITHDRAW qty > 0 of asset ``symbol``: one BALANCE event, qty signed."""
    qty = command.qty
    if qty <= 0:
        return pos, R_INVALID_QTY
    signed = qty if command.kind == CMD_DEPOSIT else -qty
    pos = write_event(ew, pos, stamp, 0, 0, 0, signed, command.account, command.symbol,
                      EV_BALANCE, 0, R_OK, 0)  # fmt: skip
    return pos, R_OK
