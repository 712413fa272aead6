"""Post-trade settlement: how risk moves money, exactly, from matching's events.

Every account holds, per asset, a ``free`` and a ``held`` integer balance. Pre-trade
(``pretrade.py``) moves an order's worst-case cost from free to held; ``post_trade`` here
settles each event of matching against the order table (``orders.py``) so that, whenever no
replace is waiting for matching's answer, an order's hold is exactly ``money.hold_amount``
of its open quantity at its price: trades pay from the hold (price improvement and unused
fee go back to free), cancels and rejections release, replaces re-size. Fees go to the fee
account (account 0), in the quote asset: floored when charged, ceiled when held, so a hold
always covers a fill. Market data (BOOK_TOP, trade prices) updates the symbol's state the
pre-trade checks read.

Money is conserved per asset: settlement only moves amounts between accounts and between
free and held; only DEPOSIT / WITHDRAW (applied pre-trade, in sequence) change the total.
"""

from __future__ import annotations

from numba import njit

from stages.kernel_codes import (
    EF_DONE,
    EF_MAKER,
    EV_BOOK_TOP,
    EV_CANCELLED,
    EV_REJECTED,
    EV_REPLACED,
    EV_TRADE,
    SIDE_BUY,
)
from stages.record_words import (
    E_FLAGS,
    E_KIND,
    E_ORDER_ID,
    E_PRICE,
    E_QTY,
    E_SEQ,
    E_SIDE,
    E_SYMBOL,
    get,
)
from stages.risk import orders
from stages.risk.layout import (
    ACC_OPEN_ORDERS,
    FEE_ACCOUNT,
    FREE,
    G_LAST_PRETRADE_SEQ,
    G_OPEN_ORDERS,
    G_ROUND_FIRST_SEQ,
    G_SETTLED_SEQ,
    HELD,
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
    SYM_QUOTE,
    UNBOUNDED_PRICE,
)
from stages.risk.money import hold_amount, hold_asset, notional, release, trade_fee


@njit(cache=True, _nrt=False)
def post_trade(
    words, balances, positions, accounts, sym_index, symbols, glob, keys, rows,
    round_buy_max, round_sell_min,
) -> int:  # fmt: skip
    """Settle a batch of events; returns how many touched an order risk tracks.

    ``words`` is an EVENT_DTYPE batch as ``record_words.event_words`` views it. Once every
    command pre-traded is settled, the "may have unsettled fills" tracking of
    ``pretrade.pre_trade`` starts afresh. Hot: one pass, no allocation, no Python calls per
    record. Events of orders risk does not know (never passed through its pre-trade) are
    ignored, except market data (BOOK_TOP, TRADE prices) which every event of a configured
    symbol updates.
    """
    touched = 0
    settled = glob[G_SETTLED_SEQ]
    for i in range(words.shape[0]):
        seq = get(words, i, E_SEQ)
        settled = max(settled, seq)
        k = get(words, i, E_KIND)
        side = get(words, i, E_SIDE)
        flags = get(words, i, E_FLAGS)
        s = sym_index[get(words, i, E_SYMBOL)]
        price = get(words, i, E_PRICE)
        qty = get(words, i, E_QTY)
        if k == EV_BOOK_TOP:
            if s >= 0:
                symbols[s, SYM_BEST_BID if side == SIDE_BUY else SYM_BEST_ASK] = price
            continue
        if k == EV_TRADE and s >= 0:
            symbols[s, SYM_LAST_PRICE] = price
        if k != EV_TRADE and k != EV_CANCELLED and k != EV_REPLACED and k != EV_REJECTED:
            continue
        oid = get(words, i, E_ORDER_ID)
        slot = orders.find(keys, oid)
        if slot < 0:
            continue
        if k == EV_REJECTED:
            if seq == rows[slot, O_NEW_SEQ]:
                _drop_order(balances, positions, accounts, symbols, glob, keys, rows, slot, oid)
                touched += 1
            elif seq == rows[slot, O_REP_SEQ]:
                rows[slot, O_REP_SEQ] = 0
                _reconcile(balances, symbols, rows, slot)
                touched += 1
            continue
        touched += 1
        if k == EV_TRADE:
            maker = (flags & EF_MAKER) != 0
            _settle_trade(balances, positions, symbols, rows, slot, price, qty, maker)
        elif k == EV_CANCELLED:
            q = min(qty, rows[slot, O_OPEN])
            rows[slot, O_OPEN] -= q
            r = rows[slot, O_SIDE]
            positions[rows[slot, O_ACCOUNT], rows[slot, O_SYMBOL],
                      POS_OPEN_BUY if r == SIDE_BUY else POS_OPEN_SELL] -= q  # fmt: skip
        else:  # REPLACED: matching says where the order now is
            a = rows[slot, O_ACCOUNT]
            col = POS_OPEN_BUY if rows[slot, O_SIDE] == SIDE_BUY else POS_OPEN_SELL
            positions[a, rows[slot, O_SYMBOL], col] += qty - rows[slot, O_OPEN]
            rows[slot, O_OPEN] = qty
            rows[slot, O_PRICE] = price
            if seq == rows[slot, O_REP_SEQ]:
                rows[slot, O_REP_SEQ] = 0
        if (flags & EF_DONE) != 0 or rows[slot, O_OPEN] <= 0:
            _drop_order(balances, positions, accounts, symbols, glob, keys, rows, slot, oid)
        else:
            _reconcile(balances, symbols, rows, slot)
    glob[G_SETTLED_SEQ] = settled
    if settled >= glob[G_LAST_PRETRADE_SEQ]:  # everything pre-traded is settled
        glob[G_ROUND_FIRST_SEQ] = 0
        round_buy_max[:] = 0
        round_sell_min[:] = UNBOUNDED_PRICE
    return touched


@njit(cache=True, inline="always", _nrt=False)
def _settle_trade(balances, positions, symbols, rows, slot, price, qty, maker) -> None:
    """One side of a fill at ``price``: the buyer pays notional + fee from its hold and gets
    base; the seller gives base from its hold and gets notional - fee; the fee account
    gets the fee."""
    a = rows[slot, O_ACCOUNT]
    s = rows[slot, O_SYMBOL]
    side = rows[slot, O_SIDE]
    base = symbols[s, SYM_BASE]
    quote = symbols[s, SYM_QUOTE]
    base_amount = qty * symbols[s, SYM_BASE_PER_LOT]
    cost = notional(symbols, s, price, qty)
    fee = trade_fee(symbols, s, cost, maker)
    if side == SIDE_BUY:
        pay = cost + fee
        from_held = min(pay, rows[slot, O_HELD])
        rows[slot, O_HELD] -= from_held
        balances[a, quote, HELD] -= from_held
        balances[a, quote, FREE] -= pay - from_held  # 0 unless a hold fell short
        balances[a, base, FREE] += base_amount
        positions[a, s, POS_NET] += qty
        positions[a, s, POS_OPEN_BUY] -= qty
    else:
        from_held = min(base_amount, rows[slot, O_HELD])
        rows[slot, O_HELD] -= from_held
        balances[a, base, HELD] -= from_held
        balances[a, base, FREE] -= base_amount - from_held
        balances[a, quote, FREE] += cost - fee
        positions[a, s, POS_NET] -= qty
        positions[a, s, POS_OPEN_SELL] -= qty
    balances[FEE_ACCOUNT, quote, FREE] += fee
    rows[slot, O_OPEN] -= qty


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
    release(balances, a, asset, diff)
    rows[slot, O_HELD] -= diff


@njit(cache=True, inline="always", _nrt=False)
def _drop_order(balances, positions, accounts, symbols, glob, keys, rows, slot, order_id) -> None:
    """Forget a finished order: release whatever it still holds and its open quantity."""
    a = rows[slot, O_ACCOUNT]
    s = rows[slot, O_SYMBOL]
    side = rows[slot, O_SIDE]
    release(balances, a, hold_asset(symbols, s, side), rows[slot, O_HELD])
    positions[a, s, POS_OPEN_BUY if side == SIDE_BUY else POS_OPEN_SELL] -= rows[slot, O_OPEN]
    accounts[a, ACC_OPEN_ORDERS] -= 1
    glob[G_OPEN_ORDERS] -= 1
    orders.remove(keys, rows, glob, order_id)
