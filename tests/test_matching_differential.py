"""Differential tests: the compiled engine must behave exactly like the reference book.

Random command streams (every order type, time in force, post-only, STP mode, cancels,
reduces, replaces, bad ids and fields, several symbols, halts, kill switches, upstream
rejections) go through both; events (all fields but dt_match), depth and resting orders
must be identical, however the stream is cut into batches and however small the engine's
starting capacities are.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.matching import EventBufferFull, MatchingEngine, SymbolSpec
from stages.records import COMMAND_DTYPE, CommandType
from tests.reference_book import ReferenceEngine

SPECS = [
    SymbolSpec(1),
    SymbolSpec(
        7, tick_size=5, lot_size=2, min_qty=2, max_qty=40, price_band_low=60, price_band_high=140
    ),
]


def random_stream(seed: int, n: int, odd_rate: float) -> list[tuple]:
    """A realistic-but-nasty command stream: mostly valid orders near a moving mid, the
    ids of earlier orders for cancels/reduces/replaces (sometimes by the wrong account),
    and now and then malformed fields, unknown symbols and ids, admin commands."""
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    owners: dict[int, tuple[int, int, int]] = {}  # order id -> (account, price, qty) entered
    next_id = 1
    for _ in range(n):
        r = rng.random()
        sym = int(rng.choice([1, 1, 7, 7, 3])) if rng.random() < 0.1 else int(rng.choice([1, 7]))
        tick = 5 if sym == 7 else 1
        lot = 2 if sym == 7 else 1
        acct = int(rng.integers(1, 4))
        side = int(rng.integers(0, 2))
        price = int(100 + tick * rng.integers(-4, 5))
        qty = int(lot * rng.choice([1, 1, 2, 3, 5, 8, 25]))
        oid, otype, tif, stp, flags, reason = 0, 0, 0, 0, 0, 0
        if r < 0.55:
            kind = CommandType.NEW
            if owners and rng.random() < 0.05:
                oid = int(rng.choice(list(owners)))  # reuse: duplicate if still open
            else:
                oid = next_id
                next_id += 1
            owners[oid] = (acct, price, qty)
            otype = int(rng.random() < 0.1)
            if otype == 1:
                price = 0 if rng.random() < 0.5 else price
            tif = int(rng.choice([0, 0, 0, 1, 2]))
            stp = int(rng.choice([0, 0, 1, 2, 3, 4]))
            flags = int(rng.random() < 0.1)
        elif r < 0.85:
            kind = int(rng.choice([CommandType.CANCEL, CommandType.REDUCE, CommandType.REPLACE]))
            oid = int(rng.choice(list(owners))) if owners else 1
            known_acct, known_price, known_qty = owners.get(oid, (acct, price, qty))
            if rng.random() < 0.9:
                acct = known_acct
            if kind == CommandType.REDUCE:
                qty = int(lot * rng.integers(1, 4))
            elif rng.random() < 0.5:  # same price: smaller, equal or larger qty
                price = known_price
                qty = max(lot, known_qty + lot * int(rng.integers(-2, 2)))
        else:
            kind = int(rng.choice([CommandType.HALT, CommandType.RESUME, CommandType.RESUME,
                                   CommandType.RESUME, CommandType.KILL_SWITCH,
                                   CommandType.KILL_SWITCH_RELEASE, CommandType.DEPOSIT,
                                   CommandType.WITHDRAW]))  # fmt: skip
            if kind == CommandType.KILL_SWITCH and rng.random() < 0.3:
                acct = 0
        if rng.random() < odd_rate:  # break one field
            field = int(rng.integers(0, 9))
            if field == 0:
                kind = int(rng.choice([0, 5, 99]))
            elif field == 1:
                side = 2
            elif field == 2:
                price = int(rng.choice([-1, 0, price + 1, 10, 500]))
            elif field == 3:
                qty = int(rng.choice([0, -2, qty + 1, 1000]))
            elif field == 4:
                tif, otype = int(rng.integers(0, 4)), int(rng.integers(0, 3))
            elif field == 5:
                stp = 5
            elif field == 6:
                flags = int(rng.choice([1, 2, 3]))
            elif field == 7:
                oid = int(rng.choice([0, -5, 10**6]))
            else:
                reason = int(rng.choice([40, 47]))
        ts = int(rng.integers(0, 2))
        rows.append((0, ts, 0, oid, price, qty, acct, sym, kind, side, otype, tif, stp, flags,
                     reason, (0, 0, 0)))  # fmt: skip
    return rows


def to_commands(rows: list[tuple]) -> np.ndarray:
    cmds = np.array(rows, dtype=COMMAND_DTYPE)
    cmds["seq"] = np.arange(1, len(cmds) + 1)
    return cmds


def comparable(events: np.ndarray) -> np.ndarray:
    out = events.copy()
    out["dt_match"] = 0
    return out


def assert_same_events(got: np.ndarray, want: np.ndarray) -> None:
    got, want = comparable(got), comparable(want)
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w, f"event {i} differs:\n engine    {g}\n reference {w}"
    assert len(got) == len(want), f"{len(got)} events from the engine, {len(want)} expected"


def assert_same_books(engine: MatchingEngine, ref: ReferenceEngine) -> None:
    assert engine.open_orders() == ref.open_orders()
    assert engine._debug_live_rows() == ref.open_orders()
    assert [tuple(int(x) for x in r) for r in engine.resting_orders()] == ref.resting_orders()
    for spec in SPECS:
        bids, asks = engine.depth(spec.symbol, 1000)
        rbids, rasks = ref.depth(spec.symbol, 1000)
        assert [tuple(int(x) for x in r) for r in bids] == rbids
        assert [tuple(int(x) for x in r) for r in asks] == rasks


def assert_engine_matches_reference(rows, cuts, capacity=1 << 10, emit_book_top=True) -> None:
    """Same events and books from both engines; the compiled one gets batches cut at ``cuts``."""
    cmds = to_commands(rows)
    engine = MatchingEngine(SPECS, order_capacity=capacity, emit_book_top=emit_book_top)
    ref = ReferenceEngine(SPECS, emit_book_top=emit_book_top)
    bounds = sorted({0, len(cmds), *[c % (len(cmds) + 1) for c in cuts]})
    got = [engine.process(cmds[a:b]).copy() for a, b in itertools.pairwise(bounds)]
    got_events = np.concatenate(got) if got else np.zeros(0, dtype=comparable(cmds[:0]).dtype)
    assert_same_events(got_events, ref.process(cmds))
    assert_same_books(engine, ref)


seeds = st.integers(0, 2**32 - 1)
odd_rates = st.sampled_from([0.0, 0.02, 0.1])
cut_lists = st.lists(st.integers(0, 200), max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, n=st.integers(1, 200), odd=odd_rates, cuts=cut_lists,
       capacity=st.sampled_from([1, 3, 1024]))  # fmt: skip
def test_engine_matches_reference(seed, n, odd, cuts, capacity):
    rows = random_stream(seed, n, odd)
    assert_engine_matches_reference(rows, cuts, capacity)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, n=st.integers(1, 200), odd=odd_rates)
def test_engine_matches_reference_without_book_top(seed, n, odd):
    rows = random_stream(seed, n, odd)
    assert_engine_matches_reference(rows, [], emit_book_top=False)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, n=st.integers(1, 200), out_size=st.integers(8, 40))
def test_process_into_small_buffer_resumes_exactly(seed, n, out_size):
    """A too-small caller buffer stops between commands; resuming loses nothing."""
    rows = random_stream(seed, n, 0.02)
    cmds = to_commands(rows)
    engine = MatchingEngine(SPECS, order_capacity=4)
    want = ReferenceEngine(SPECS).process(cmds)
    got = []
    rest = cmds
    while len(rest):
        out = np.zeros(out_size, dtype=want.dtype)
        try:
            n = engine.process_into(rest, out)
            got.append(out[:n].copy())
            rest = rest[:0]
        except EventBufferFull as full:
            got.append(out[: full.events_written].copy())
            if full.commands_done == 0:
                out_size = full.events_needed  # this command alone needs more room
            rest = rest[full.commands_done :]
    assert_same_events(np.concatenate(got), want)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, n=st.integers(1, 2000), odd=odd_rates, cuts=cut_lists,
       capacity=st.sampled_from([1, 2, 64]))  # fmt: skip
def test_engine_matches_reference_long(seed, n, odd, cuts, capacity):
    rows = random_stream(seed, n, odd)
    assert_engine_matches_reference(rows, cuts, capacity)
