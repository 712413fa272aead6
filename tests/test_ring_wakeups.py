"""No lost wake-ups between processes: several waiters re-park on the same cursors while
records keep flowing, and not one park may end by its (long) timeout."""

from __future__ import annotations

import multiprocessing

import pytest

from ringbuffer import Ring
from tests import ringworkers
from tests.ringhelpers import RECORD, reap

SPAWN = multiprocessing.get_context("spawn")
PARK_NS = 20_000_000_000  # 20 s: a waiter that sleeps through a publish is unmistakable
TOTAL = 20_000
CONSUMERS = ("a", "b", "c")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("fences", ["membarrier", "compiled"])
def test_parked_waiters_are_always_woken_while_records_flow(fences, monkeypatch):
    """Three consumers park on the producer cursor whenever they have caught up; the
    producer parks on their cursors whenever the 8-slot ring is full. Every record goes
    out in its own publish, so thousands of parks race thousands of wake-ups; a park that
    runs out its 20 s would mean a publish (or release) did not wake it. Run with both
    store-load fences: membarrier, and the compiled fallback for hosts without it."""
    if fences == "compiled":
        monkeypatch.setenv("TRADEPIPE_NO_MEMBARRIER", "1")  # the spawned children read it
    with Ring.create("wakeups", RECORD, 8, consumers=CONSUMERS) as ring:
        results = SPAWN.Queue()
        processes = [
            SPAWN.Process(
                target=ringworkers.consume_counting,
                args=(ring.name, name, TOTAL, PARK_NS, results),
            )
            for name in CONSUMERS
        ]
        processes.append(
            SPAWN.Process(
                target=ringworkers.produce_counting, args=(ring.name, TOTAL, PARK_NS, results)
            )
        )
        for process in processes:
            process.start()
        try:
            reports = {}
            for _ in processes:
                role, count, woken, timed_out, error = results.get(timeout=240)
                reports[role] = (count, woken, timed_out, error)
        finally:
            reap(processes)
    for role, (count, _woken, timed_out, error) in reports.items():
        assert error is None, f"{role}: {error}"
        assert count == TOTAL, f"{role} got {count} of {TOTAL} records"
        assert timed_out == 0, f"{role}: {timed_out} park(s) ran out their timeout: {reports}"
    assert sum(report[1] for report in reports.values()) > 0, f"nobody parked: {reports}"
