"""Risk's money arithmetic: holds, fees, bps bounds, collars and notionals, exact in int64.

The pre-trade checks (``pretrade.py``) and settlement (``settlement.py``) compute every
amount through these helpers, so each formula is written once. Everything is integer-only
and cannot overflow within the bounds of ``docs/risk.md`` (``AMOUNT_LIMIT``): a basis-point
part is split around 10 000 (floored when charged, ceiled when held, so a hold always covers
a fill); a product is compared with the bound by division before it is formed. Units: a
symbol trades ``base`` against ``quote``; one lot is ``base_per_lot`` base units and
``price × qty`` lots cost ``price × qty × quote_per_price_lot`` quote units.

Hot: every function is inlined into the kernels (no call, no allocation).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stages.kernel_codes import SIDE_BUY
from stages.risk.layout import (
    AMOUNT_LIMIT,
    BPS,
    FREE,
    HELD,
    SYM_BASE,
    SYM_BASE_PER_LOT,
    SYM_BEST_ASK,
    SYM_COLLAR_BPS,
    SYM_LAST_PRICE,
    SYM_MAKER_BPS,
    SYM_MARKET_BAND_BPS,
    SYM_QUOTE,
    SYM_QUOTE_SCALE,
    SYM_REF_PRICE,
    SYM_TAKER_BPS,
    SYM_TICK,
)

_SMALL = 1 << 20  # three factors below it multiply to < 2**60: no division needed

# --- basis points ---------------------------------------------------------------------------


@njit(cache=True, inline="always", _nrt=False)
def bps_floor(amount: int, bps: int) -> int:
    """floor(amount × bps / 10000) without overflowing int64 (while amount + the result
    fits): a fee charged, the width of a collar or of a market buy's band."""
    return (amount // BPS) * bps + ((amount % BPS) * bps) // BPS


@njit(cache=True, inline="always", _nrt=False)
def bps_ceil(amount: int, bps: int) -> int:
    """ceil(amount × bps / 10000) without overflowing int64 (bps <= 10000): a fee held."""
    part = (amount % BPS) * bps
    return (amount // BPS) * bps + part // BPS + (1 if part % BPS else 0)


# --- notional and quantity bounds -----------------------------------------------------------


@njit(cache=True, inline="always", _nrt=False)
def notional(symbols: np.ndarray, s: int, price: int, qty: int) -> int:
    """Quote units ``qty`` lots cost at ``price`` in symbol index ``s`` (check it fits first)."""
    return price * qty * symbols[s, SYM_QUOTE_SCALE]


@njit(cache=True, inline="always", _nrt=False)
def notional_fits(price: int, qty: int, scale: int) -> bool:
    """price × qty × scale stays below AMOUNT_LIMIT (so notional + fee fits an int64)."""
    if price < _SMALL and qty < _SMALL and scale < _SMALL:
        return True  # < 2**60: no division on the common path
    unit = price * scale if price <= AMOUNT_LIMIT // scale else AMOUNT_LIMIT
    return unit < AMOUNT_LIMIT and qty <= AMOUNT_LIMIT // max(unit, 1)


@njit(cache=True, inline="always", _nrt=False)
def base_fits(qty: int, base_per_lot: int) -> bool:
    """qty × base_per_lot (what a sell holds) stays within AMOUNT_LIMIT."""
    return (qty < _SMALL and base_per_lot < _SMALL) or qty <= AMOUNT_LIMIT // base_per_lot


# --- holds ----------------------------------------------------------------------------------


@njit(cache=True, inline="always", _nrt=False)
def hold_amount(symbols: np.ndarray, s: int, side: int, price: int, qty: int) -> int:
    """What an order of ``qty`` lots at ``price`` holds: quote (+ fee) for a buy, base for a sell.

    The fee part uses the larger of the maker and taker rates: the order may end up either.
    """
    if qty <= 0:
        return 0
    if side == SIDE_BUY:
        cost = notional(symbols, s, price, qty)
        bps = max(symbols[s, SYM_MAKER_BPS], symbols[s, SYM_TAKER_BPS])
        return cost + bps_ceil(cost, bps)
    return qty * symbols[s, SYM_BASE_PER_LOT]


@njit(cache=True, inline="always", _nrt=False)
def hold_asset(symbols: np.ndarray, s: int, side: int) -> int:
    """Asset index an order of ``side`` on symbol index ``s`` holds."""
    return symbols[s, SYM_QUOTE] if side == SIDE_BUY else symbols[s, SYM_BASE]


@njit(cache=True, inline="always", _nrt=False)
def hold(balances: np.ndarray, a: int, x: int, amount: int) -> None:
    """Move ``amount`` of asset index ``x`` from ``a``'s free balance to its held one."""
    balances[a, x, FREE] -= amount
    balances[a, x, HELD] += amount


@njit(cache=True, inline="always", _nrt=False)
def release(balances: np.ndarray, a: int, x: int, amount: int) -> None:
    """Move ``amount`` (negative: the other way) of asset ``x`` from held back to free."""
    balances[a, x, FREE] += amount
    balances[a, x, HELD] -= amount


@njit(cache=True, inline="always", _nrt=False)
def trade_fee(symbols: np.ndarray, s: int, cost: int, maker: bool) -> int:
    """The fee a fill of notional ``cost`` pays at its maker or taker rate, floored."""
    return bps_floor(cost, symbols[s, SYM_MAKER_BPS] if maker else symbols[s, SYM_TAKER_BPS])


# --- prices: collar and a market buy's protection price ---------------------------------


@njit(cache=True, inline="always", _nrt=False)
def reference_price(symbols: np.ndarray, s: int) -> int:
    """The collar's reference: the last trade price, else the configured one (0 = none)."""
    last = symbols[s, SYM_LAST_PRICE]
    return last if last > 0 else symbols[s, SYM_REF_PRICE]


@njit(cache=True, inline="always", _nrt=False)
def outside_collar(symbols: np.ndarray, s: int, price: int) -> bool:
    """``price`` is farther than ``collar_bps`` from the reference price (no collar, no
    reference or no price: never)."""
    collar = symbols[s, SYM_COLLAR_BPS]
    ref = reference_price(symbols, s)
    return collar > 0 and ref > 0 and price > 0 and abs(price - ref) > bps_floor(ref, collar)


@njit(cache=True, inline="always", _nrt=False)
def protection_price(symbols: np.ndarray, s: int) -> int:
    """A market buy's protection price: best ask (else reference) + band, down to the tick;
    0 when neither exists (nothing bounds the order).

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
    p = ask + bps_floor(ask, band)
    tick = symbols[s, SYM_TICK]
    return max(p - p % tick, ask)
