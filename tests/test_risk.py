"""Scenario tests of the risk engine alone: one test per rule, with hand-made events."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.matching.symbols import MAX_QTY as MATCHING_MAX_QTY
from stages.records import CommandType, EventFlag, EventType, Reason, Side
from stages.risk import layout as L
from stages.risk import orders
from stages.risk.config import (
    MAX_QTY,
    AccountConfig,
    AccountLimits,
    AssetConfig,
    InstrumentConfig,
    RiskConfig,
)
from stages.risk.engine import RiskEngine
from tests.risk_builders import (
    BTC,
    BTCUSD,
    USD,
    Seq,
    admin,
    buy,
    cancel,
    commands,
    deposit,
    ev,
    events,
    replace,
    sell,
    trade,
    withdraw,
)

ALICE, BOB = 1, 2
B = Side.BUY
S = Side.SELL


def make(instrument: dict | None = None, **config) -> RiskEngine:
    inst = InstrumentConfig(symbol=BTCUSD, base=BTC, quote=USD, **(instrument or {}))
    cfg = RiskConfig(
        assets=[AssetConfig(USD, "USD"), AssetConfig(BTC, "BTC")],
        instruments=[inst],
        max_accounts=16,
        **config,
    )
    return RiskEngine(cfg)


def ack(risk: RiskEngine, batch: np.ndarray) -> None:
    """Settle matching's acknowledgement of a pre-traded ``batch`` (nothing traded)."""
    acks = [ev(EventType.ACCEPTED, int(c["seq"]), int(c["order_id"]), 0, B) for c in batch]
    risk.post_trade(events(*acks))


def placed(risk: RiskEngine, batch: np.ndarray) -> np.ndarray:
    """Pre-trade ``batch`` and settle matching's acknowledgement of it (nothing traded)."""
    risk.pre_trade(batch)
    ack(risk, batch)
    return batch


def funded(instrument: dict | None = None, usd=100_000, btc=1_000, **config):
    risk = make(instrument, **config)
    seq = Seq()
    batch = commands(
        deposit(seq(), ALICE, USD, usd),
        deposit(seq(), ALICE, BTC, btc),
        deposit(seq(), BOB, USD, usd),
        deposit(seq(), BOB, BTC, btc),
    )
    assert risk.pre_trade(batch) == 0
    ack(risk, batch)  # nothing pending: later orders start settled
    return risk, seq


def reasons(batch: np.ndarray) -> list[Reason]:
    return [Reason(r) for r in batch["reason"]]


# --- balances, deposits, withdrawals ---------------------------------------------------------


def test_deposit_and_withdrawal_move_free_balance_and_overdraft_is_refused():
    risk, seq = funded(usd=500)
    batch = commands(withdraw(seq(), ALICE, USD, 200), withdraw(seq(), ALICE, USD, 301))
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.OK, Reason.INSUFFICIENT_BALANCE]
    assert risk.balance(ALICE, USD) == (300, 0)


def test_unknown_account_and_unknown_asset_are_refused():
    risk, seq = funded()
    batch = commands(
        deposit(seq(), 99, USD, 5),
        deposit(seq(), 0, USD, 5),  # the fee account takes no deposits
        deposit(seq(), ALICE, 7, 5),
        buy(seq(), 1, 99, 10, 1),
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [
        Reason.UNKNOWN_ACCOUNT,
        Reason.UNKNOWN_ACCOUNT,
        Reason.INVALID_COMMAND,
        Reason.UNKNOWN_ACCOUNT,
    ]


def test_rejected_commands_are_skipped():
    risk, seq = funded()
    batch = commands(deposit(seq(), ALICE, USD, 5))
    batch["reason"] = Reason.THROTTLED
    risk.pre_trade(batch)
    assert risk.balance(ALICE, USD) == (100_000, 0)


# --- holds ------------------------------------------------------------------------------------


def test_buy_holds_price_times_qty_plus_ceiled_fee_and_sell_holds_base():
    risk, seq = funded({"taker_fee_bps": 10, "maker_fee_bps": 3, "quote_per_price_lot": 2})
    batch = commands(buy(seq(), 1, ALICE, 101, 7), sell(seq(), 2, BOB, 120, 9))
    assert risk.pre_trade(batch) == 0
    notional = 101 * 7 * 2  # 1414
    assert risk.balance(ALICE, USD) == (100_000 - notional - 2, notional + 2)  # ceil(1.414)
    assert risk.balance(BOB, BTC) == (991, 9)
    assert risk.order_hold(1) == notional + 2


def test_insufficient_funds_rejects_and_holds_nothing():
    risk, seq = funded(usd=1000, btc=5)
    batch = commands(buy(seq(), 1, ALICE, 100, 11), sell(seq(), 2, BOB, 100, 6))
    assert risk.pre_trade(batch) == 2
    assert reasons(batch) == [Reason.INSUFFICIENT_FUNDS] * 2
    assert risk.balance(ALICE, USD) == (1000, 0)
    assert risk.open_orders(ALICE) == 0


def test_duplicate_order_id_is_refused_and_leaves_the_first_order():
    risk, seq = funded()
    batch = commands(buy(seq(), 1, ALICE, 10, 1), buy(seq(), 1, BOB, 10, 1))
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.OK, Reason.DUPLICATE_ORDER_ID]
    # matching answers the duplicate with REJECTED of its seq: the first order keeps its hold
    dup_seq = int(batch["seq"][1])
    risk.post_trade(events(ev(EventType.REJECTED, dup_seq, 1, BOB, B, reason=72)))
    assert risk.order_hold(1) == 10


# --- settlement -------------------------------------------------------------------------------


def test_trade_settles_both_sides_at_trade_price_with_fees_and_refunds_improvement():
    risk, seq = funded({"taker_fee_bps": 20, "maker_fee_bps": 10})
    before = risk.totals()
    batch = commands(sell(seq(), 1, BOB, 90, 10), buy(seq(), 2, ALICE, 100, 10))
    risk.pre_trade(batch)
    risk.post_trade(
        events(
            ev(EventType.ACCEPTED, 1, 1, BOB, S, 90, 10),
            ev(EventType.ACCEPTED, 2, 2, ALICE, B, 100, 10),
            *trade(2, (2, ALICE, B), (1, BOB, S), 90, 10, taker_done=True, maker_done=True),
        )
    )
    # alice (taker) pays 900 + 20 bps (1.8 -> 1); bob (maker) receives 900 - 10 bps (0.9 -> 0)
    assert risk.balance(ALICE, USD) == (100_000 - 901, 0)
    assert risk.balance(ALICE, BTC) == (1010, 0)
    assert risk.balance(BOB, USD) == (100_900, 0)
    assert risk.balance(BOB, BTC) == (990, 0)
    assert risk.balance(0, USD) == (1, 0)
    assert risk.position(ALICE, BTCUSD) == 10 and risk.position(BOB, BTCUSD) == -10
    assert risk.totals() == before
    assert risk.open_orders(ALICE) == risk.open_orders(BOB) == 0


def test_partial_fill_keeps_exact_hold_then_cancel_releases_the_rest():
    risk, seq = funded({"taker_fee_bps": 25})
    placed(risk, commands(buy(seq(), 1, ALICE, 100, 10)))
    risk.post_trade(events(*trade(5, (9, BOB, S), (1, ALICE, B), 95, 4)))
    # 6 left open at 100: 600 + ceil(600 * 25 / 10000) = 602 held
    assert risk.order_hold(1) == 602
    assert risk.balance(ALICE, USD) == (100_000 - 380 - 0 - 602, 602)  # maker fee 0
    risk.post_trade(
        events(ev(EventType.CANCELLED, 6, 1, ALICE, B, 100, 6, flags=EventFlag.DONE, reason=1))
    )
    assert risk.balance(ALICE, USD) == (100_000 - 380, 0)
    assert risk.order_hold(1) is None


def test_ioc_remainder_and_matching_reject_release_holds():
    risk, seq = funded()
    s1, s2 = seq(), seq()
    risk.pre_trade(commands(buy(s1, 1, ALICE, 100, 10, tif=1), sell(s2, 2, ALICE, 100, 5)))
    assert risk.balance(ALICE, BTC) == (995, 5)
    risk.post_trade(
        events(
            ev(EventType.CANCELLED, s1, 1, ALICE, B, 100, 10, flags=EventFlag.DONE, reason=2),
            ev(EventType.REJECTED, s2, 2, ALICE, S, reason=Reason.TICK_SIZE),
        )
    )
    assert risk.balance(ALICE, USD) == (100_000, 0)
    assert risk.balance(ALICE, BTC) == (1000, 0)
    assert risk.open_orders(ALICE) == 0


def test_replace_adjusts_the_hold_and_an_uncovered_replace_is_refused():
    risk, seq = funded(usd=2_000)
    placed(risk, commands(buy(seq(), 1, ALICE, 100, 10)))
    batch = commands(replace(seq(), 1, ALICE, 150, 10), replace(seq(), 1, ALICE, 300, 10))
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.OK, Reason.INSUFFICIENT_FUNDS]
    assert risk.balance(ALICE, USD) == (500, 1500)
    risk.post_trade(events(ev(EventType.REPLACED, int(batch["seq"][0]), 1, ALICE, B, 150, 10)))
    assert risk.order_hold(1) == 1500
    # down: released when matching confirms
    r = commands(replace(seq(), 1, ALICE, 50, 4))
    risk.pre_trade(r)
    assert risk.balance(ALICE, USD) == (500, 1500)
    risk.post_trade(events(ev(EventType.REPLACED, int(r["seq"][0]), 1, ALICE, B, 50, 4)))
    assert risk.balance(ALICE, USD) == (1800, 200)


def test_replace_rejected_by_matching_returns_the_extra_hold():
    risk, seq = funded(usd=2_000)
    placed(risk, commands(buy(seq(), 1, ALICE, 100, 10)))
    r = commands(replace(seq(), 1, ALICE, 150, 10))
    risk.pre_trade(r)
    assert risk.balance(ALICE, USD) == (500, 1500)
    rep_seq = int(r["seq"][0])
    risk.post_trade(events(ev(EventType.REJECTED, rep_seq + 1, 1, ALICE, B, reason=71)))
    assert risk.balance(ALICE, USD) == (500, 1500)  # another command's reject changes nothing
    risk.post_trade(events(ev(EventType.REJECTED, rep_seq, 1, ALICE, B, reason=74)))
    assert risk.balance(ALICE, USD) == (1000, 1000)


def test_replace_of_someone_elses_or_unknown_order_is_refused():
    risk, seq = funded()
    placed(risk, commands(buy(seq(), 1, ALICE, 100, 10)))
    batch = commands(replace(seq(), 1, BOB, 100, 20), replace(seq(), 77, BOB, 100, 20))
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.NOT_OWNER, Reason.UNKNOWN_ORDER]


# --- limits -----------------------------------------------------------------------------------


def test_each_limit_rejects_with_its_own_reason():
    limits = AccountLimits(
        max_order_qty=50, max_order_notional=4_000, max_open_orders=2, max_position=60
    )
    risk, seq = funded(default_limits=limits)
    batch = commands(
        buy(seq(), 1, ALICE, 10, 51),  # qty
        buy(seq(), 2, ALICE, 100, 41),  # notional 4100
        buy(seq(), 3, ALICE, 10, 40),
        buy(seq(), 4, ALICE, 10, 25),  # open 40 + 25 > 60
        sell(seq(), 5, ALICE, 10, 50),
        sell(seq(), 6, ALICE, 10, 1),  # third open order
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [
        Reason.LIMIT_MAX_QTY,
        Reason.LIMIT_MAX_NOTIONAL,
        Reason.OK,
        Reason.LIMIT_POSITION,
        Reason.OK,
        Reason.LIMIT_OPEN_ORDERS,
    ]


def test_position_limit_counts_fills_and_allows_reducing_trades():
    risk, seq = funded(default_limits=AccountLimits(max_position=10))
    risk.pre_trade(commands(buy(seq(), 1, ALICE, 10, 10)))
    risk.post_trade(events(*trade(2, (9, BOB, S), (1, ALICE, B), 10, 10, maker_done=True)))
    assert risk.position(ALICE, BTCUSD) == 10
    batch = commands(buy(seq(), 2, ALICE, 10, 1), sell(seq(), 3, ALICE, 10, 20))
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.LIMIT_POSITION, Reason.OK]  # -10 worst case is allowed


NOTIONAL_10K = AccountLimits(max_order_notional=10_000)


def test_a_market_sell_is_valued_at_a_bid_passed_in_the_same_round():
    # nothing settled yet: risk knows no best bid, only the buys it let through
    risk, seq = funded(default_limits=NOTIONAL_10K)
    batch = commands(
        buy(seq(), 1, BOB, 95, 100),
        sell(seq(), 2, ALICE, 90, 200),  # would trade at 95: 19,000
        sell(seq(), 3, ALICE, 0, 200, market=True),  # 19,000 as well
        sell(seq(), 4, ALICE, 0, 100, market=True),  # 9,500
        sell(seq(), 5, ALICE, 101, 99),  # rests above the bids: valued at its own 9,999
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [
        Reason.OK,
        Reason.LIMIT_MAX_NOTIONAL,
        Reason.LIMIT_MAX_NOTIONAL,
        Reason.OK,
        Reason.OK,
    ]


def test_a_sell_is_valued_at_the_best_bid_once_settled():
    risk, seq = funded(default_limits=NOTIONAL_10K)
    risk.post_trade(events(ev(EventType.BOOK_TOP, 1, 0, 0, B, 95, 300, other_id=1)))
    batch = commands(
        sell(seq(), 1, ALICE, 0, 106, market=True),  # 95 x 106 = 10,070
        sell(seq(), 2, ALICE, 1, 106),  # a limit far below the bid trades at the bid too
        sell(seq(), 3, ALICE, 0, 105, market=True),  # 9,975
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.LIMIT_MAX_NOTIONAL, Reason.LIMIT_MAX_NOTIONAL, Reason.OK]


def test_a_market_sell_with_no_price_at_all_fails_closed_under_a_notional_limit():
    risk, seq = funded(
        {"reference_price": 100}, default_limits=NOTIONAL_10K, accounts=[AccountConfig(BOB)]
    )
    batch = commands(
        sell(seq(), 1, ALICE, 0, 1, market=True),  # no bid known or passed: no price
        sell(seq(), 2, BOB, 0, 1_000, market=True),  # no notional limit: nothing to check
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.NOTIONAL_NO_PRICE, Reason.OK]
    assert risk.balance(ALICE, BTC) == (1_000, 0)


def test_a_market_buy_is_valued_at_its_protection_price():
    risk, seq = funded({"market_band_bps": 500}, default_limits=NOTIONAL_10K)
    risk.post_trade(events(ev(EventType.BOOK_TOP, 1, 0, 0, S, 100, 300, other_id=1)))
    batch = commands(
        buy(seq(), 1, ALICE, 0, 96, market=True),  # held at 105: 10,080
        buy(seq(), 2, ALICE, 0, 95, market=True),  # 9,975
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.LIMIT_MAX_NOTIONAL, Reason.OK]


def test_a_replaced_sell_is_valued_at_the_bids_it_could_meet():
    risk, seq = funded(default_limits=NOTIONAL_10K)
    placed(risk, commands(sell(seq(), 1, ALICE, 120, 80), buy(seq(), 2, BOB, 110, 10)))
    risk.post_trade(events(ev(EventType.BOOK_TOP, 9, 0, 0, B, 110, 10, other_id=1)))
    batch = commands(replace(seq(), 1, ALICE, 50, 91), replace(seq(), 1, ALICE, 50, 90))
    risk.pre_trade(batch)  # 110 x 91 = 10,010; 110 x 90 = 9,900
    assert reasons(batch) == [Reason.LIMIT_MAX_NOTIONAL, Reason.OK]


def test_per_account_limits_override_defaults():
    cfg = [AccountConfig(BOB, AccountLimits(max_order_qty=5))]
    risk, seq = funded(default_limits=AccountLimits(max_order_qty=100), accounts=cfg)
    batch = commands(buy(seq(), 1, ALICE, 1, 50), buy(seq(), 2, BOB, 1, 50))
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.OK, Reason.LIMIT_MAX_QTY]


def test_price_collar_uses_configured_reference_then_last_trade():
    risk, seq = funded({"collar_bps": 1000, "reference_price": 100})
    batch = commands(buy(seq(), 1, ALICE, 110, 1), buy(seq(), 2, ALICE, 111, 1))
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.OK, Reason.PRICE_COLLAR]
    risk.post_trade(events(*trade(3, (8, BOB, S), (9, ALICE, B), 200, 1)))  # last trade 200
    batch = commands(sell(seq(), 3, BOB, 180, 1), sell(seq(), 4, BOB, 179, 1))
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.OK, Reason.PRICE_COLLAR]


# --- int64 bounds -----------------------------------------------------------------------------


def test_deposits_are_bounded_by_the_assets_total_over_every_account():
    # per-account bounds let several accounts' money pile up in one account past int64
    risk, seq = make(), Seq()
    half = L.AMOUNT_LIMIT // 2
    batch = commands(
        deposit(seq(), ALICE, USD, half + 1),
        deposit(seq(), BOB, USD, half),  # the total would be AMOUNT_LIMIT + 1
        deposit(seq(), BOB, USD, half - 1),  # exactly AMOUNT_LIMIT
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.OK, Reason.INVALID_QTY, Reason.OK]
    assert risk.totals()[USD] == L.AMOUNT_LIMIT
    restored = RiskEngine.restore(risk.snapshot())  # the total is rebuilt from the balances
    more = commands(
        deposit(seq(), BOB, USD, 1), withdraw(seq(), ALICE, USD, 5), deposit(seq(), BOB, USD, 5)
    )
    for engine in (risk, restored):
        batch = more.copy()
        engine.pre_trade(batch)
        assert reasons(batch) == [Reason.INVALID_QTY, Reason.OK, Reason.OK]
    assert risk.state_hash() == restored.state_hash()


def test_an_order_at_the_notional_bound_holds_exactly_and_one_past_it_is_refused():
    risk, seq = make({"taker_fee_bps": 5, "maker_fee_bps": 1}), Seq()
    risk.pre_trade(commands(deposit(seq(), ALICE, USD, L.AMOUNT_LIMIT)))
    price = 2**26  # price x MAX_QTY = 2**61 - 2**26 <= AMOUNT_LIMIT
    notional = price * MAX_QTY
    batch = commands(
        buy(seq(), 1, ALICE, 2**40, MAX_QTY),  # 2**75: far past int64
        buy(seq(), 2, ALICE, price + 1, MAX_QTY),  # just past AMOUNT_LIMIT
        buy(seq(), 3, ALICE, price, MAX_QTY),  # fits, but not with its fee
        sell(seq(), 4, BOB, 2**62, MAX_QTY),
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [
        Reason.LIMIT_MAX_NOTIONAL,
        Reason.LIMIT_MAX_NOTIONAL,
        Reason.INSUFFICIENT_FUNDS,
        Reason.LIMIT_MAX_NOTIONAL,
    ]
    fee = -(-notional * 5 // 10_000)  # ceiled, exact integer arithmetic
    assert notional + fee > L.AMOUNT_LIMIT
    batch = commands(buy(seq(), 5, ALICE, price // 2, MAX_QTY))
    risk.pre_trade(batch)
    half = price // 2 * MAX_QTY
    assert reasons(batch) == [Reason.OK]
    assert risk.order_hold(5) == half + -(-half * 5 // 10_000)


def test_a_market_buys_protection_price_past_int64_is_refused_not_wrapped():
    # 2**60 + 1000 % = 11 * 2**60 passes int64: it used to wrap, and the order was held at
    # the bare reference price instead
    risk, seq = funded({"reference_price": 2**60, "market_band_bps": 100_000})
    batch = commands(buy(seq(), 1, ALICE, 0, 1, market=True))
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.LIMIT_MAX_NOTIONAL]
    assert risk.balance(ALICE, USD) == (100_000, 0)


def test_positions_stay_bounded_without_a_position_limit():
    risk, seq = funded()
    risk.positions[ALICE, 0, L.POS_NET] = L.AMOUNT_LIMIT - 5
    risk.positions[BOB, 0, L.POS_NET] = -(L.AMOUNT_LIMIT - 5)
    batch = commands(
        buy(seq(), 1, ALICE, 1, 6),
        buy(seq(), 2, ALICE, 1, 5),
        sell(seq(), 3, BOB, 1, 6),
        sell(seq(), 4, BOB, 1, 5),
        sell(seq(), 5, ALICE, 1, 6),  # reducing a position is never bounded
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.LIMIT_POSITION, Reason.OK] * 2 + [Reason.OK]


def test_configs_past_the_int64_bounds_are_refused_naming_the_field_and_the_bound():
    assert MAX_QTY == MATCHING_MAX_QTY == 2**35 - 1
    assert InstrumentConfig(symbol=1, base=1, quote=0).max_qty == MAX_QTY  # matching's bound
    with pytest.raises(ValueError, match=r"AccountLimits\.max_position = .*2\*\*61"):
        AccountLimits(max_position=L.AMOUNT_LIMIT + 1)
    with pytest.raises(ValueError, match=r"RiskConfig\.order_capacity = .*2\*\*28"):
        RiskConfig(order_capacity=2**28 + 1)


# --- market orders ----------------------------------------------------------------------------


def test_market_buy_is_held_at_best_ask_plus_band_on_the_tick():
    risk, seq = funded({"market_band_bps": 500, "tick_size": 5})
    risk.post_trade(events(ev(EventType.BOOK_TOP, 1, 0, 0, S, 200, 7, other_id=1)))
    batch = commands(buy(seq(), 1, ALICE, 0, 10, market=True))
    risk.pre_trade(batch)
    assert batch["reason"][0] == 0
    assert batch["price"][0] == 210  # 200 + 5 %
    assert risk.order_hold(1) == 2100


def test_market_buy_without_any_price_is_refused_and_market_sell_holds_base():
    risk, seq = funded()
    batch = commands(
        buy(seq(), 1, ALICE, 0, 10, market=True), sell(seq(), 2, BOB, 0, 4, market=True)
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.PRICE_COLLAR, Reason.OK]
    assert risk.balance(BOB, BTC) == (996, 4)


# --- kill switch and halts --------------------------------------------------------------------


def test_account_kill_switch_blocks_new_orders_until_released_but_not_cancels():
    risk, seq = funded()
    batch = commands(
        admin(seq(), CommandType.KILL_SWITCH, ALICE),
        buy(seq(), 1, ALICE, 10, 1),
        buy(seq(), 2, BOB, 10, 1),
        cancel(seq(), 5, ALICE),
        admin(seq(), CommandType.KILL_SWITCH_RELEASE, ALICE),
        buy(seq(), 3, ALICE, 10, 1),
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [0, Reason.KILL_SWITCH, 0, 0, 0, 0]


def test_global_kill_switch_blocks_everyone():
    risk, seq = funded()
    batch = commands(
        admin(seq(), CommandType.KILL_SWITCH, 0),
        buy(seq(), 1, ALICE, 10, 1),
        sell(seq(), 2, BOB, 10, 1),
        admin(seq(), CommandType.KILL_SWITCH_RELEASE, 0),
        buy(seq(), 3, ALICE, 10, 1),
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [0, Reason.KILL_SWITCH, Reason.KILL_SWITCH, 0, 0]


def test_kill_switch_cancellations_from_matching_release_holds():
    risk, seq = funded()
    risk.pre_trade(commands(buy(seq(), 1, ALICE, 10, 5), admin(seq(), CommandType.KILL_SWITCH, 1)))
    risk.post_trade(
        events(ev(EventType.CANCELLED, 2, 1, ALICE, B, 10, 5, flags=EventFlag.DONE, reason=6))
    )
    assert risk.balance(ALICE, USD) == (100_000, 0)


def test_halted_symbol_refuses_new_orders_until_resumed():
    risk, seq = funded()
    batch = commands(
        admin(seq(), CommandType.HALT, symbol=BTCUSD),
        buy(seq(), 1, ALICE, 10, 1),
        admin(seq(), CommandType.RESUME, symbol=BTCUSD),
        buy(seq(), 2, ALICE, 10, 1),
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [0, Reason.SYMBOL_HALTED, 0, 0]


def test_unknown_symbol_is_refused():
    risk, seq = funded()
    batch = commands(buy(seq(), 1, ALICE, 10, 1, symbol=9))
    risk.pre_trade(batch)
    assert reasons(batch) == [Reason.UNKNOWN_SYMBOL]


# --- persistence and edges --------------------------------------------------------------------


def test_snapshot_restore_gives_same_hash_and_same_future():
    risk, seq = funded({"taker_fee_bps": 7})
    risk.pre_trade(commands(buy(seq(), 1, ALICE, 100, 10), sell(seq(), 2, BOB, 120, 3)))
    twin = RiskEngine.restore(risk.snapshot())
    assert twin.state_hash() == risk.state_hash()
    for engine in (risk, twin):
        engine.post_trade(events(*trade(9, (7, BOB, S), (1, ALICE, B), 100, 4)))
    assert twin.state_hash() == risk.state_hash()
    assert twin.balance(ALICE, USD) == risk.balance(ALICE, USD)


def test_wrong_batch_dtype_is_an_error_naming_the_expected_dtype():
    risk = make()
    with pytest.raises(TypeError, match="COMMAND_DTYPE"):
        risk.pre_trade(np.zeros(3, np.int64))


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match=r"taker_fee_bps = -1 .*0\.\.10000"):
        InstrumentConfig(symbol=1, base=1, quote=0, taker_fee_bps=-1)
    with pytest.raises(ValueError, match="a listed asset"):
        RiskConfig(instruments=[InstrumentConfig(symbol=1, base=5, quote=0)])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 40)), max_size=300))
def test_order_table_behaves_like_a_dict(ops):
    keys, rows = orders.new_table(40)
    glob = np.zeros(8, np.int64)  # G_FREE_HEAD = 0: the whole pool is free
    model: dict[int, int] = {}
    for add, oid in ops:
        row = orders.find(keys, oid)
        assert (row >= 0) == (oid in model)
        if add and oid not in model:
            row = orders.insert(keys, rows, glob, oid)
            rows[row, 0] = oid * 3
            model[oid] = oid * 3
        elif not add and oid in model:
            orders.remove(keys, rows, glob, oid)
            del model[oid]
        for k, v in model.items():
            r = orders.find(keys, k)
            assert r >= 0 and rows[r, 0] == v
        rows_in_use = [orders.find(keys, k) for k in model]
        assert len(set(rows_in_use)) == len(model)
    assert int((keys[:, 0] != 0).sum()) == len(model)


def test_replace_of_an_order_that_may_have_unsettled_fills_is_held_in_full():
    risk, seq = funded(usd=2_000)
    placed(risk, commands(buy(seq(), 1, ALICE, 100, 10), buy(seq(), 2, ALICE, 90, 10)))
    assert risk.balance(ALICE, USD) == (100, 1_900)
    batch = commands(
        sell(seq(), 3, BOB, 95, 5),  # may trade with order 1 (at 100), not with order 2 (90)
        replace(seq(), 2, ALICE, 91, 10),  # order 2 cannot have moved: needs 10 more
        replace(seq(), 1, ALICE, 100, 10),  # order 1 may have filled: needs 1000 in full
    )
    risk.pre_trade(batch)
    assert reasons(batch) == [0, 0, Reason.INSUFFICIENT_FUNDS]
    assert risk.balance(ALICE, USD) == (90, 1_910)
    # once settled, the same replace needs only the difference (here none)
    ack(risk, batch)
    r = commands(replace(seq(), 1, ALICE, 100, 10))
    risk.pre_trade(r)
    assert reasons(r) == [0]
    assert risk.balance(ALICE, USD) == (90, 1_910)


def test_replace_held_in_full_returns_the_excess_when_matching_confirms():
    risk, seq = funded(usd=3_000)
    placed(risk, commands(buy(seq(), 1, ALICE, 100, 10)))
    batch = commands(sell(seq(), 2, BOB, 100, 4), replace(seq(), 1, ALICE, 100, 10))
    risk.pre_trade(batch)
    assert risk.balance(ALICE, USD) == (1_000, 2_000)
    s2, s3 = int(batch["seq"][0]), int(batch["seq"][1])
    risk.post_trade(
        events(
            ev(EventType.ACCEPTED, s2, 2, BOB, S, 100, 4),
            *trade(s2, (2, BOB, S), (1, ALICE, B), 100, 4, taker_done=True),
            ev(EventType.REPLACED, s3, 1, ALICE, B, 100, 10),
        )
    )
    assert risk.order_hold(1) == 1_000
    assert risk.balance(ALICE, USD) == (3_000 - 400 - 1_000, 1_000)


def test_unsettled_tracking_spans_batches_until_settlement_catches_up():
    """A pipelined stage pre-trades batch B before A's events arrive: still safe."""
    risk, seq = funded(usd=2_000)
    placed(risk, commands(buy(seq(), 1, ALICE, 100, 10)))
    a = commands(sell(seq(), 2, BOB, 100, 4))
    risk.pre_trade(a)
    b = commands(replace(seq(), 1, ALICE, 100, 10))
    risk.pre_trade(b)  # A's sell may have filled order 1: held in full
    assert risk.balance(ALICE, USD) == (0, 2_000)
    ack(risk, a)  # A settled, B not yet: the round stays open
    assert risk.glob[L.G_ROUND_FIRST_SEQ] != 0
    ack(risk, b)
    assert risk.glob[L.G_ROUND_FIRST_SEQ] == 0
