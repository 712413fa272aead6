"""Differential tests: the compiled engine must behave exactly like the reference book.

Random command streams (every order type, time in force, post-only, STP mode, cancels,
reduces, replaces, bad ids and fields, several symbols, halts, kill switches, upstream
rejections) go through both; events (all fields but dt_match), depth and resting orders
must be identical, however the stream is cut into batches and however small the engine's
starting capacities are.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.matching import EventBufferFull, MatchingEngine
from tests.matching_streams import (
    PRICE_BASES,
    SPECS,
    assert_engine_matches_reference,
    assert_same_events,
    extreme_specs,
    magnified,
    random_stream,
    to_commands,
)
from tests.reference_book import ReferenceEngine

seeds = st.integers(0, 2**32 - 1)
odd_rates = st.sampled_from([0.0, 0.02, 0.1])
cut_lists = st.lists(st.integers(0, 200), max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, n=st.integers(1, 200), odd=odd_rates, cuts=cut_lists,
       capacity=st.sampled_from([1, 3, 1024]))  # fmt: skip
def test_engine_matches_reference(seed, n, odd, cuts, capacity):
    rows = random_stream(seed, n, odd)
    assert_engine_matches_reference(rows, cuts, capacity)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, n=st.integers(1, 200), odd=odd_rates, cuts=cut_lists,
       price_base=st.sampled_from(PRICE_BASES))  # fmt: skip
def test_engine_matches_reference_at_extreme_magnitudes(seed, n, odd, cuts, price_base):
    """Quantities near MAX_QTY (many such orders at one level, FOKs adding them up) and
    prices near 2**62: the engine's int64 sums must equal the reference's exact ones."""
    rows = magnified(random_stream(seed, n, odd), price_base)
    assert_engine_matches_reference(rows, cuts, 3, specs=extreme_specs(price_base))


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
@settings(max_examples=350, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, n=st.integers(1, 2000), odd=odd_rates, cuts=cut_lists,
       capacity=st.sampled_from([1, 2, 64]))  # fmt: skip
def test_engine_matches_reference_long(seed, n, odd, cuts, capacity):
    rows = random_stream(seed, n, odd)
    assert_engine_matches_reference(rows, cuts, capacity)
