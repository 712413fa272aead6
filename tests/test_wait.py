"""Wait strategies: they return once the target is available, time out, and housekeep."""

from __future__ import annotations

import itertools
import os
import time

import pytest

from ringbuffer import Backoff, BusySpin, WaitTimeoutError, Yielding, wait_strategy
from ringbuffer.errors import AlertedError

STRATEGIES = [BusySpin(), Yielding(), Backoff(spin_ns=1000, yield_ns=5000, max_sleep_ns=200_000)]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
def test_returns_the_available_sequence_once_it_reaches_the_target(strategy):
    counter = itertools.count()
    available = strategy.wait(500, lambda: next(counter), lambda now: None, timeout=10)
    assert available == 500


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
def test_times_out_and_housekeeps_meanwhile(strategy):
    calls = []
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError, match="sequence 7 not available"):
        strategy.wait(7, lambda: 3, calls.append, timeout=0.05)
    assert time.monotonic() - started >= 0.05
    assert calls, "housekeeping must run while waiting"


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
def test_housekeeping_errors_end_the_wait(strategy):
    def alert(now):
        raise AlertedError("stop")

    with pytest.raises(AlertedError):
        strategy.wait(7, lambda: 3, alert, timeout=10)


@pytest.mark.parametrize(
    ("name", "yields", "parks"),
    # backoff's yield phase may be over before it starts on a busy host: not asserted
    [("busy-spin", False, False), ("yielding", True, False), ("backoff", None, True)],
)
def test_strategies_by_name_wait_as_their_name_says(name, yields, parks, monkeypatch):
    """By name, with defaults: busy-spin only polls, yielding gives the core away between
    polls, backoff ends up parking. Each poll reports the target once the strategy has
    shown the behaviour its name promises (or after many polls, for busy-spin)."""
    events = {"yields": 0, "parks": 0, "polls": 0}
    real_yield = os.sched_yield

    def counting_yield() -> None:
        events["yields"] += 1
        real_yield()

    def park(timeout_ns: int) -> bool:
        events["parks"] += 1
        return True

    def poll() -> int:
        events["polls"] += 1
        shown = events["parks"] if parks else events["yields"] if yields else events["polls"]
        return 9 if shown >= (1 if parks or yields else 10_000) else 0

    monkeypatch.setattr(os, "sched_yield", counting_yield)
    strategy = wait_strategy(name)
    assert strategy.name == name
    assert strategy.wait(9, poll, lambda now: None, timeout=30, park=park) == 9
    if yields is not None:
        assert bool(events["yields"]) is yields, events
    assert bool(events["parks"]) is parks, events


def test_an_unknown_strategy_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown wait strategy 'spin'; choose one of backoff"):
        wait_strategy("spin")


def test_backoff_rejects_inconsistent_phases():
    with pytest.raises(ValueError, match="spin_ns <= yield_ns"):
        Backoff(spin_ns=10, yield_ns=5)
    with pytest.raises(ValueError, match="min_sleep_ns <= max_sleep_ns"):
        Backoff(min_sleep_ns=10, max_sleep_ns=5)
