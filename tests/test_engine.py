"""Scenario tests of the in-process Engine: the chain end to end, one rule at a time."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from stages.engine import Engine, EngineConfig
from stages.ingest.throttle import BucketConfig, ThrottleConfig
from stages.records import CommandType, EventType, Reason, TimeInForce
from stages.risk import layout as L
from stages.risk.config import MAX_QTY, AccountLimits, InstrumentConfig, RiskConfig
from tests.risk_builders import (
    BTC,
    BTCUSD,
    USD,
    Seq,
    admin,
    buy,
    commands,
    deposit,
    replace,
    sell,
)

ALICE, BOB = 1, 2


def funded(config: EngineConfig | None = None, usd=10_000, btc=100, settle_every=1):
    """An engine with Alice and Bob funded. ``settle_every=1`` settles each command's fills
    before the next command is checked, which keeps these scenarios easy to follow."""
    config = msgspec.structs.replace(config or EngineConfig(), settle_every=settle_every)
    engine = Engine(config)
    seq = Seq()
    engine.process(
        commands(
            deposit(seq(), ALICE, USD, usd),
            deposit(seq(), ALICE, BTC, btc),
            deposit(seq(), BOB, USD, usd),
            deposit(seq(), BOB, BTC, btc),
        )
    )
    return engine, seq


def kinds(events: np.ndarray) -> list[tuple[str, int]]:
    return [(EventType(e["kind"]).name, int(e["order_id"])) for e in events]


def test_a_cross_settles_both_accounts_and_conserves_money():
    engine, seq = funded()
    before = engine.risk.totals()
    events = engine.process(commands(sell(seq(), 1, BOB, 100, 5), buy(seq(), 2, ALICE, 105, 3)))
    assert ("TRADE", 2) in kinds(events)
    assert engine.risk.balance(ALICE, USD) == (10_000 - 300, 0)
    assert engine.risk.balance(ALICE, BTC) == (103, 0)
    assert engine.risk.balance(BOB, BTC) == (95, 2)  # 2 still offered
    assert engine.risk.totals() == before


def test_a_rejected_command_flows_to_matching_as_one_rejected_event():
    engine, seq = funded(usd=50)
    events = engine.process(commands(buy(seq(), 1, ALICE, 100, 1)))
    assert kinds(events) == [("REJECTED", 1)]
    assert events["reason"][0] == Reason.INSUFFICIENT_FUNDS


def test_malformed_commands_are_refused_at_ingest():
    engine, seq = funded()
    events = engine.process(commands(buy(seq(), 1, ALICE, 100, 0), buy(seq(), 2, 0, 100, 1)))
    assert list(events["reason"]) == [Reason.INVALID_QTY, Reason.UNKNOWN_ACCOUNT]


def test_kill_switch_cancels_resting_orders_releases_holds_and_blocks_new_ones():
    engine, seq = funded()
    engine.process(commands(buy(seq(), 1, ALICE, 90, 10), sell(seq(), 2, ALICE, 120, 4)))
    assert engine.risk.balance(ALICE, USD) == (9_100, 900)
    events = engine.process(
        commands(admin(seq(), CommandType.KILL_SWITCH, ALICE), buy(seq(), 3, ALICE, 90, 1))
    )
    cancelled = events[events["kind"] == EventType.CANCELLED]
    assert set(cancelled["order_id"]) == {1, 2}
    assert set(cancelled["reason"]) == {Reason.KILL_SWITCH_CANCEL}
    assert events["reason"][events["order_id"] == 3][0] == Reason.KILL_SWITCH
    assert engine.risk.balance(ALICE, USD) == (10_000, 0)
    assert engine.risk.balance(ALICE, BTC) == (100, 0)
    assert engine.matching.open_orders() == 0


def test_halt_refuses_orders_until_resume():
    engine, seq = funded()
    events = engine.process(
        commands(
            admin(seq(), CommandType.HALT, symbol=BTCUSD),
            buy(seq(), 1, ALICE, 90, 1),
            admin(seq(), CommandType.RESUME, symbol=BTCUSD),
            buy(seq(), 2, ALICE, 90, 1),
        )
    )
    assert events["reason"][events["order_id"] == 1][0] == Reason.SYMBOL_HALTED
    assert ("ACCEPTED", 2) in kinds(events)


def test_market_buy_is_protected_and_pays_only_what_it_takes():
    cfg = EngineConfig(
        risk=RiskConfig(
            instruments=[InstrumentConfig(symbol=BTCUSD, base=BTC, quote=USD, market_band_bps=1000)]
        )
    )
    engine, seq = funded(cfg)
    engine.process(commands(sell(seq(), 1, BOB, 100, 2), sell(seq(), 2, BOB, 115, 5)))
    batch = commands(buy(seq(), 3, ALICE, 0, 6, market=True))
    events = engine.process(batch)
    assert batch["price"][0] == 110  # best ask 100 + 10 %: never trades at 115
    trades = events[(events["kind"] == EventType.TRADE) & (events["order_id"] == 3)]
    assert list(trades["qty"]) == [2]
    assert engine.risk.balance(ALICE, USD) == (10_000 - 200, 0)  # the remainder is released
    assert engine.risk.balance(ALICE, BTC) == (102, 0)


def test_a_market_sell_is_held_to_the_notional_limit_before_its_window_settles():
    # the case: risk learns the best bid only when a window closes, so early in a
    # window a market sell used to be valued at nothing and pass any notional limit
    cfg = EngineConfig(risk=RiskConfig(default_limits=AccountLimits(max_order_notional=10_000)))
    engine, seq = funded(cfg, usd=100_000, btc=1_000, settle_every=1024)
    events = engine.process(
        commands(
            buy(seq(), 1, BOB, 95, 100),
            buy(seq(), 2, BOB, 95, 100),
            sell(seq(), 3, ALICE, 90, 200),  # limit: 18,000 at its price, 19,000 where it trades
            sell(seq(), 4, ALICE, 0, 200, market=True),  # 19,000 at the bids it would take
            sell(seq(), 5, ALICE, 0, 100, market=True),  # 9,500: within the limit
        )
    )
    rejected = events[events["kind"] == EventType.REJECTED]
    assert list(rejected["order_id"]) == [3, 4]
    assert set(rejected["reason"]) == {Reason.LIMIT_MAX_NOTIONAL}
    trades = events[(events["kind"] == EventType.TRADE) & (events["account"] == ALICE)]
    assert list(trades["order_id"]) == [5] and int(trades["qty"].sum()) == 100


def test_orders_of_max_qty_trade_and_settle_exactly_near_the_bounds():
    big = MAX_QTY  # 2**35 - 1 lots
    price = 2**24  # one order's notional: about 2**59
    inst = InstrumentConfig(symbol=BTCUSD, base=BTC, quote=USD, maker_fee_bps=1, taker_fee_bps=5)
    engine = Engine(EngineConfig(risk=RiskConfig(instruments=[inst]), settle_every=1))
    seq = Seq()
    usd = L.AMOUNT_LIMIT  # every unit of the quote asset there may be
    engine.process(commands(deposit(seq(), ALICE, USD, usd), deposit(seq(), BOB, BTC, 2 * big)))
    before = engine.risk.totals()
    events = engine.process(
        commands(
            sell(seq(), 1, BOB, price, big),
            sell(seq(), 2, BOB, price, big),  # two max_qty orders at one level
            buy(seq(), 3, ALICE, price, big, tif=TimeInForce.FOK),
        )
    )
    tops = events[(events["kind"] == EventType.BOOK_TOP) & (events["side"] == 1)]
    assert [int(q) for q in tops["qty"]] == [big, 2 * big, big]
    notional = price * big
    taker_fee, maker_fee = notional * 5 // 10_000, notional * 1 // 10_000
    assert engine.risk.balance(ALICE, USD) == (usd - notional - taker_fee, 0)
    assert engine.risk.balance(ALICE, BTC) == (big, 0)
    assert engine.risk.balance(BOB, USD) == (notional - maker_fee, 0)
    assert engine.risk.balance(BOB, BTC) == (0, big)  # order 2 still rests
    assert engine.risk.balance(0, USD) == (taker_fee + maker_fee, 0)
    assert engine.risk.totals() == before
    assert engine.matching.best_ask(BTCUSD) == (price, big)


def test_a_notional_limit_needs_the_book_top_events_risk_values_sells_with():
    risk = RiskConfig(default_limits=AccountLimits(max_order_notional=10_000))
    with pytest.raises(ValueError, match=r"EngineConfig\.emit_book_top = False is invalid"):
        EngineConfig(risk=risk, emit_book_top=False)
    EngineConfig(emit_book_top=False)  # no notional limit: nothing is valued at the bid


def test_configs_past_the_matching_bounds_are_refused_naming_the_field_and_the_bound():
    with pytest.raises(ValueError, match=r"EngineConfig\.matching_order_capacity = .*2\*\*28"):
        EngineConfig(matching_order_capacity=2**28 + 1)
    inst = InstrumentConfig(symbol=BTCUSD, base=BTC, quote=USD, max_qty=2**62)  # the old default
    with pytest.raises(ValueError, match=rf"SymbolSpec\.max_qty = {2**62} .*{MAX_QTY}"):
        Engine(EngineConfig(risk=RiskConfig(instruments=[inst])))


def test_replace_after_an_unsettled_fill_is_sized_on_the_real_open_qty():
    engine, seq = funded(usd=1_000, settle_every=4)  # seqs 5..8 share a settlement window
    engine.process(commands(buy(seq(), 1, ALICE, 100, 10)))  # all of alice's dollars held
    events = engine.process(
        commands(
            sell(seq(), 2, BOB, 100, 4),  # fills 4 of order 1 ...
            replace(seq(), 1, ALICE, 100, 10),  # ... so back to 10 open needs 400 more
            sell(seq(), 3, BOB, 100, 10),
        )
    )
    assert events["reason"][events["kind"] == EventType.REJECTED][0] == Reason.INSUFFICIENT_FUNDS
    assert (engine.risk.balances >= 0).all()
    assert engine.risk.balance(ALICE, USD) == (0, 0)
    assert engine.risk.balance(ALICE, BTC) == (110, 0)


def test_throttling_through_the_engine_uses_ingest_timestamps():
    cfg = EngineConfig(throttle=ThrottleConfig(orders=BucketConfig(rate=1, burst=2)))
    engine, seq = funded(cfg)
    batch = commands(*(buy(seq(), i, ALICE, 10, 1, ts=1_000) for i in range(1, 4)))
    events = engine.process(batch)
    assert list(events["reason"][events["kind"] == EventType.REJECTED]) == [Reason.THROTTLED]
    again = commands(buy(seq(), 9, ALICE, 10, 1, ts=1_000 + 10**9))  # a second later
    assert ("ACCEPTED", 9) in kinds(engine.process(again))


def test_seq_must_increase_across_batches():
    engine, seq = funded()
    batch = commands(buy(seq(), 1, ALICE, 10, 1))
    engine.process(batch.copy())
    with pytest.raises(ValueError, match="already applied"):
        engine.process(batch.copy())
    with pytest.raises(ValueError, match="does not increase"):
        engine.process(commands(buy(50, 2, ALICE, 10, 1), buy(49, 3, ALICE, 10, 1)))


def test_snapshot_restore_round_trip_and_same_future():
    engine, seq = funded()
    engine.process(commands(buy(seq(), 1, ALICE, 99, 10), sell(seq(), 2, BOB, 101, 10)))
    twin = Engine.restore(engine.snapshot())
    assert twin.state_hash() == engine.state_hash()
    nxt = commands(sell(seq(), 3, BOB, 99, 4), buy(seq(), 4, ALICE, 101, 20))
    a = engine.process(nxt.copy()).copy()
    b = twin.process(nxt.copy()).copy()
    a["dt_match"] = b["dt_match"] = 0
    assert np.array_equal(a, b)
    assert twin.state_hash() == engine.state_hash()


def test_restore_refuses_bytes_that_are_not_a_snapshot():
    with pytest.raises(ValueError, match="not an engine snapshot"):
        Engine.restore(b"\x01\x02")


def test_config_decodes_from_plain_data_like_toml_and_names_bad_fields():
    data = {
        "risk": {
            "assets": [{"asset": 0, "name": "EUR"}, {"asset": 7, "name": "ETH"}],
            "instruments": [{"symbol": 3, "base": 7, "quote": 0, "taker_fee_bps": 5}],
            "default_limits": {"max_order_qty": 100},
        },
        "throttle": {"orders": {"rate": 100, "burst": 10}},
    }
    cfg = msgspec.convert(data, EngineConfig)
    engine = Engine(cfg)
    assert engine.matching.symbols[0].symbol == 3
    data["risk"]["instruments"][0]["taker_fee_bps"] = 20_000
    with pytest.raises(msgspec.ValidationError, match="taker_fee_bps"):
        msgspec.convert(data, EngineConfig)


def test_fills_settle_when_their_window_closes_however_the_stream_is_batched():
    """Seqs 1..6 form one settlement window: Bob's dollars from the fill at seq 4 are not
    usable at seq 5, and are at seq 7 — in one batch or cut anywhere."""
    seq = Seq()
    stream = commands(
        deposit(seq(), ALICE, USD, 1_000),
        deposit(seq(), BOB, BTC, 10),
        sell(seq(), 1, BOB, 100, 5),
        buy(seq(), 2, ALICE, 100, 5),  # seq 4 fills Bob's sell: Bob is owed 500 USD
        buy(seq(), 3, BOB, 100, 1),  # seq 5: same window, not settled yet
        buy(seq(), 4, ALICE, 90, 1),  # seq 6 closes the window: the fill settles
        buy(seq(), 5, BOB, 100, 1),  # seq 7: Bob can spend his 500 USD
    )
    outcomes = []
    for cuts in ([], [4], [5], [1, 2, 3, 4, 5, 6], [3, 6]):
        engine = Engine(EngineConfig(settle_every=6))
        parts = [engine.process(part.copy()).copy() for part in np.split(stream, cuts)]
        events = np.concatenate(parts)
        outcomes.append(
            (events[["seq", "kind", "order_id", "reason"]].tolist(), engine.state_hash())
        )
    assert all(outcome == outcomes[0] for outcome in outcomes)
    events = dict(
        ((seq_, order_id), (kind, reason)) for seq_, kind, order_id, reason in outcomes[0][0]
    )
    assert events[(5, 3)] == (EventType.REJECTED, Reason.INSUFFICIENT_FUNDS)
    assert events[(7, 5)] == (EventType.ACCEPTED, Reason.OK)
