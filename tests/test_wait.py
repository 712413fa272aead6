"""Wait strategies: they return once the target is available, time out, and housekeep."""

from __future__ import annotations

import itertools
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


def test_strategies_by_name():
    assert isinstance(wait_strategy("busy-spin"), BusySpin)
    assert isinstance(wait_strategy("backoff"), Backoff)
    with pytest.raises(ValueError, match="unknown wait strategy 'spin'; choose one of backoff"):
        wait_strategy("spin")


def test_backoff_rejects_inconsistent_phases():
    with pytest.raises(ValueError, match="spin_ns <= yield_ns"):
        Backoff(spin_ns=10, yield_ns=5)
    with pytest.raises(ValueError, match="min_sleep_ns <= max_sleep_ns"):
        Backoff(min_sleep_ns=10, max_sleep_ns=5)
