"""Balances, holds and settlement: how risk moves money, exactly, from matching's events.

Every account holds, per asset, a ``free`` and a ``held`` integer balance. Pre-trade moves an
order's worst-case cost from free to held; this module's post-trade pass settles each event
of matching against the order table (``orders.py``) so that, whenever no replace is waiting
for matching's answer, an order's hold is exactly ``hold_amount`` of its open quantity at its
price: trades pay from the hold (price improvement and unused fee go back to free), cancels
and rejections release, replaces re-size. Fees go to the fee account (account 0), in the
quote asset: floored when charged, ceiled when held, so a hold always covers a fill.

Money is conserved per asset: settlement only moves amounts between accounts and between
free and held; only DEPOSIT / WITHDRAW (applied pre-trade, in sequence) change the total.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stages.risk import orders
from stages.risk.layout import (
    ACC_OPEN_ORDERS,
    BPS,
    BUY,
    EV_BOOK_TOP,
    EV_CANCELLED,
    EV_REJECTED,
    EV_REPLACED,
    EV_TRADE,
    F_DONE,
    F_MAKER,
    FEE_ACCOUNT,
    FREE,
    G_LAST_PRETRADE_SEQ,
    G_OPEN_ORDERS,
    G_ROUND_FIRST_SEQ,
    G_SETTLED_SEQ,
    HELD,
    NO_SELL,
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
    SYM_BASE,
    SYM_BASE_PER_LOT,
    SYM_BEST_ASK,
    SYM_BEST_BID,
    SYM_LAST_PRICE,
    SYM_MAKER_BPS,
    SYM_QUOTE,
    SYM_QUOTE_SCALE,
    SYM_TAKER_BPS,
    W_PRICE,
    W_QTY,
    W_SEQ,
    WE_ORDER_ID,
)


@njit(cache=True, inline="always", _nrt=False)
def fee_floor(amount: int, bps: int) -> int:
    """floor(amount × bps / 10000) without overflowing int64 (bps <= 10000)."""
    return (amount // BPS) * bps + ((amount % BPS) * bps) // BPS


@njit(cache=True, inline="always", _nrt=False)
def fee_ceil(amount: int, bps: int) -> int:
    """ceil(amount × bps / 10000) without overflowing int64 (bps <= 10000)."""
    part = (amount % BPS) * bps
    return (amount // BPS) * bps + part // BPS + (1 if part % BPS else 0)


@njit(cache=True, inline="always", _nrt=False)
def hold_amount(symbols: np.ndarray, s: int, side: int, price: int, qty: int) -> int:
    """What an order of ``qty`` lots at ``price`` holds: quote (+ fee) for a buy, base for a sell.

    The fee part uses the larger of the maker and taker rates: the order may end up either.
    """
    if qty <= 0:
        return 0
    if side == BUY:
        notional = price * qty * symbols[s, SYM_QUOTE_SCALE]
        bps = max(symbols[s, SYM_MAKER_BPS], symbols[s, SYM_TAKER_BPS])
        return notional + fee_ceil(notional, bps)
    return qty * symbols[s, SYM_BASE_PER_LOT]


@njit(cache=True, inline="always", _nrt=False)
def hold_asset(symbols: np.ndarray, s: int, side: int) -> int:
    """Asset index an order of ``side`` on symbol index ``s`` holds."""
    return symbols[s, SYM_QUOTE] if side == BUY else symbols[s, SYM_BASE]


@njit(cache=True, inline="always", _nrt=False)
def _reconcile(balances, symbols, rows, slot) -> None:
    """Bring the order's hold to exactly ``hold_amount`` of its open qty (unless a replace is
    pending: then its extra stays held until matching answers)."""
    if rows[slot, O_REP_SEQ] != 0:
        return
    a = rows[slot, O_ACCOUNT]
    s = rows[slot, O_SYMBOL]
    side = rows[slot, O_SIDE]
    asset = hold_asset(symbols, s, side)
    target = hold_amount(symbols, s, side, rows[slot, O_PRICE], rows[slot, O_OPEN])
    diff = rows[slot, O_HELD] - target
    if diff < 0:
        # the order grew past its hold (a replace answered after fills risk had not seen);
        # cover it from free as far as free goes
        diff = -min(-diff, balances[a, asset, FREE])
    balances[a, asset, FREE] += diff
    balances[a, asset, HELD] -= diff
    rows[slot, O_HELD] -= diff


@njit(cache=True, inline="always", _nrt=False)
def drop_order(balances, positions, accounts, symbols, glob, keys, rows, slot, order_id) -> None:
    """Forget a finished order: release whatever it still holds and its open quantity."""
    a = rows[slot, O_ACCOUNT]
    s = rows[slot, O_SYMBOL]
    side = rows[slot, O_SIDE]
    asset = hold_asset(symbols, s, side)
    held = rows[slot, O_HELD]
    balances[a, asset, FREE] += held
    balances[a, asset, HELD] -= held
    positions[a, s, POS_OPEN_BUY if side == BUY else POS_OPEN_SELL] -= rows[slot, O_OPEN]
    accounts[a, ACC_OPEN_ORDERS] -= 1
    glob[G_OPEN_ORDERS] -= 1
    orders.remove(keys, rows, glob, order_id)


@njit(cache=True, inline="always", _nrt=False)
def _settle_trade(balances, positions, symbols, rows, slot, price, qty, maker) -> None:
    a = rows[slot, O_ACCOUNT]
    s = rows[slot, O_SYMBOL]
    side = rows[slot, O_SIDE]
    base = symbols[s, SYM_BASE]
    quote = symbols[s, SYM_QUOTE]
    base_amount = qty * symbols[s, SYM_BASE_PER_LOT]
    notional = price * qty * symbols[s, SYM_QUOTE_SCALE]
    fee = fee_floor(notional, symbols[s, SYM_MAKER_BPS] if maker else symbols[s, SYM_TAKER_BPS])
    if side == BUY:
        cost = notional + fee
        from_held = min(cost, rows[slot, O_HELD])
        rows[slot, O_HELD] -= from_held
        balances[a, quote, HELD] -= from_held
        balances[a, quote, FREE] -= cost - from_held  # 0 unless a hold fell short
        balances[a, base, FREE] += base_amount
        positions[a, s, POS_NET] += qty
        positions[a, s, POS_OPEN_BUY] -= qty
    else:
        from_held = min(base_amount, rows[slot, O_HELD])
        rows[slot, O_HELD] -= from_held
        balances[a, base, HELD] -= from_held
        balances[a, base, FREE] -= base_amount - from_held
        balances[a, quote, FREE] += notional - fee
        positions[a, s, POS_NET] -= qty
        positions[a, s, POS_OPEN_SELL] -= qty
    balances[FEE_ACCOUNT, quote, FREE] += fee
    rows[slot, O_OPEN] -= qty


@njit(cache=True, _nrt=False)
def post_trade(
    words, balances, positions, accounts, sym_index, symbols, glob, keys, rows,
    round_buy_max, round_sell_min,
) -> int:  # fmt: skip
    """Settle a batch of events; returns how many touched an order risk tracks.

    ``words`` is an EVENT_DTYPE batch viewed as int64 rows of 8 words (see ``layout``).
    Once every command pre-traded is settled, the "may have unsettled fills" tracking of
    ``limits.pre_trade`` starts afresh. Hot: one pass, no allocation, no Python calls per
    record. Events of orders risk does not
    know (never passed through its pre-trade) are ignored, except market data (BOOK_TOP,
    TRADE prices) which every event of a configured symbol updates.
    """
    touched = 0
    settled = glob[G_SETTLED_SEQ]
    for i in range(words.shape[0]):
        settled = max(settled, words[i, W_SEQ])
        w7 = words[i, 7]
        k = (w7 >> 16) & 0xFF
        side = (w7 >> 24) & 0xFF
        flags = (w7 >> 40) & 0xFF
        s = sym_index[w7 & 0xFFFF]
        price = words[i, W_PRICE]
        qty = words[i, W_QTY]
        seq = words[i, W_SEQ]
        if k == EV_BOOK_TOP:
            if s >= 0:
                symbols[s, SYM_BEST_BID if side == BUY else SYM_BEST_ASK] = price
            continue
        if k == EV_TRADE and s >= 0:
            symbols[s, SYM_LAST_PRICE] = price
        if k != EV_TRADE and k != EV_CANCELLED and k != EV_REPLACED and k != EV_REJECTED:
            continue
        oid = words[i, WE_ORDER_ID]
        slot = orders.find(keys, oid)
        if slot < 0:
            continue
        if k == EV_REJECTED:
            if seq == rows[slot, O_NEW_SEQ]:
                drop_order(balances, positions, accounts, symbols, glob, keys, rows, slot, oid)
                touched += 1
            elif seq == rows[slot, O_REP_SEQ]:
                rows[slot, O_REP_SEQ] = 0
                _reconcile(balances, symbols, rows, slot)
                touched += 1
            continue
        touched += 1
        if k == EV_TRADE:
            maker = (flags & F_MAKER) != 0
            _settle_trade(balances, positions, symbols, rows, slot, price, qty, maker)
        elif k == EV_CANCELLED:
            q = min(qty, rows[slot, O_OPEN])
            rows[slot, O_OPEN] -= q
            r = rows[slot, O_SIDE]
            positions[rows[slot, O_ACCOUNT], rows[slot, O_SYMBOL],
                      POS_OPEN_BUY if r == BUY else POS_OPEN_SELL] -= q  # fmt: skip
        else:  # REPLACED: matching says where the order now is
            a = rows[slot, O_ACCOUNT]
            col = POS_OPEN_BUY if rows[slot, O_SIDE] == BUY else POS_OPEN_SELL
            positions[a, rows[slot, O_SYMBOL], col] += qty - rows[slot, O_OPEN]
            rows[slot, O_OPEN] = qty
            rows[slot, O_PRICE] = price
            if seq == rows[slot, O_REP_SEQ]:
                rows[slot, O_REP_SEQ] = 0
        if (flags & F_DONE) != 0 or rows[slot, O_OPEN] <= 0:
            drop_order(balances, positions, accounts, symbols, glob, keys, rows, slot, oid)
        else:
            _reconcile(balances, symbols, rows, slot)
    glob[G_SETTLED_SEQ] = settled
    if settled >= glob[G_LAST_PRETRADE_SEQ]:  # everything pre-traded is settled
        glob[G_ROUND_FIRST_SEQ] = 0
        round_buy_max[:] = 0
        round_sell_min[:] = NO_SELL
    return touched
