"""Pre-trade checks: every order either passes with its funds held or gets a reject reason.

The pre-trade pass walks a command batch in sequence order and, for each command nobody
rejected yet, applies the account's state and limits: unknown account, kill switch (account
or global), unknown or halted symbol, duplicate order id, max order quantity, price collar
around the reference price (last trade, else the configured one), max order notional, max
open orders, max net position (position plus open orders on the side that would grow it),
and finally funds. A passing order's hold moves from free to held and the order enters the
order table; a market buy is given its protection price (best ask + band, on the tick) and
held at it. Admin commands are applied here, in sequence: deposit / withdraw, halt / resume,
kill switch. A rejected command keeps flowing with ``reason`` set; matching answers it with
one REJECTED event and changes nothing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stages.risk import orders
from stages.risk.accounts import fee_floor, hold_amount, hold_asset
from stages.risk.layout import (
    ACC_KILLED,
    ACC_MAX_NOTIONAL,
    ACC_MAX_OPEN,
    ACC_MAX_POSITION,
    ACC_MAX_QTY,
    ACC_OPEN_ORDERS,
    AMOUNT_LIMIT,
    BPS,
    BUY,
    CANCEL,
    DEPOSIT,
    FREE,
    G_KILL_ALL,
    G_LAST_PRETRADE_SEQ,
    G_MAX_ORDERS,
    G_OPEN_ORDERS,
    G_ROUND_FIRST_SEQ,
    HALT,
    HELD,
    KILL,
    KILL_RELEASE,
    MARKET,
    NEW,
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
    R_DUPLICATE_ORDER_ID,
    R_HALTED,
    R_INSUFFICIENT_BALANCE,
    R_INSUFFICIENT_FUNDS,
    R_INVALID_COMMAND,
    R_INVALID_QTY,
    R_KILL_SWITCH,
    R_MAX_NOTIONAL,
    R_MAX_QTY,
    R_NOT_OWNER,
    R_NOTIONAL_NO_PRICE,
    R_OPEN_ORDERS,
    R_POSITION,
    R_PRICE_COLLAR,
    R_UNKNOWN_ACCOUNT,
    R_UNKNOWN_ORDER,
    R_UNKNOWN_SYMBOL,
    REDUCE,
    REPLACE,
    RESUME,
    SYM_BASE_PER_LOT,
    SYM_BEST_ASK,
    SYM_BEST_BID,
    SYM_COLLAR_BPS,
    SYM_HALTED,
    SYM_LAST_PRICE,
    SYM_MARKET_BAND_BPS,
    SYM_QUOTE_SCALE,
    SYM_REF_PRICE,
    SYM_TICK,
    W_ORDER_ID,
    W_PRICE,
    W_QTY,
    W_SEQ,
    WITHDRAW,
)


@njit(cache=True, inline="always", _nrt=False)
def reference_price(symbols: np.ndarray, s: int) -> int:
    """The collar's reference: the last trade price, else the configured one (0 = none)."""
    last = symbols[s, SYM_LAST_PRICE]
    return last if last > 0 else symbols[s, SYM_REF_PRICE]


_SMALL = 1 << 20


@njit(cache=True, inline="always", _nrt=False)
def _fits(price: int, qty: int, scale: int) -> bool:
    """price × qty × scale stays below AMOUNT_LIMIT (so notional + fee fits an int64)."""
    if price < _SMALL and qty < _SMALL and scale < _SMALL:
        return True  # < 2**60: no division on the common path
    unit = price * scale if price <= AMOUNT_LIMIT // scale else AMOUNT_LIMIT
    return unit < AMOUNT_LIMIT and qty <= AMOUNT_LIMIT // max(unit, 1)


@njit(cache=True, _nrt=False)
def _limit_checks(
    accounts, positions, symbols, a, s, side, price, qty, open_now, is_new, collared, high_bid
) -> int:  # fmt: skip
    """The limits shared by NEW and REPLACE; ``open_now`` is the order's current open qty.

    The notional is valued at the highest price the order can trade at: a buy's limit (a
    market buy's protection price), a sell's limit or the highest bid it could meet
    (``high_bid``, see ``_highest_bid``), if higher; a market sell (``price`` 0) with no bid
    to meet has no price, and is refused if a notional limit is set. (Scalars, not the
    arrays they come from: each array argument of a compiled call costs seven words.)"""
    lim = accounts[a, ACC_MAX_QTY]
    if lim > 0 and qty > lim:
        return R_MAX_QTY
    collar = symbols[s, SYM_COLLAR_BPS]
    ref = reference_price(symbols, s)
    if (
        collared
        and collar > 0
        and ref > 0
        and price > 0
        and abs(price - ref) > fee_floor(ref, collar)
    ):
        return R_PRICE_COLLAR
    notional_price = price
    if side != BUY:  # a sell trades at the bids it meets, at its limit or higher
        notional_price = max(price, high_bid)
    lim = accounts[a, ACC_MAX_NOTIONAL]
    if notional_price > 0:
        if not _fits(notional_price, qty, symbols[s, SYM_QUOTE_SCALE]):
            return R_MAX_NOTIONAL
        if lim > 0 and notional_price * qty * symbols[s, SYM_QUOTE_SCALE] > lim:
            return R_MAX_NOTIONAL
    elif lim > 0:  # fail closed: a limit no price can check is not skipped
        return R_NOTIONAL_NO_PRICE
    bpl = symbols[s, SYM_BASE_PER_LOT]
    if (qty >= _SMALL or bpl >= _SMALL) and qty > AMOUNT_LIMIT // bpl:
        return R_MAX_QTY
    lim = accounts[a, ACC_MAX_OPEN]
    if is_new and lim > 0 and accounts[a, ACC_OPEN_ORDERS] >= lim:
        return R_OPEN_ORDERS
    lim = accounts[a, ACC_MAX_POSITION]
    if lim <= 0:  # no limit: still bounded, so net + open never nears the int64 range
        lim = AMOUNT_LIMIT
    grow = qty - open_now
    if grow > 0:
        if side == BUY:
            worst = positions[a, s, POS_NET] + positions[a, s, POS_OPEN_BUY] + grow
        else:
            worst = positions[a, s, POS_OPEN_SELL] + grow - positions[a, s, POS_NET]
        if worst > lim:
            return R_POSITION
    return 0


@njit(cache=True, inline="always", _nrt=False)
def _highest_bid(symbols: np.ndarray, round_buy_max: np.ndarray, s: int) -> int:
    """The highest price a bid can rest at in symbol ``s`` now (0 = no bid can rest).

    The best bid matching reported is exact once everything pre-traded is settled (when
    the round starts afresh); every bid added since is a buy this pass let through, whose
    price ``round_buy_max`` remembers. So the larger of the two bounds every bid, however
    far settlement lags behind (the best bid alone is as old as the last settlement).
    """
    return max(symbols[s, SYM_BEST_BID], round_buy_max[s])


@njit(cache=True, inline="always", _nrt=False)
def _market_buy_price(symbols: np.ndarray, s: int) -> int:
    """A market buy's protection price: best ask (else reference) + band, down to the tick.

    When it could pass AMOUNT_LIMIT it comes back as AMOUNT_LIMIT + 1 (the notional check
    refuses that) instead of being computed: ask × (1 + band) can pass int64 (the band
    goes up to 1000 %, the configured reference price is unbounded)."""
    ask = symbols[s, SYM_BEST_ASK]
    if ask <= 0:
        ask = reference_price(symbols, s)
    if ask <= 0:
        return 0
    band = symbols[s, SYM_MARKET_BAND_BPS]
    if ask > AMOUNT_LIMIT // (BPS + band) * BPS:  # then ask + band part > AMOUNT_LIMIT
        return AMOUNT_LIMIT + 1
    p = ask + fee_floor(ask, band)
    tick = symbols[s, SYM_TICK]
    return max(p - p % tick, ask)


_NO_SELL = NO_SELL


@njit(cache=True, _nrt=False)
def pre_trade(
    words, balances, positions, accounts, sym_index, asset_index, symbols, glob, keys, rows,
    round_buy_max, round_sell_min, supply,
):  # fmt: skip
    """Check and hold a batch of commands in place; returns how many it rejected.

    ``supply[asset]`` is the asset's total over every account (free + held): deposits keep
    it at most AMOUNT_LIMIT, and settlement only moves money, so every balance, hold and
    fee, and any sum of them, stays within it.

    ``words`` is a COMMAND_DTYPE batch viewed as int64 rows of 8 words (one argument instead
    of ten field views: numba's dispatch cost grows with the arguments).

    Hot: one pass in sequence order, no allocation, no Python calls per record. Sets
    ``reason`` of refused commands and ``price`` of market buys; skips commands whose
    ``reason`` is already set (ingest refused them).

    A REPLACE sets its order's open quantity outright, so while that order may have fills
    risk has not settled — it was created or replaced since everything was last settled, or
    an order passed since then could reach its price (``round_buy_max`` / ``round_sell_min``
    per symbol; ``post_trade`` resets them once it has settled every command pre-traded) —
    the replace must be covered in full by the free balance: the old hold may be spent by
    those fills. Settlement of REPLACED then returns the excess. Otherwise only the
    difference to the current hold is needed. This holds however far pre-trade runs ahead
    of settlement (a pipelined stage), and in the ``Engine`` (settled after every batch).
    """
    n_accounts = accounts.shape[0]
    n = words.shape[0]
    rejected = 0
    if n == 0:
        return 0
    if glob[G_ROUND_FIRST_SEQ] == 0:
        glob[G_ROUND_FIRST_SEQ] = words[0, W_SEQ]
    first_seq = glob[G_ROUND_FIRST_SEQ]
    for i in range(n):
        w6 = words[i, 6]
        w7 = words[i, 7]
        if (w7 >> 32) & 0xFF != 0:
            continue  # refused upstream
        k = (w6 >> 48) & 0xFF
        a = w6 & 0xFFFFFFFF
        sym = (w6 >> 32) & 0xFFFF
        r = 0
        if k == NEW:
            side = (w6 >> 56) & 0xFF
            s = sym_index[sym]
            high_bid = _highest_bid(symbols, round_buy_max, s) if side != BUY and s >= 0 else 0
            r, p = _new_order(
                words[i, W_SEQ], words[i, W_ORDER_ID], words[i, W_PRICE], words[i, W_QTY], a,
                sym, side, w7 & 0xFF,
                balances, positions, accounts, sym_index, symbols, glob, keys, rows, high_bid,
            )  # fmt: skip
            if r == 0:
                words[i, W_PRICE] = p
                _note_aggressor(round_buy_max, round_sell_min, sym_index[sym], side, p)
        elif k == REPLACE:
            oid = words[i, W_ORDER_ID]
            r = _replace(
                words[i, W_SEQ], oid, words[i, W_PRICE], words[i, W_QTY], a,
                balances, positions, accounts, symbols, glob, keys, rows,
                first_seq, round_buy_max, round_sell_min,
            )  # fmt: skip
            if r == 0:
                slot = orders.find(keys, oid)
                _note_aggressor(
                    round_buy_max, round_sell_min, rows[slot, O_SYMBOL], rows[slot, O_SIDE],
                    words[i, W_PRICE],
                )  # fmt: skip
        elif k in (CANCEL, REDUCE):
            if a == 0 or a >= n_accounts:
                r = R_UNKNOWN_ACCOUNT
        elif k in (DEPOSIT, WITHDRAW):
            x = asset_index[sym]
            q = words[i, W_QTY]
            if a == 0 or a >= n_accounts:
                r = R_UNKNOWN_ACCOUNT
            elif x < 0:
                r = R_INVALID_COMMAND
            elif q <= 0:
                r = R_INVALID_QTY
            elif k == DEPOSIT:
                if supply[x] > AMOUNT_LIMIT - q:
                    r = R_INVALID_QTY  # the asset's total would pass AMOUNT_LIMIT
                else:
                    balances[a, x, FREE] += q
                    supply[x] += q
            elif balances[a, x, FREE] < q:
                r = R_INSUFFICIENT_BALANCE
            else:
                balances[a, x, FREE] -= q
                supply[x] -= q
        elif k in (HALT, RESUME):
            s = sym_index[sym]
            if s >= 0:
                symbols[s, SYM_HALTED] = 1 if k == HALT else 0
        elif k in (KILL, KILL_RELEASE):
            flag = 1 if k == KILL else 0
            if a == 0:
                glob[G_KILL_ALL] = flag
            elif a < n_accounts:
                accounts[a, ACC_KILLED] = flag
            else:
                r = R_UNKNOWN_ACCOUNT
        if r != 0:
            words[i, 7] = (w7 & ~(0xFF << 32)) | (r << 32)
            rejected += 1
    glob[G_LAST_PRETRADE_SEQ] = words[n - 1, W_SEQ]
    return rejected


@njit(cache=True, inline="always", _nrt=False)
def _note_aggressor(round_buy_max, round_sell_min, s, side, price) -> None:
    """Remember how far an order passed in this round may reach into the book."""
    if s < 0:
        return
    if side == BUY:
        round_buy_max[s] = max(round_buy_max[s], price if price > 0 else _NO_SELL)
    else:
        round_sell_min[s] = min(round_sell_min[s], price)


@njit(cache=True, inline="always", _nrt=False)
def _unsettled(rows, slot, first_seq, round_buy_max, round_sell_min) -> bool:
    """May this order have fills or changes risk has not settled yet, in this round?"""
    if rows[slot, O_NEW_SEQ] >= first_seq or rows[slot, O_REP_SEQ] != 0:
        return True
    s = rows[slot, O_SYMBOL]
    if rows[slot, O_SIDE] == BUY:
        return round_sell_min[s] <= rows[slot, O_PRICE]
    return round_buy_max[s] >= rows[slot, O_PRICE]


@njit(cache=True, _nrt=False)
def _new_order(
    seq, oid, price, q, a, sym, sd, order_type,
    balances, positions, accounts, sym_index, symbols, glob, keys, rows, high_bid,
):  # fmt: skip
    """Check and hold one NEW; returns (reason, the price it is held at). ``high_bid``:
    ``_highest_bid`` of its symbol, for a sell."""
    if a == 0 or a >= accounts.shape[0]:
        return R_UNKNOWN_ACCOUNT, price
    if glob[G_KILL_ALL] != 0 or accounts[a, ACC_KILLED] != 0:
        return R_KILL_SWITCH, price
    s = sym_index[sym]
    if s < 0:
        return R_UNKNOWN_SYMBOL, price
    if symbols[s, SYM_HALTED] != 0:
        return R_HALTED, price
    if oid <= 0:
        return R_INVALID_COMMAND, price
    if orders.find(keys, oid) >= 0:
        return R_DUPLICATE_ORDER_ID, price
    p = price
    market = order_type == MARKET
    if market:
        if sd == BUY and p <= 0:
            p = _market_buy_price(symbols, s)
            if p <= 0:
                return R_PRICE_COLLAR, price  # no best ask nor reference bounds the order
        elif sd != BUY:
            p = 0
        # a market order is not collared (a buy's protection price already bounds it)
        r = _limit_checks(accounts, positions, symbols, a, s, sd, p, q, 0, True, False, high_bid)
    else:
        r = _limit_checks(accounts, positions, symbols, a, s, sd, p, q, 0, True, True, high_bid)
    if r != 0:
        return r, price
    if glob[G_OPEN_ORDERS] >= glob[G_MAX_ORDERS]:
        return R_OPEN_ORDERS, price  # the order pool is full
    x = hold_asset(symbols, s, sd)
    need = hold_amount(symbols, s, sd, p, q)
    if balances[a, x, FREE] < need:
        return R_INSUFFICIENT_FUNDS, price
    balances[a, x, FREE] -= need
    balances[a, x, HELD] += need
    slot = orders.insert(keys, rows, glob, oid)
    rows[slot, O_ACCOUNT] = a
    rows[slot, O_SYMBOL] = s
    rows[slot, O_SIDE] = sd
    rows[slot, O_PRICE] = p
    rows[slot, O_OPEN] = q
    rows[slot, O_HELD] = need
    rows[slot, O_NEW_SEQ] = seq
    rows[slot, O_REP_SEQ] = 0
    positions[a, s, POS_OPEN_BUY if sd == BUY else POS_OPEN_SELL] += q
    accounts[a, ACC_OPEN_ORDERS] += 1
    glob[G_OPEN_ORDERS] += 1
    return 0, (p if market and sd == BUY else price)


@njit(cache=True, _nrt=False)
def _replace(
    seq, oid, price, q, a, balances, positions, accounts, symbols, glob, keys, rows,
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
    sd = rows[slot, O_SIDE]
    p = price
    if sd == BUY and p <= 0:
        return R_PRICE_COLLAR  # a buy must keep a price that bounds its hold
    if sd != BUY and p <= 0:
        p = rows[slot, O_PRICE]
    high_bid = _highest_bid(symbols, round_buy_max, s) if sd != BUY else 0
    r = _limit_checks(
        accounts, positions, symbols, a, s, sd, p, q, rows[slot, O_OPEN], False, True, high_bid
    )  # fmt: skip
    if r != 0:
        return r
    x = hold_asset(symbols, s, sd)
    extra = hold_amount(symbols, s, sd, p, q)
    if not _unsettled(rows, slot, first_seq, round_buy_max, round_sell_min):
        extra -= rows[slot, O_HELD]
    if extra > 0:
        if balances[a, x, FREE] < extra:
            return R_INSUFFICIENT_FUNDS
        balances[a, x, FREE] -= extra
        balances[a, x, HELD] += extra
        rows[slot, O_HELD] += extra
    rows[slot, O_REP_SEQ] = seq
    return 0
