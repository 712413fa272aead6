"""The matching rules, one scenario each: read these to learn what the engine does.

Events are shown as (kind, order_id, other_id, price, qty, account, side, reason, flags).
"""

from __future__ import annotations

import numpy as np
import pytest

from stages.matching import EventBufferFull, MatchingEngine, SymbolSpec
from stages.records import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    CommandFlag,
    CommandType,
    EventFlag,
    EventType,
    OrderType,
    Reason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

IOC, FOK = TimeInForce.IOC, TimeInForce.FOK
BUY, SELL = Side.BUY, Side.SELL
DONE, MAKER, TAKER = EventFlag.DONE, EventFlag.MAKER, EventFlag.TAKER


class Desk:
    """An engine plus a sequence counter: each method sends one command, returns its events."""

    def __init__(self, *specs: SymbolSpec, emit_book_top: bool = True) -> None:
        self.engine = MatchingEngine(specs or [SymbolSpec(1)], emit_book_top=emit_book_top)
        self.seq = 0

    def send(self, **fields) -> list[tuple]:
        self.seq += 1
        cmd = np.zeros(1, dtype=COMMAND_DTYPE)
        cmd["seq"] = self.seq
        cmd["symbol"] = 1
        cmd["account"] = 1
        for k, v in fields.items():
            cmd[k] = v
        return [summary(e) for e in self.engine.process(cmd)]

    def limit(self, oid, side, price, qty, account=1, tif=TimeInForce.GTC, **kw):
        return self.send(kind=CommandType.NEW, order_id=oid, side=side, price=price, qty=qty,
                         account=account, tif=tif, **kw)  # fmt: skip

    def market(self, oid, side, qty, price=0, account=1, **kw):
        return self.send(kind=CommandType.NEW, order_type=OrderType.MARKET, order_id=oid,
                         side=side, price=price, qty=qty, account=account, **kw)  # fmt: skip

    def post_only(self, oid, side, price, qty, account=1):
        return self.limit(oid, side, price, qty, account, flags=CommandFlag.POST_ONLY)

    def cancel(self, oid, account=1):
        return self.send(kind=CommandType.CANCEL, order_id=oid, account=account)

    def reduce(self, oid, by, account=1):
        return self.send(kind=CommandType.REDUCE, order_id=oid, qty=by, account=account)

    def replace(self, oid, price, qty, account=1):
        return self.send(kind=CommandType.REPLACE, order_id=oid, price=price, qty=qty,
                         account=account)  # fmt: skip

    def queue(self, side, price) -> list[int]:
        """Order ids resting at one price, in time priority."""
        rows = self.engine.resting_orders()
        return [int(r[3]) for r in rows if r[1] == side and r[2] == price]


def summary(e) -> tuple:
    """(kind name, order_id, other_id, price, qty, account, side, reason name, flags)."""
    return (
        EventType(e["kind"]).name,
        int(e["order_id"]),
        int(e["other_id"]),
        int(e["price"]),
        int(e["qty"]),
        int(e["account"]),
        int(e["side"]),
        Reason(e["reason"]).name,
        int(e["flags"]),
    )


def kinds(events: list[tuple]) -> list[str]:
    return [e[0] for e in events]


def without_tops(events: list[tuple]) -> list[tuple]:
    return [e for e in events if e[0] != "BOOK_TOP"]


STP = SelfTradePrevention


# ------------------------------------------------------------------ resting and price-time
def test_a_limit_order_that_does_not_cross_rests_and_moves_the_top():
    d = Desk()
    assert d.limit(1, BUY, 100, 5) == [
        ("ACCEPTED", 1, 0, 100, 5, 1, BUY, "OK", 0),
        ("BOOK_TOP", 0, 1, 100, 5, 0, BUY, "OK", 0),  # other_id = order count at the level
    ]
    assert d.engine.best_bid(1) == (100, 5)
    assert d.engine.best_ask(1) is None


def test_trades_happen_at_the_resting_price_best_price_first_then_oldest_first():
    d = Desk()
    d.limit(1, SELL, 101, 5, account=2)
    d.limit(2, SELL, 100, 5, account=2)
    d.limit(3, SELL, 100, 5, account=3)
    ev = d.limit(4, BUY, 102, 12)
    assert without_tops(ev) == [
        ("ACCEPTED", 4, 0, 102, 12, 1, BUY, "OK", 0),
        ("TRADE", 4, 2, 100, 5, 1, BUY, "OK", TAKER),  # taker's side first
        ("TRADE", 2, 4, 100, 5, 2, SELL, "OK", MAKER | DONE),  # then the maker's
        ("TRADE", 4, 3, 100, 5, 1, BUY, "OK", TAKER),
        ("TRADE", 3, 4, 100, 5, 3, SELL, "OK", MAKER | DONE),
        ("TRADE", 4, 1, 101, 2, 1, BUY, "OK", TAKER | DONE),
        ("TRADE", 1, 4, 101, 2, 2, SELL, "OK", MAKER),
    ]
    assert d.engine.best_ask(1) == (101, 3)


def test_book_top_is_reported_once_per_side_per_command_and_empty_side_is_zero():
    d = Desk()
    d.limit(1, SELL, 100, 5, account=2)
    ev = d.limit(2, BUY, 100, 5)
    assert ev[-1] == ("BOOK_TOP", 0, 0, 0, 0, 0, SELL, "OK", 0)
    assert kinds(ev).count("BOOK_TOP") == 1  # the bid side never changed


def test_book_top_events_can_be_switched_off():
    d = Desk(emit_book_top=False)
    assert kinds(d.limit(1, BUY, 100, 5)) == ["ACCEPTED"]


def test_depth_gives_price_total_qty_and_count_best_first():
    d = Desk()
    for oid, price in enumerate([99, 100, 100, 98], start=1):
        d.limit(oid, BUY, price, 2)
    d.limit(9, SELL, 103, 1)
    bids, asks = d.engine.depth(1, 2)
    assert bids.tolist() == [[100, 4, 2], [99, 2, 1]]
    assert asks.tolist() == [[103, 1, 1]]


# ------------------------------------------------------------------ time in force
def test_ioc_fills_what_it_can_and_cancels_the_rest():
    d = Desk()
    d.limit(1, SELL, 100, 3, account=2)
    ev = without_tops(d.limit(2, BUY, 100, 5, tif=IOC))
    assert ev[-1] == ("CANCELLED", 2, 0, 100, 2, 1, BUY, "IOC_REMAINDER", DONE)
    assert d.engine.open_orders() == 0


def test_fok_that_cannot_fill_completely_does_nothing():
    d = Desk()
    d.limit(1, SELL, 100, 3, account=2)
    ev = d.limit(2, BUY, 100, 5, tif=FOK)
    assert ev == [
        ("ACCEPTED", 2, 0, 100, 5, 1, BUY, "OK", 0),
        ("CANCELLED", 2, 0, 100, 5, 1, BUY, "FOK_NOT_FILLED", DONE),
    ]
    assert d.engine.best_ask(1) == (100, 3)


def test_fok_that_can_fill_trades_everything():
    d = Desk()
    d.limit(1, SELL, 100, 3, account=2)
    d.limit(2, SELL, 101, 3, account=2)
    ev = without_tops(d.limit(3, BUY, 101, 5, tif=FOK))
    assert kinds(ev) == ["ACCEPTED"] + ["TRADE"] * 4
    assert ev[-2][-1] == TAKER | DONE


def test_fok_does_not_count_own_orders_that_stp_would_remove():
    d = Desk()
    d.limit(1, SELL, 100, 5, account=1)  # own order: cancelled by STP, not traded
    d.limit(2, SELL, 100, 3, account=2)
    ev = d.limit(3, BUY, 100, 5, tif=FOK, stp=STP.CANCEL_RESTING)
    assert ev[-1][7] == "FOK_NOT_FILLED"
    assert d.engine.open_orders() == 2  # nothing happened


# ------------------------------------------------------------------ market orders
def test_market_order_sweeps_levels_and_never_rests():
    d = Desk()
    d.limit(1, SELL, 100, 2, account=2)
    d.limit(2, SELL, 105, 2, account=2)
    ev = without_tops(d.market(3, BUY, 5))
    assert [e[3] for e in ev if e[0] == "TRADE"] == [100, 100, 105, 105]
    assert ev[-1] == ("CANCELLED", 3, 0, 0, 1, 1, BUY, "MARKET_NO_LIQUIDITY", DONE)
    assert d.engine.open_orders() == 0


def test_protected_market_order_does_not_trade_beyond_its_price():
    d = Desk()
    d.limit(1, SELL, 100, 2, account=2)
    d.limit(2, SELL, 105, 2, account=2)
    ev = without_tops(d.market(3, BUY, 5, price=102))
    assert [e[3] for e in ev if e[0] == "TRADE"] == [100, 100]
    assert ev[-1] == ("CANCELLED", 3, 0, 102, 3, 1, BUY, "MARKET_NO_LIQUIDITY", DONE)
    assert d.engine.best_ask(1) == (105, 2)


def test_protected_market_sell_does_not_trade_below_its_price():
    d = Desk()
    d.limit(1, BUY, 100, 2, account=2)
    d.limit(2, BUY, 95, 2, account=2)
    ev = without_tops(d.market(3, SELL, 4, price=98))
    assert [e[3] for e in ev if e[0] == "TRADE"] == [100, 100]
    assert d.engine.best_bid(1) == (95, 2)


# ------------------------------------------------------------------ post-only
def test_post_only_rests_when_it_would_not_take():
    d = Desk()
    d.limit(1, SELL, 101, 2, account=2)
    assert kinds(d.post_only(2, BUY, 100, 2)) == ["ACCEPTED", "BOOK_TOP"]


def test_post_only_that_would_take_is_rejected_not_repriced():
    d = Desk()
    d.limit(1, SELL, 100, 2, account=2)
    assert d.post_only(2, BUY, 100, 2) == [
        ("REJECTED", 2, 0, 100, 2, 1, BUY, "POST_ONLY_WOULD_TAKE", 0)
    ]
    assert d.engine.best_bid(1) is None


def test_post_only_order_moved_across_the_spread_is_rejected_and_unchanged():
    d = Desk()
    d.limit(1, SELL, 105, 2, account=2)
    d.post_only(2, BUY, 100, 2)
    assert d.replace(2, 105, 2)[0][7] == "POST_ONLY_WOULD_TAKE"
    assert d.engine.best_bid(1) == (100, 2)


# ------------------------------------------------------------------ self-trade prevention
def self_cross(stp, own_qty=5, incoming_qty=3):
    """Account 1 rests a sell at 100 behind account 2's, then buys through both."""
    d = Desk()
    d.limit(1, SELL, 100, 2, account=2)
    d.limit(2, SELL, 100, own_qty, account=1)
    d.limit(3, SELL, 100, 4, account=2)
    return d, without_tops(d.limit(9, BUY, 100, incoming_qty + 2, stp=stp))


def test_stp_none_trades_with_yourself():
    _, ev = self_cross(STP.NONE)
    assert ("TRADE", 9, 2, 100, 3, 1, BUY, "OK", TAKER | DONE) in ev


def test_stp_cancel_resting_removes_your_resting_order_and_keeps_matching():
    d, ev = self_cross(STP.CANCEL_RESTING)
    assert ev[3] == ("CANCELLED", 2, 0, 100, 5, 1, SELL, "SELF_TRADE", DONE)
    assert ev[4] == ("TRADE", 9, 3, 100, 3, 1, BUY, "OK", TAKER | DONE)
    assert d.queue(SELL, 100) == [3]


def test_stp_cancel_aggressor_cancels_the_rest_of_the_incoming_order():
    d, ev = self_cross(STP.CANCEL_AGGRESSOR)
    assert ev[3:] == [("CANCELLED", 9, 0, 100, 3, 1, BUY, "SELF_TRADE", DONE)]
    assert d.queue(SELL, 100) == [2, 3]


def test_stp_cancel_both_cancels_the_incoming_rest_and_the_resting_order():
    d, ev = self_cross(STP.CANCEL_BOTH)
    assert ev[3:] == [
        ("CANCELLED", 9, 0, 100, 3, 1, BUY, "SELF_TRADE", DONE),
        ("CANCELLED", 2, 0, 100, 5, 1, SELL, "SELF_TRADE", DONE),
    ]
    assert d.queue(SELL, 100) == [3]


def test_stp_decrement_and_cancel_reduces_both_and_cancels_the_smaller():
    d, ev = self_cross(STP.DECREMENT_AND_CANCEL, own_qty=5, incoming_qty=3)
    # incoming has 3 left after the first trade; resting own order has 5: both lose 3
    assert ev[3:] == [
        ("CANCELLED", 9, 0, 100, 3, 1, BUY, "SELF_TRADE", DONE),
        ("CANCELLED", 2, 0, 100, 3, 1, SELL, "SELF_TRADE", 0),
    ]
    assert d.queue(SELL, 100) == [2, 3]  # own order keeps its place with 2 left
    assert d.engine.depth(1, 1)[1].tolist() == [[100, 6, 2]]


def test_stp_decrement_and_cancel_with_a_larger_incoming_order_keeps_matching():
    _, ev = self_cross(STP.DECREMENT_AND_CANCEL, own_qty=2, incoming_qty=5)
    assert ev[3:] == [
        ("CANCELLED", 9, 0, 100, 2, 1, BUY, "SELF_TRADE", 0),
        ("CANCELLED", 2, 0, 100, 2, 1, SELL, "SELF_TRADE", DONE),
        ("TRADE", 9, 3, 100, 3, 1, BUY, "OK", TAKER | DONE),
        ("TRADE", 3, 9, 100, 3, 2, SELL, "OK", MAKER),
    ]


# ------------------------------------------------------------------ cancel, reduce, replace
def test_cancel_removes_the_open_quantity():
    d = Desk()
    d.limit(1, BUY, 100, 5)
    assert d.cancel(1)[0] == ("CANCELLED", 1, 0, 100, 5, 1, BUY, "USER_CANCEL", DONE)
    assert d.engine.open_orders() == 0


def test_cancel_of_another_accounts_order_is_refused():
    d = Desk()
    d.limit(1, BUY, 100, 5, account=1)
    assert d.cancel(1, account=2)[0][7] == "NOT_OWNER"
    assert d.engine.open_orders() == 1


def test_cancel_of_an_unknown_or_finished_order_is_refused():
    d = Desk()
    assert d.cancel(42)[0][7] == "UNKNOWN_ORDER"
    d.limit(1, BUY, 100, 5)
    d.cancel(1)
    assert d.cancel(1)[0][7] == "UNKNOWN_ORDER"


def test_reduce_keeps_time_priority():
    d = Desk()
    d.limit(1, BUY, 100, 5)
    d.limit(2, BUY, 100, 5)
    assert d.reduce(1, 2)[0] == ("REPLACED", 1, 0, 100, 3, 1, BUY, "OK", 0)
    assert d.queue(BUY, 100) == [1, 2]


def test_reduce_by_all_or_more_is_refused_use_cancel():
    d = Desk()
    d.limit(1, BUY, 100, 5)
    assert d.reduce(1, 5)[0][7] == "REDUCE_TOO_LARGE"


def test_replace_to_a_smaller_qty_at_the_same_price_keeps_priority():
    d = Desk()
    d.limit(1, BUY, 100, 5)
    d.limit(2, BUY, 100, 5)
    assert d.replace(1, 100, 4)[0] == ("REPLACED", 1, 0, 100, 4, 1, BUY, "OK", 0)
    assert d.queue(BUY, 100) == [1, 2]


def test_replace_to_a_larger_qty_loses_priority():
    d = Desk()
    d.limit(1, BUY, 100, 5)
    d.limit(2, BUY, 100, 5)
    d.replace(1, 100, 6)
    assert d.queue(BUY, 100) == [2, 1]


def test_replace_to_a_new_price_loses_priority():
    d = Desk()
    d.limit(1, BUY, 100, 5)
    d.limit(2, BUY, 101, 5)
    d.replace(1, 101, 5)
    assert d.queue(BUY, 101) == [2, 1]


def test_replace_that_crosses_executes_like_a_new_order_and_rests_the_rest():
    d = Desk()
    d.limit(1, SELL, 102, 3, account=2)
    d.limit(2, BUY, 100, 5)
    ev = without_tops(d.replace(2, 102, 5))
    assert ev == [
        ("REPLACED", 2, 0, 102, 5, 1, BUY, "OK", 0),
        ("TRADE", 2, 1, 102, 3, 1, BUY, "OK", TAKER),
        ("TRADE", 1, 2, 102, 3, 2, SELL, "OK", MAKER | DONE),
    ]
    assert d.engine.best_bid(1) == (102, 2)


# ------------------------------------------------------------------ validation
RULES = SymbolSpec(1, tick_size=5, lot_size=10, min_qty=20, max_qty=1000,
                   price_band_low=50, price_band_high=150)  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"symbol": 9}, "UNKNOWN_SYMBOL"),
        ({"side": 2}, "INVALID_COMMAND"),
        ({"tif": 7}, "INVALID_COMMAND"),
        ({"stp": 9}, "INVALID_COMMAND"),
        ({"flags": 2}, "INVALID_COMMAND"),
        ({"order_id": 0}, "INVALID_COMMAND"),
        ({"qty": 0}, "INVALID_QTY"),
        ({"qty": -10}, "INVALID_QTY"),
        ({"price": 0}, "INVALID_PRICE"),
        ({"price": -5}, "INVALID_PRICE"),
        ({"qty": 25}, "LOT_SIZE"),
        ({"qty": 10}, "MIN_QTY"),
        ({"qty": 1010}, "MAX_QTY"),
        ({"price": 101}, "TICK_SIZE"),
        ({"price": 45}, "PRICE_BAND"),
        ({"price": 155}, "PRICE_BAND"),
    ],
)
def test_invalid_new_orders_are_rejected_with_a_reason_and_touch_nothing(fields, reason):
    d = Desk(RULES)
    order = {"kind": CommandType.NEW, "order_id": 1, "side": BUY, "price": 100, "qty": 20}
    ev = d.send(**{**order, **fields})
    assert len(ev) == 1
    assert ev[0][0] == "REJECTED"
    assert ev[0][7] == reason
    assert d.engine.open_orders() == 0


def test_replace_breaking_a_symbol_rule_is_rejected_and_the_order_stays():
    d = Desk(RULES)
    d.limit(1, BUY, 100, 20)
    assert d.replace(1, 101, 20)[0][7] == "TICK_SIZE"
    assert d.replace(1, 100, 15)[0][7] == "LOT_SIZE"
    assert d.engine.best_bid(1) == (100, 20)


def test_market_orders_are_not_held_to_tick_or_band():
    d = Desk(RULES)
    assert d.market(1, BUY, 20, price=999)[0][0] == "ACCEPTED"


def test_an_open_order_id_cannot_be_reused_but_a_finished_one_can():
    d = Desk(SymbolSpec(1), SymbolSpec(2))
    d.limit(1, BUY, 100, 5)
    assert (
        d.send(kind=CommandType.NEW, order_id=1, symbol=2, side=BUY, price=100, qty=5)[0][7]
        == "DUPLICATE_ORDER_ID"
    )  # ids are unique across symbols
    d.cancel(1)
    assert d.limit(1, BUY, 100, 5)[0][0] == "ACCEPTED"


def test_a_command_rejected_upstream_is_reported_and_touches_nothing():
    d = Desk()
    d.limit(1, SELL, 100, 5, account=2)
    ev = d.send(kind=CommandType.NEW, order_id=2, side=BUY, price=100, qty=5,
                reason=Reason.INSUFFICIENT_FUNDS)  # fmt: skip
    assert ev == [("REJECTED", 2, 0, 100, 5, 1, BUY, "INSUFFICIENT_FUNDS", 0)]
    assert d.engine.best_ask(1) == (100, 5)


def test_unknown_command_kind_is_rejected():
    assert Desk().send(kind=99)[0][7] == "INVALID_COMMAND"


# ------------------------------------------------------------------ admin commands
def test_halt_rejects_new_orders_and_replaces_but_allows_cancels():
    d = Desk()
    d.limit(1, BUY, 100, 5)
    assert d.send(kind=CommandType.HALT)[0][0] == "HALTED"
    assert d.limit(2, BUY, 100, 5)[0][7] == "SYMBOL_HALTED"
    assert d.replace(1, 101, 5)[0][7] == "SYMBOL_HALTED"
    assert d.reduce(1, 1)[0][0] == "REPLACED"
    assert d.cancel(1)[0][0] == "CANCELLED"
    assert d.send(kind=CommandType.RESUME)[0][0] == "RESUMED"
    assert d.limit(3, BUY, 100, 5)[0][0] == "ACCEPTED"


def test_halt_of_an_unknown_symbol_is_rejected():
    assert Desk().send(kind=CommandType.HALT, symbol=5)[0][7] == "UNKNOWN_SYMBOL"


def test_kill_switch_cancels_every_resting_order_of_the_account_in_every_book():
    d = Desk(SymbolSpec(1), SymbolSpec(2))
    d.limit(1, BUY, 100, 5, account=7)
    d.limit(2, SELL, 110, 5, account=8)
    d.send(kind=CommandType.NEW, order_id=3, symbol=2, side=SELL, price=50, qty=1, account=7)
    ev = d.send(kind=CommandType.KILL_SWITCH, account=7)
    assert without_tops(ev) == [
        ("CANCELLED", 1, 0, 100, 5, 7, BUY, "KILL_SWITCH_CANCEL", DONE),
        ("CANCELLED", 3, 0, 50, 1, 7, SELL, "KILL_SWITCH_CANCEL", DONE),
        ("KILL_SWITCH", 0, 0, 0, 0, 7, 0, "OK", 0),
    ]
    assert kinds(ev)[-2:] == ["BOOK_TOP", "BOOK_TOP"]  # book tops come last
    assert d.engine.open_orders() == 1
    # matching does not block later orders (risk does)
    assert d.limit(4, BUY, 100, 5, account=7)[0][0] == "ACCEPTED"
    assert d.send(kind=CommandType.KILL_SWITCH_RELEASE, account=7)[0][0] == "KILL_SWITCH_RELEASED"


def test_global_kill_switch_cancels_everything():
    d = Desk()
    d.limit(1, BUY, 100, 5, account=7)
    d.limit(2, SELL, 110, 5, account=8)
    d.send(kind=CommandType.KILL_SWITCH, account=0)
    assert d.engine.open_orders() == 0


def test_deposit_and_withdraw_become_signed_balance_events():
    d = Desk()
    assert d.send(kind=CommandType.DEPOSIT, account=3, symbol=40, qty=500) == [
        ("BALANCE", 0, 0, 0, 500, 3, 0, "OK", 0)
    ]
    assert d.send(kind=CommandType.WITHDRAW, account=3, symbol=40, qty=200)[0][4] == -200
    assert d.send(kind=CommandType.WITHDRAW, qty=0)[0][7] == "INVALID_QTY"


# ------------------------------------------------------------------ stamps and buffers
def test_events_copy_seq_and_ts_ingest_and_stamp_dt_match():
    engine = MatchingEngine([SymbolSpec(1)])
    cmds = np.zeros(2, dtype=COMMAND_DTYPE)
    cmds["seq"] = [5, 6]
    cmds["ts_ingest"] = [1, 0]
    cmds["kind"] = CommandType.DEPOSIT
    cmds["qty"] = 1
    ev = engine.process(cmds)
    assert ev["seq"].tolist() == [5, 6]
    assert ev["ts_ingest"].tolist() == [1, 0]
    assert ev["dt_match"][0] == 2**32 - 1  # perf_counter_ns() - 1 saturates
    assert ev["dt_match"][1] == 0  # no ingest stamp, no latency


def test_process_rejects_arrays_of_the_wrong_dtype():
    engine = MatchingEngine([SymbolSpec(1)])
    with pytest.raises(TypeError, match="COMMAND_DTYPE"):
        engine.process(np.zeros(3, dtype=np.int64))


def test_engine_grows_past_its_initial_capacity():
    engine = MatchingEngine([SymbolSpec(1)], order_capacity=1)
    cmds = np.zeros(5000, dtype=COMMAND_DTYPE)
    cmds["kind"] = CommandType.NEW
    cmds["symbol"] = 1
    cmds["account"] = 1
    cmds["order_id"] = np.arange(1, 5001)
    cmds["price"] = np.arange(1, 5001)  # 5000 levels, far beyond every starting size
    cmds["qty"] = 1
    engine.process(cmds)
    assert engine.open_orders() == 5000
    assert engine.depth(1, 1)[0].tolist() == [[5000, 1, 1]]
    ev = engine.process(np.array([(0, 0, 0, 9999, 0, 5000, 2, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0)],
                                 dtype=COMMAND_DTYPE))  # fmt: skip
    assert (ev["kind"] == 3).sum() == 10000  # one market sell sweeps all 5000 levels
    assert engine.open_orders() == 0


def test_an_empty_batch_produces_no_events():
    engine = MatchingEngine([SymbolSpec(1)])
    assert len(engine.process(np.zeros(0, dtype=COMMAND_DTYPE))) == 0


def test_process_into_wants_an_event_buffer():
    engine = MatchingEngine([SymbolSpec(1)])
    with pytest.raises(TypeError, match="EVENT_DTYPE"):
        engine.process_into(np.zeros(1, dtype=COMMAND_DTYPE), np.zeros(8, dtype=COMMAND_DTYPE))


def test_process_into_a_buffer_too_small_for_one_command_says_how_much_it_needs():
    engine = MatchingEngine([SymbolSpec(1)])
    cmds = np.zeros(40, dtype=COMMAND_DTYPE)
    cmds["kind"], cmds["symbol"], cmds["account"], cmds["qty"] = CommandType.NEW, 1, 1, 1
    cmds["order_id"] = np.arange(1, 41)
    cmds["price"] = 100
    cmds["side"][:39] = SELL
    cmds["side"][39], cmds["price"][39], cmds["qty"][39] = BUY, 0, 39  # market: sweeps 39
    cmds["order_type"][39] = OrderType.MARKET
    out = np.zeros(120, dtype=EVENT_DTYPE)  # the 39 resting orders take 78 events
    with pytest.raises(EventBufferFull) as info:
        engine.process_into(cmds, out)
    full = info.value
    assert full.commands_done == 39  # the sweep was not started
    assert engine.open_orders() == 39
    assert full.events_needed > len(out) - full.events_written
    big = np.zeros(full.events_needed, dtype=EVENT_DTYPE)
    n = engine.process_into(cmds[39:], big)
    assert (big[:n]["kind"] == EventType.TRADE).sum() == 78
    assert engine.open_orders() == 0
