"""Determinism and state: the hash covers the book, snapshots restore it exactly, and a
restored engine continues with the same events and hash as the original."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.matching import MatchingEngine, SymbolSpec
from stages.records import COMMAND_DTYPE, CommandType
from tests.matching_streams import SPECS, random_stream, to_commands


def stream(seed: int, n: int = 300) -> np.ndarray:
    return to_commands(random_stream(seed, n, 0.02))


def without_dt(events: np.ndarray) -> np.ndarray:
    out = events.copy()
    out["dt_match"] = 0
    return out


def test_same_commands_give_same_events_and_hash():
    cmds = stream(1)
    a, b = MatchingEngine(SPECS), MatchingEngine(SPECS, order_capacity=2)
    ea, eb = without_dt(a.process(cmds)), without_dt(b.process(cmds))
    assert np.array_equal(ea, eb)
    assert a.state_hash() == b.state_hash()  # capacities are not state


def test_hash_changes_with_any_book_change():
    engine = MatchingEngine(SPECS)
    engine.process(stream(2))
    seen = {engine.state_hash()}
    cmd = np.zeros(1, dtype=COMMAND_DTYPE)
    cmd["kind"], cmd["symbol"], cmd["account"] = CommandType.NEW, 1, 1
    cmd["order_id"], cmd["price"], cmd["qty"], cmd["side"] = 10**6, 1, 1, 0
    engine.process(cmd)  # a far bid: a new resting order
    seen.add(engine.state_hash())
    cmd["kind"], cmd["qty"] = CommandType.REDUCE, 0  # a rejected command changes nothing
    engine.process(cmd)
    assert engine.state_hash() in seen
    cmd["kind"] = CommandType.HALT
    engine.process(cmd)  # halts are book state
    seen.add(engine.state_hash())
    assert len(seen) == 3


def test_hash_ignores_timestamps():
    cmds = stream(3)
    a, b = MatchingEngine(SPECS), MatchingEngine(SPECS)
    a.process(cmds)
    cmds["ts_ingest"] = 123456789
    b.process(cmds)
    assert a.state_hash() == b.state_hash()


def test_hash_depends_on_time_priority():
    def book(order_ids):
        engine = MatchingEngine([SymbolSpec(1)])
        cmds = np.zeros(len(order_ids), dtype=COMMAND_DTYPE)
        cmds["kind"], cmds["symbol"], cmds["account"], cmds["price"], cmds["qty"] = 1, 1, 1, 9, 1
        cmds["order_id"] = order_ids
        engine.process(cmds)
        return engine.state_hash()

    assert book([1, 2]) != book([2, 1])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cut=st.integers(0, 300))
def test_restored_engine_continues_exactly_like_the_original(seed, cut):
    cmds = stream(seed)
    original = MatchingEngine(SPECS, order_capacity=8)
    original.process(cmds[:cut])
    restored = MatchingEngine.restore(original.snapshot())
    assert restored.state_hash() == original.state_hash()
    assert restored.open_orders() == original.open_orders()
    assert np.array_equal(restored.resting_orders(), original.resting_orders())
    e1 = without_dt(original.process(cmds[cut:]))
    e2 = without_dt(restored.process(cmds[cut:]))
    assert np.array_equal(e1, e2)
    assert restored.state_hash() == original.state_hash()


def test_snapshot_keeps_halts_and_settings():
    engine = MatchingEngine(SPECS, emit_book_top=False)
    cmd = np.zeros(1, dtype=COMMAND_DTYPE)
    cmd["kind"], cmd["symbol"] = CommandType.HALT, 7
    engine.process(cmd)
    restored = MatchingEngine.restore(engine.snapshot())
    assert restored.is_halted(7) and not restored.is_halted(1)
    assert restored.symbols == engine.symbols


def test_restore_refuses_garbage_with_a_clear_message():
    with pytest.raises(ValueError, match="not a matching-engine snapshot"):
        MatchingEngine.restore(b"\x00garbage")


def test_bad_configuration_is_refused_at_construction():
    with pytest.raises(ValueError, match="symbol 1 is configured twice"):
        MatchingEngine([SymbolSpec(1), SymbolSpec(1)])
    with pytest.raises(ValueError, match=r"SymbolSpec\.lot_size = 0"):
        SymbolSpec(1, lot_size=0)
    with pytest.raises(KeyError, match="symbol 5 is not configured"):
        MatchingEngine([SymbolSpec(1)]).depth(5, 1)


def test_restore_sizes_books_by_their_levels_not_their_orders():
    engine = MatchingEngine([SymbolSpec(s) for s in range(1, 21)], order_capacity=16)
    cmds = np.zeros(6000, dtype=COMMAND_DTYPE)
    cmds["kind"], cmds["account"], cmds["qty"] = CommandType.NEW, 1, 1
    cmds["order_id"] = np.arange(1, 6001)
    cmds["symbol"] = np.arange(6000) % 20 + 1
    cmds["price"] = np.arange(6000) // 20 % 100 + 1  # 100 levels per book, 3 orders each
    engine.process(cmds)
    restored = MatchingEngine.restore(engine.snapshot())
    assert restored.state_hash() == engine.state_hash()
    assert restored._side_keys.shape[1] < 6000
    bids, _ = restored.depth(20, 200)
    assert bids[0].tolist() == [100, 3, 3]
    assert len(bids) == 100


@pytest.mark.parametrize("cut", [0, 1, 150, 299])
def test_append_accumulates_events_of_consecutive_calls(cut):
    commands = stream(seed=5)
    whole = MatchingEngine(SPECS).process(commands).copy()
    engine = MatchingEngine(SPECS)
    first = engine.process(commands[:cut]).copy()
    both = engine.process(commands[cut:], append=True)
    assert np.array_equal(without_dt(both), without_dt(whole))
    assert np.array_equal(without_dt(both[: len(first)]), without_dt(first))
    assert len(engine.process(commands[:0])) == 0, "without append the buffer starts over"
