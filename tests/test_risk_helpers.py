"""The risk engine's arithmetic helpers against exact integer arithmetic, near the bounds.

Fees, holds, the notional and quantity overflow guards, the collar and a market buy's
protection price (``stages/risk/money.py``) are a few lines of int64 arithmetic each, written to avoid overflow (floor/ceil split around 10 000,
division instead of a product); here each is compared with the obvious formula evaluated
on Python's unbounded integers (or fractions), over values up to and past AMOUNT_LIMIT.
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil, floor

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.kernel_codes import SIDE_BUY, SIDE_SELL
from stages.risk import layout as L
from stages.risk.money import (
    base_fits,
    bps_ceil,
    bps_floor,
    hold_amount,
    notional_fits,
    outside_collar,
    protection_price,
    reference_price,
)
from stages.risk.pretrade import highest_bid

LIMIT = L.AMOUNT_LIMIT
INT64_MAX = 2**63 - 1


def near(*points: int, spread: int = 3) -> st.SearchStrategy[int]:
    """Values close to each of ``points`` (and a few anywhere up to 2**62)."""
    return st.one_of(
        *[st.integers(max(1, p - spread), p + spread) for p in points],
        st.integers(1, 2**20),
        st.integers(1, 2**62),
    )


amounts = st.one_of(st.integers(0, 10**6), st.integers(0, 2**62), st.sampled_from([LIMIT, 2**62]))
bps = st.one_of(st.integers(0, 10_000), st.sampled_from([0, 1, 9_999, 10_000]))


@settings(max_examples=300, deadline=None)
@given(amount=amounts, rate=bps)
def test_fees_are_the_exact_floor_and_ceil_of_amount_times_rate(amount, rate):
    assert bps_floor(amount, rate) == amount * rate // 10_000
    assert bps_ceil(amount, rate) == -(-amount * rate // 10_000)


def symbols_row(**columns: int) -> np.ndarray:
    symbols = np.zeros((1, L.SYM_COLUMNS), np.int64)
    symbols[0, L.SYM_QUOTE_SCALE] = 1
    symbols[0, L.SYM_BASE_PER_LOT] = 1
    symbols[0, L.SYM_TICK] = 1
    for name, value in columns.items():
        symbols[0, getattr(L, f"SYM_{name.upper()}")] = value
    return symbols


@settings(max_examples=300, deadline=None)
@given(data=st.data(), scale=near(1, 2**20), maker=bps, taker=bps, bpl=near(1, 1000))
def test_holds_are_notional_plus_ceiled_fee_for_a_buy_and_base_for_a_sell(
    data, scale, maker, taker, bpl
):
    price = data.draw(near(1, LIMIT // scale), label="price")
    qty = data.draw(near(1, LIMIT // max(1, price * scale)), label="qty")
    symbols = symbols_row(quote_scale=scale, maker_bps=maker, taker_bps=taker, base_per_lot=bpl)
    notional = price * qty * scale
    if notional <= LIMIT:  # what the notional check lets through
        want = notional + ceil(Fraction(notional * max(maker, taker), 10_000))
        assert hold_amount(symbols, 0, SIDE_BUY, price, qty) == want <= 2 * LIMIT
    if qty * bpl <= LIMIT:  # what the quantity check lets through
        assert hold_amount(symbols, 0, SIDE_SELL, price, qty) == qty * bpl
    assert hold_amount(symbols, 0, SIDE_BUY, price, 0) == 0


@settings(max_examples=400, deadline=None)
@given(data=st.data(), price=near(1, 2**20, 2**40, LIMIT, INT64_MAX), scale=near(1, 2**20))
def test_the_notional_guard_lets_through_exactly_what_fits(data, price, scale):
    qty = data.draw(near(1, LIMIT // max(1, price * scale), 2**20, INT64_MAX), label="qty")
    price, qty = min(price, INT64_MAX), min(qty, INT64_MAX)
    product = price * qty * scale
    fits = notional_fits(price, qty, scale)
    if product < LIMIT:
        assert fits
    if fits:
        assert product <= LIMIT


@settings(max_examples=300, deadline=None)
@given(qty=near(1, 2**20, LIMIT, INT64_MAX), bpl=near(1, 2**20, LIMIT))
def test_the_quantity_guard_lets_through_exactly_what_a_sell_can_hold(qty, bpl):
    qty, bpl = min(qty, INT64_MAX), min(bpl, INT64_MAX)
    assert base_fits(qty, bpl) == (qty * bpl <= LIMIT)


@settings(max_examples=300, deadline=None)
@given(
    price=st.one_of(st.integers(0, 10**6), st.integers(0, LIMIT)),
    ref=st.one_of(st.integers(0, 10**6), st.integers(0, LIMIT)),
    last=st.one_of(st.just(0), st.integers(1, 10**6)),
    collar=bps,
)
def test_the_collar_refuses_exactly_the_prices_beyond_its_band(price, ref, last, collar):
    symbols = symbols_row(ref_price=ref, last_price=last, collar_bps=collar)
    centre = last or ref  # the last trade, else the configured reference
    beyond = abs(price - centre) > floor(Fraction(centre * collar, 10_000))
    assert outside_collar(symbols, 0, price) == (collar > 0 and centre > 0 and price > 0 and beyond)


@settings(max_examples=300, deadline=None)
@given(
    ask=st.one_of(st.integers(0, 10**6), st.integers(0, INT64_MAX), near(LIMIT // 11, LIMIT)),
    ref=st.one_of(st.just(0), st.integers(1, INT64_MAX)),
    band=st.one_of(st.integers(0, 100_000), st.sampled_from([0, 500, 10_000, 100_000])),
    tick=st.one_of(st.integers(1, 100), st.integers(1, 2**40)),
)
def test_a_market_buys_protection_price_is_ask_plus_band_down_to_the_tick(ask, ref, band, tick):
    symbols = symbols_row(best_ask=ask, ref_price=ref, market_band_bps=band, tick=tick)
    base = ask if ask > 0 else ref  # best ask, else the reference price
    got = protection_price(symbols, 0)
    if base == 0:
        assert got == 0  # nothing bounds it: the order is refused
        return
    exact = max(floor(Fraction(base * (10_000 + band), 10_000) / tick) * tick, base)
    if exact <= LIMIT // 2:
        assert got == exact
    else:  # near or past the notional bound: exact, or the marker the notional check refuses
        assert got == exact <= LIMIT or got == LIMIT + 1
        if exact > LIMIT:
            assert got == LIMIT + 1


@settings(deadline=None)  # the first example may compile the kernel (a stale cache)
@given(bid=st.integers(0, INT64_MAX), passed=st.integers(0, INT64_MAX))
def test_the_highest_bid_is_the_larger_of_the_reported_and_the_passed(bid, passed):
    symbols = symbols_row(best_bid=bid)
    assert highest_bid(symbols, np.array([passed], np.int64), 0) == max(bid, passed)


def test_the_reference_price_is_the_last_trade_else_the_configured_one():
    assert reference_price(symbols_row(ref_price=100), 0) == 100
    assert reference_price(symbols_row(ref_price=100, last_price=120), 0) == 120
    assert reference_price(symbols_row(), 0) == 0
