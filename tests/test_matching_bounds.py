"""The int64 bounds of the matching engine: every sum it keeps fits, and configs that could
overflow one are refused with the field and the bound.

A level's total quantity (BOOK_TOP, depth) and a FOK order's running total add up the
open quantities of resting orders. The engine holds at most MAX_ORDER_CAPACITY orders
and each is at most MAX_QTY lots, so those sums stay within int64; with the old default
max_qty of 2**62, two resting orders at one price already overflowed.
"""

from __future__ import annotations

import numpy as np
import pytest

from stages.matching import MatchingEngine, OrderPoolFull, SymbolSpec
from stages.matching import engine as matching_engine
from stages.matching.symbols import INT64_MAX, MAX_ORDER_CAPACITY, MAX_QTY
from stages.records import COMMAND_DTYPE, CommandType, EventType, Reason, Side, TimeInForce


def new_orders(*orders: tuple[int, int, int, int], first_seq: int = 1) -> np.ndarray:
    """NEW limit commands, one per (order id, side, price, qty[, tif]) tuple."""
    cmds = np.zeros(len(orders), dtype=COMMAND_DTYPE)
    for i, (oid, side, price, qty, *tif) in enumerate(orders):
        cmds[i]["seq"] = first_seq + i
        cmds[i]["kind"] = CommandType.NEW
        cmds[i]["symbol"] = 1
        cmds[i]["account"] = 1 + oid % 3
        cmds[i]["order_id"] = oid
        cmds[i]["side"] = side
        cmds[i]["price"] = price
        cmds[i]["qty"] = qty
        cmds[i]["tif"] = tif[0] if tif else TimeInForce.GTC
    return cmds


def test_the_bound_keeps_the_largest_level_within_int64_and_is_tight():
    assert MAX_ORDER_CAPACITY * MAX_QTY <= INT64_MAX < MAX_ORDER_CAPACITY * (MAX_QTY + 1)
    assert MAX_QTY == 2**35 - 1
    assert SymbolSpec(1).max_qty == MAX_QTY  # the default is the bound


def test_resting_orders_of_the_default_max_qty_at_one_price_sum_exactly():
    spec = SymbolSpec(1)
    big = spec.max_qty
    engine = MatchingEngine([spec])
    events = engine.process(new_orders(*[(oid, Side.SELL, 2**62, big) for oid in (1, 2, 3)]))
    tops = events[events["kind"] == EventType.BOOK_TOP]
    assert [int(q) for q in tops["qty"]] == [big, 2 * big, 3 * big]
    assert engine.best_ask(1) == (2**62, 3 * big)
    _bids, asks = engine.depth(1, 5)
    assert asks.tolist() == [[2**62, 3 * big, 3]]


def test_fok_adds_up_resting_orders_near_max_qty():
    big = MAX_QTY
    engine = MatchingEngine([SymbolSpec(1)])
    engine.process(new_orders((1, Side.SELL, 100, big - 1), (2, Side.SELL, 101, big - 1)))
    # the first level alone is one lot short; both levels fill it
    events = engine.process(new_orders((3, Side.BUY, 100, big, TimeInForce.FOK), first_seq=3))
    cancelled = events[events["kind"] == EventType.CANCELLED]
    assert list(cancelled["reason"]) == [Reason.FOK_NOT_FILLED]
    events = engine.process(new_orders((4, Side.BUY, 101, big, TimeInForce.FOK), first_seq=4))
    trades = events[(events["kind"] == EventType.TRADE) & (events["order_id"] == 4)]
    assert [int(q) for q in trades["qty"]] == [big - 1, 1]
    assert engine.best_ask(1) == (101, big - 2)


def test_a_max_qty_above_the_bound_is_refused_naming_the_field_and_the_bound():
    with pytest.raises(ValueError, match=rf"SymbolSpec\.max_qty = {MAX_QTY + 1} .*{MAX_QTY}"):
        SymbolSpec(1, max_qty=MAX_QTY + 1)
    with pytest.raises(ValueError, match=r"SymbolSpec\.max_qty = 4611686018427387904"):
        SymbolSpec(1, max_qty=2**62)  # the old default


def test_an_order_capacity_above_the_ceiling_is_refused():
    with pytest.raises(ValueError, match=rf"order_capacity = {MAX_ORDER_CAPACITY + 1} .*2\*\*28"):
        MatchingEngine([SymbolSpec(1)], order_capacity=MAX_ORDER_CAPACITY + 1)


def test_the_order_pool_stops_growing_at_its_ceiling(monkeypatch):
    monkeypatch.setattr(matching_engine, "MAX_ORDER_CAPACITY", 6)
    engine = MatchingEngine([SymbolSpec(1)], order_capacity=4)
    cmds = new_orders(*[(oid, Side.BUY, 100 - oid, 1) for oid in range(1, 9)])
    with pytest.raises(OrderPoolFull, match="holds") as full:
        engine.process(cmds)
    assert full.value.commands_done == 6  # a command needs a free row before it starts
    assert engine.open_orders() == 6
