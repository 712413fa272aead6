"""Pre-trade checks: every order either passes with its funds held or gets a reject reason.

One order's check reads top-down in this file: ``pre_trade`` walks a command batch in
sequence order and hands each command nobody rejected yet to ``_new_order``,
``_replace_order`` or the admin steps; both order paths run ``_check_limits``, then hold.
In order: unknown account, kill switch (account or global), unknown or halted symbol,
duplicate order id; then max order quantity, price collar around the reference price (last
trade, else the configured one), max order notional, max open orders, max net position
(position plus open orders on the side that would grow it); finally funds. A passing order's
hold moves from free to held and the order enters the order table (``orders.py``); a market
buy is given its protection price (best ask + band, on the tick) and held at it. Admin
commands are applied here, in sequence: deposit / withdraw, halt / resume, kill switch. A
rejected command keeps flowing with ``reason`` set; matching answers it with one REJECTED
event and changes nothing. Every amount (holds, fees, notionals, collars, the protection
price) comes from ``money.py``; settlement of matching's answers is ``settlement.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stages.kernel_codes import (
    CMD_CANCEL,
    CMD_DEPOSIT,
    CMD_HALT,
    CMD_KILL_SWITCH,
    CMD_KILL_SWITCH_RELEASE,
    CMD_NEW,
    CMD_REDUCE,
    CMD_REPLACE,
    CMD_RESUME,
    CMD_WITHDRAW,
    OT_MARKET,
    R_DUPLICATE_ORDER_ID,
    R_INSUFFICIENT_BALANCE,
    R_INSUFFICIENT_FUNDS,
    R_INVALID_COMMAND,
    R_INVALID_QTY,
    R_KILL_SWITCH,
    R_LIMIT_MAX_NOTIONAL,
    R_LIMIT_MAX_QTY,
    R_LIMIT_OPEN_ORDERS,
    R_LIMIT_POSITION,
    R_NOT_OWNER,
    R_NOTIONAL_NO_PRICE,
    R_PRICE_COLLAR,
    R_SYMBOL_HALTED,
    R_UNKNOWN_ACCOUNT,
    R_UNKNOWN_ORDER,
    R_UNKNOWN_SYMBOL,
    SIDE_BUY,
)
from stages.record_words import (
    C_ACCOUNT,
    C_KIND,
    C_ORDER_ID,
    C_ORDER_TYPE,
    C_PRICE,
    C_QTY,
    C_REASON,
    C_SEQ,
    C_SIDE,
    C_SYMBOL,
    get,
    put,
)
from stages.risk import orders
from stages.risk.layout import (
    ACC_KILLED,
    ACC_MAX_NOTIONAL,
    ACC_MAX_OPEN,
    ACC_MAX_POSITION,
    ACC_MAX_QTY,
    ACC_OPEN_ORDERS,
    AMOUNT_LIMIT,
    FREE,
    G_KILL_ALL,
    G_LAST_PRETRADE_SEQ,
    G_MAX_ORDERS,
    G_OPEN_ORDERS,
    G_ROUND_FIRST_SEQ,
    O_ACCOUNT,
    O_HELD,
    O_NEW_SEQ,
    O_OPEN,
    O_PRICE,
    O_REP_SEQ,
    O_SIDE,
    O_SYMBOL,
    POS_NET,
    POS_OPEN_BUY,
    POS_OPEN_SELL,
    SYM_BASE_PER_LOT,
    SYM_BEST_BID,
    SYM_HALTED,
    SYM_QUOTE_SCALE,
    UNBOUNDED_PRICE,
)
from stages.risk.money import (
    base_fits,
    hold,
    hold_amount,
    hold_asset,
    notional,
    notional_fits,
    outside_collar,
    protection_price,
)


@njit(cache=True, _nrt=False)
def pre_trade(
    words, balances, positions, accounts, sym_index, asset_index, symbols, glob, keys, rows,
    round_buy_max, round_sell_min, supply,
):  # fmt: skip
    """Check and hold a batch of commands in place; returns how many it rejected.

    ``words`` is a COMMAND_DTYPE batch as ``record_words.command_words`` views it (one
    argument instead of ten field views: numba's dispatch cost grows with the arguments).
    ``supply[asset]`` is the asset's total over every account (free + held): deposits keep
    it at most AMOUNT_LIMIT, and settlement only moves money, so every balance, hold and
    fee, and any sum of them, stays within it.

    Hot: one pass in sequence order, no allocation, no Python calls per record. Sets
    ``reason`` of refused commands and ``price`` of market buys; skips commands whose
    ``reason`` is already set (ingest refused them).

    A REPLACE sets its order's open quantity outright, so while that order may have fills
    risk has not settled — it was created or replaced since everything was last settled, or
    an order passed since then could reach its price (``round_buy_max`` / ``round_sell_min``
    per symbol; ``settlement.post_trade`` resets them once it has settled every command
    pre-traded) — the replace must be covered in full by the free balance: the old hold may
    be spent by those fills. Settlement of REPLACED then returns the excess. Otherwise only
    the difference to the current hold is needed. This holds however far pre-trade runs
    ahead of settlement (a pipelined stage), and in the ``Engine`` (settled per window).
    """
    n_accounts = accounts.shape[0]
    n = words.shape[0]
    rejected = 0
    if n == 0:
        return 0
    if glob[G_ROUND_FIRST_SEQ] == 0:
        glob[G_ROUND_FIRST_SEQ] = get(words, 0, C_SEQ)
    first_seq = glob[G_ROUND_FIRST_SEQ]
    for i in range(n):
        if get(words, i, C_REASON) != 0:
            continue  # refused upstream
        k = get(words, i, C_KIND)
        a = get(words, i, C_ACCOUNT)
        sym = get(words, i, C_SYMBOL)
        r = 0
        if k == CMD_NEW:
            side = get(words, i, C_SIDE)
            s = sym_index[sym]
            high_bid = highest_bid(symbols, round_buy_max, s) if side != SIDE_BUY and s >= 0 else 0
            r, p = _new_order(
                get(words, i, C_SEQ), get(words, i, C_ORDER_ID), get(words, i, C_PRICE),
                get(words, i, C_QTY), a, sym, side, get(words, i, C_ORDER_TYPE),
                balances, positions, accounts, sym_index, symbols, glob, keys, rows, high_bid,
            )  # fmt: skip
            if r == 0:
                put(words, i, C_PRICE, p)
                _note_reach(round_buy_max, round_sell_min, sym_index[sym], side, p)
        elif k == CMD_REPLACE:
            oid = get(words, i, C_ORDER_ID)
            r = _replace_order(
                get(words, i, C_SEQ), oid, get(words, i, C_PRICE), get(words, i, C_QTY), a,
                balances, positions, accounts, symbols, glob, keys, rows,
                first_seq, round_buy_max, round_sell_min,
            )  # fmt: skip
            if r == 0:
                slot = orders.find(keys, oid)
                _note_reach(
                    round_buy_max, round_sell_min, rows[slot, O_SYMBOL], rows[slot, O_SIDE],
                    get(words, i, C_PRICE),
                )  # fmt: skip
        elif k in (CMD_CANCEL, CMD_REDUCE):
            if a == 0 or a >= n_accounts:
                r = R_UNKNOWN_ACCOUNT
        elif k in (CMD_DEPOSIT, CMD_WITHDRAW):
            r = _move_funds(
                k, a, asset_index[sym], get(words, i, C_QTY), n_accounts, balances, supply
            )
        elif k in (CMD_HALT, CMD_RESUME):
            s = sym_index[sym]
            if s >= 0:
                symbols[s, SYM_HALTED] = 1 if k == CMD_HALT else 0
        elif k in (CMD_KILL_SWITCH, CMD_KILL_SWITCH_RELEASE):
            flag = 1 if k == CMD_KILL_SWITCH else 0
            if a == 0:
                glob[G_KILL_ALL] = flag
            elif a < n_accounts:
                accounts[a, ACC_KILLED] = flag
            else:
                r = R_UNKNOWN_ACCOUNT
        if r != 0:
            put(words, i, C_REASON, r)
            rejected += 1
    glob[G_LAST_PRETRADE_SEQ] = get(words, n - 1, C_SEQ)
    return rejected


# --- orders ---------------------------------------------------------------------------------


@njit(cache=True, _nrt=False)
def _new_order(
    seq, oid, price, qty, a, sym, side, order_type,
    balances, positions, accounts, sym_index, symbols, glob, keys, rows, high_bid,
):  # fmt: skip
    """Check and hold one NEW; returns (reason, the price it is held at). ``high_bid``:
    ``highest_bid`` of its symbol, for a sell."""
    if a == 0 or a >= accounts.shape[0]:
        return R_UNKNOWN_ACCOUNT, price
    if glob[G_KILL_ALL] != 0 or accounts[a, ACC_KILLED] != 0:
        return R_KILL_SWITCH, price
    s = sym_index[sym]
    if s < 0:
        return R_UNKNOWN_SYMBOL, price
    if symbols[s, SYM_HALTED] != 0:
        return R_SYMBOL_HALTED, price
    if oid <= 0:
        return R_INVALID_COMMAND, price
    if orders.find(keys, oid) >= 0:
        return R_DUPLICATE_ORDER_ID, price
    p = price
    market = order_type == OT_MARKET
    if market and side == SIDE_BUY and p <= 0:
        p = protection_price(symbols, s)
        if p <= 0:
            return R_PRICE_COLLAR, price  # no best ask nor reference bounds the order
    elif market and side != SIDE_BUY:
        p = 0
    # a market order is not collared (a buy's protection price already bounds it)
    r = _check_limits(
        accounts, positions, symbols, a, s, side, p, qty, 0, True, not market, high_bid
    )  # fmt: skip
    if r != 0:
        return r, price
    if glob[G_OPEN_ORDERS] >= glob[G_MAX_ORDERS]:
        return R_LIMIT_OPEN_ORDERS, price  # the order pool is full
    x = hold_asset(symbols, s, side)
    need = hold_amount(symbols, s, side, p, qty)
    if balances[a, x, FREE] < need:
        return R_INSUFFICIENT_FUNDS, price
    hold(balances, a, x, need)
    slot = orders.insert(keys, rows, glob, oid)
    rows[slot, O_ACCOUNT] = a
    rows[slot, O_SYMBOL] = s
    rows[slot, O_SIDE] = side
    rows[slot, O_PRICE] = p
    rows[slot, O_OPEN] = qty
    rows[slot, O_HELD] = need
    rows[slot, O_NEW_SEQ] = seq
    rows[slot, O_REP_SEQ] = 0
    positions[a, s, POS_OPEN_BUY if side == SIDE_BUY else POS_OPEN_SELL] += qty
    accounts[a, ACC_OPEN_ORDERS] += 1
    glob[G_OPEN_ORDERS] += 1
    return 0, (p if market and side == SIDE_BUY else price)


@njit(cache=True, _nrt=False)
def _replace_order(
    seq, oid, price, qty, a, balances, positions, accounts, symbols, glob, keys, rows,
    first_seq, round_buy_max, round_sell_min,
) -> int:  # fmt: skip
    """A replace is checked like a new order of its new price and quantity; the extra hold it
    needs (if any; all of it while the order may have unsettled fills) moves to held now,
    and settles when matching answers (REPLACED / REJECTED)."""
    if a == 0 or a >= accounts.shape[0]:
        return R_UNKNOWN_ACCOUNT
    if glob[G_KILL_ALL] != 0 or accounts[a, ACC_KILLED] != 0:
        return R_KILL_SWITCH
    slot = orders.find(keys, oid)
    if slot < 0:
        return R_UNKNOWN_ORDER
    if rows[slot, O_ACCOUNT] != a:
        return R_NOT_OWNER
    s = rows[slot, O_SYMBOL]
    side = rows[slot, O_SIDE]
    p = price
    if side == SIDE_BUY and p <= 0:
        return R_PRICE_COLLAR  # a buy must keep a price that bounds its hold
    if side != SIDE_BUY and p <= 0:
        p = rows[slot, O_PRICE]
    high_bid = highest_bid(symbols, round_buy_max, s) if side != SIDE_BUY else 0
    r = _check_limits(
        accounts, positions, symbols, a, s, side, p, qty, rows[slot, O_OPEN], False, True, high_bid
    )  # fmt: skip
    if r != 0:
        return r
    x = hold_asset(symbols, s, side)
    extra = hold_amount(symbols, s, side, p, qty)
    if not _may_have_unsettled_fills(rows, slot, first_seq, round_buy_max, round_sell_min):
        extra -= rows[slot, O_HELD]
    if extra > 0:
        if balances[a, x, FREE] < extra:
            return R_INSUFFICIENT_FUNDS
        hold(balances, a, x, extra)
        rows[slot, O_HELD] += extra
    rows[slot, O_REP_SEQ] = seq
    return 0


# --- limits ---------------------------------------------------------------------------------


@njit(cache=True, _nrt=False)
def _check_limits(
    accounts, positions, symbols, a, s, side, price, qty, open_now, is_new, collared, high_bid
) -> int:  # fmt: skip
    """The limits shared by NEW and REPLACE; ``open_now`` is the order's current open qty.

    The notional is valued at the highest price the order can trade at: a buy's limit (a
    market buy's protection price), a sell's limit or the highest bid it could meet
    (``high_bid``, see ``highest_bid``), if higher; a market sell (``price`` 0) with no bid
    to meet has no price, and is refused if a notional limit is set. (Scalars, not the
    arrays they come from: each array argument of a compiled call costs seven words.)"""
    lim = accounts[a, ACC_MAX_QTY]
    if lim > 0 and qty > lim:
        return R_LIMIT_MAX_QTY
    if collared and outside_collar(symbols, s, price):
        return R_PRICE_COLLAR
    notional_price = price
    if side != SIDE_BUY:  # a sell trades at the bids it meets, at its limit or higher
        notional_price = max(price, high_bid)
    lim = accounts[a, ACC_MAX_NOTIONAL]
    if notional_price > 0:
        if not notional_fits(notional_price, qty, symbols[s, SYM_QUOTE_SCALE]):
            return R_LIMIT_MAX_NOTIONAL
        if lim > 0 and notional(symbols, s, notional_price, qty) > lim:
            return R_LIMIT_MAX_NOTIONAL
    elif lim > 0:  # fail closed: a limit no price can check is not skipped
        return R_NOTIONAL_NO_PRICE
    if not base_fits(qty, symbols[s, SYM_BASE_PER_LOT]):
        return R_LIMIT_MAX_QTY
    lim = accounts[a, ACC_MAX_OPEN]
    if is_new and lim > 0 and accounts[a, ACC_OPEN_ORDERS] >= lim:
        return R_LIMIT_OPEN_ORDERS
    lim = accounts[a, ACC_MAX_POSITION]
    if lim <= 0:  # no limit: still bounded, so net + open never nears the int64 range
        lim = AMOUNT_LIMIT
    grow = qty - open_now
    if grow > 0:
        if side == SIDE_BUY:
            worst = positions[a, s, POS_NET] + positions[a, s, POS_OPEN_BUY] + grow
        else:
            worst = positions[a, s, POS_OPEN_SELL] + grow - positions[a, s, POS_NET]
        if worst > lim:
            return R_LIMIT_POSITION
    return 0


# --- admin ----------------------------------------------------------------------------------


@njit(cache=True, inline="always", _nrt=False)
def _move_funds(kind, a, x, q, n_accounts, balances, supply) -> int:
    """Apply a DEPOSIT or WITHDRAW of ``q`` units of asset index ``x``; returns its reason."""
    if a == 0 or a >= n_accounts:
        return R_UNKNOWN_ACCOUNT
    if x < 0:
        return R_INVALID_COMMAND
    if q <= 0:
        return R_INVALID_QTY
    if kind == CMD_DEPOSIT:
        if supply[x] > AMOUNT_LIMIT - q:
            return R_INVALID_QTY  # the asset's total would pass AMOUNT_LIMIT
        balances[a, x, FREE] += q
        supply[x] += q
        return 0
    if balances[a, x, FREE] < q:
        return R_INSUFFICIENT_BALANCE
    balances[a, x, FREE] -= q
    supply[x] -= q
    return 0


# --- how far the orders passed since the last full settlement may reach --------------------


@njit(cache=True, inline="always", _nrt=False)
def highest_bid(symbols: np.ndarray, round_buy_max: np.ndarray, s: int) -> int:
    """The highest price a bid can rest at in symbol ``s`` now (0 = no bid can rest).

    The best bid matching reported is exact once everything pre-traded is settled (when
    the round starts afresh); every bid added since is a buy this pass let through, whose
    price ``round_buy_max`` remembers. So the larger of the two bounds every bid, however
    far settlement lags behind (the best bid alone is as old as the last settlement).
    """
    return max(symbols[s, SYM_BEST_BID], round_buy_max[s])


@njit(cache=True, inline="always", _nrt=False)
def _note_reach(round_buy_max, round_sell_min, s, side, price) -> None:
    """Remember how far an order passed in this round may reach into the book (a market
    buy, price 0, reaches every ask)."""
    if s < 0:
        return
    if side == SIDE_BUY:
        round_buy_max[s] = max(round_buy_max[s], price if price > 0 else UNBOUNDED_PRICE)
    else:
        round_sell_min[s] = min(round_sell_min[s], price)


@njit(cache=True, inline="always", _nrt=False)
def _may_have_unsettled_fills(rows, slot, first_seq, round_buy_max, round_sell_min) -> bool:
    """May this order have fills or changes risk has not settled yet, in this round?"""
    if rows[slot, O_NEW_SEQ] >= first_seq or rows[slot, O_REP_SEQ] != 0:
        return True
    s = rows[slot, O_SYMBOL]
    if rows[slot, O_SIDE] == SIDE_BUY:
        return round_sell_min[s] <= rows[slot, O_PRICE]
    return round_buy_max[s] >= rows[slot, O_PRICE]
