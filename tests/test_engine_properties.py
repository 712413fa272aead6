"""Hypothesis properties of the whole in-process Engine over random command streams.

After every batch: money is conserved per asset (free + held over all accounts, fee account
included, changes only by applied deposits and withdrawals); no balance is negative; risk
tracks exactly the orders resting in the books, each holding exactly what its open quantity
costs at its price, so an account with no open orders holds nothing. A snapshot taken
between batches, restored and fed the same later batches, ends with the same hash and emits
the same events. However the same stream is cut into batches, the events and the final
state are the same (settlement windows are fixed by seq, not by batch).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.engine import Engine
from stages.records import EventType
from stages.risk import layout as L
from stages.risk.money import hold_amount
from tests.engine_streams import ACCOUNTS, BTC, CONFIG, ETH, USD, batches_strategy, build


def check_invariants(engine: Engine, expected_totals: dict[int, int]) -> None:
    risk = engine.risk
    assert risk.totals() == expected_totals, "money not conserved"
    assert (risk.balances >= 0).all(), "negative balance"
    if engine.unsettled_events:
        return  # the window is open: risk has not seen matching's answers yet
    # risk's order table is exactly the resting orders of the books
    resting = engine.matching.resting_orders()  # symbol, side, price, id, account, open, ...
    live = {oid: risk.order_row(oid) for oid in risk.open_order_ids()}
    assert set(live) == {int(r[3]) for r in resting}
    held = np.zeros_like(risk.balances[:, :, L.HELD])
    for sym, side, p, order_id, acct, open_qty, _, _ in resting:
        row = risk.rows[live[int(order_id)]]
        assert row[L.O_REP_SEQ] == 0
        assert (row[L.O_ACCOUNT], row[L.O_SIDE], row[L.O_OPEN]) == (acct, side, open_qty)
        s = int(risk.sym_index[sym])
        assert row[L.O_PRICE] == p or (side == 0 and row[L.O_PRICE] >= p)
        assert row[L.O_HELD] == hold_amount(risk.symbols, s, int(side), row[L.O_PRICE], open_qty)
        asset = risk.symbols[s, L.SYM_QUOTE if side == 0 else L.SYM_BASE]
        held[acct, asset] += row[L.O_HELD]
    assert (held == risk.balances[:, :, L.HELD]).all(), "holds differ from open orders"
    for a in ACCOUNTS:
        if risk.open_orders(a) == 0:
            assert (risk.balances[a, :, L.HELD] == 0).all()


def run_and_check(batches: list[np.ndarray], snapshot_at: int) -> None:
    engine = Engine(CONFIG)
    totals = dict.fromkeys((USD, BTC, ETH), 0)
    snap = None
    later: list[tuple[np.ndarray, np.ndarray]] = []
    for i, batch in enumerate(batches):
        if i == snapshot_at:
            snap = engine.snapshot()
        original = batch.copy()
        events = engine.process(batch)
        for e in events[events["kind"] == EventType.BALANCE]:
            totals[int(e["symbol"])] += int(e["qty"])
        check_invariants(engine, totals)
        if snap is not None:
            later.append((original, events.copy()))
    if snap is None:
        return
    twin = Engine.restore(snap)
    for original, events in later:
        assert np.array_equal(_stable(twin.process(original)), _stable(events))
    assert twin.state_hash() == engine.state_hash()


def _stable(events: np.ndarray) -> np.ndarray:
    """Events without the wall-clock latency field."""
    out = events.copy()
    out["dt_match"] = 0
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches_strategy, snapshot_at=st.integers(0, 8), funds=st.integers(1, 20_000))
def test_engine_invariants_hold_on_random_streams(batches, snapshot_at, funds):
    run_and_check(build(batches, funds), snapshot_at)


@pytest.mark.slow
@pytest.mark.timeout(170)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches_strategy, snapshot_at=st.integers(0, 8), funds=st.integers(1, 20_000))
def test_engine_invariants_hold_on_many_random_streams(batches, snapshot_at, funds):
    run_and_check(build(batches, funds), snapshot_at)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches_strategy, funds=st.integers(1, 20_000), cuts=st.lists(st.integers(0, 200)))
def test_batch_boundaries_never_change_the_outcome(batches, funds, cuts):
    stream = np.concatenate(build(batches, funds))
    whole = Engine(CONFIG)
    expected = _stable(whole.process(stream.copy()))
    pieces = Engine(CONFIG)
    edges = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    got = [
        _stable(pieces.process(stream[a:b].copy())) for a, b in itertools.pairwise(edges) if b > a
    ]
    assert np.array_equal(np.concatenate(got), expected)
    assert pieces.state_hash() == whole.state_hash()
