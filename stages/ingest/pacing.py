"""Offered load at a fixed rate: how many commands have "arrived" by now.

A paced source (``tradepipe run`` with ``load.rate``, the latency benchmarks) models
clients sending ``rate`` commands per second evenly: by time ``t`` after the start,
``floor(t * rate) + 1`` have arrived (the first at ``t = 0``). Ingest takes whatever has arrived (up to its batch) in
one go, so under light load its batches are small and under heavy load they grow; it
never sends ahead of time, and a slow pipeline is seen as a growing backlog (the commands
keep their arrival order), not as a lower offered rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Counts arrivals of a steady ``rate`` (commands per second) since the first call."""

    def __init__(self, rate: float, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        if rate <= 0:
            raise ValueError(f"a pacer needs a rate > 0 commands/s, got {rate}")
        self.rate = rate
        self.clock = clock
        self._start: int | None = None
        self.taken = 0  # commands handed out so far

    def due(self) -> int:
        """How many commands have arrived and not been taken yet (starts the clock)."""
        now = self.clock()
        if self._start is None:
            self._start = now
        return int((now - self._start) * self.rate / 1e9) + 1 - self.taken  # one arrives at 0

    def take(self, n: int) -> None:
        self.taken += n

    def seconds_to_next(self) -> float:
        """Seconds until the next command arrives (0 if one is due)."""
        if self._start is None:
            return 0.0
        arrives_ns = self._start + self.taken * 1e9 / self.rate
        return max(0.0, (arrives_ns - self.clock()) / 1e9)

    def wait_for_next(self, timeout: float) -> bool:
        """Sleep until the next command arrives or ``timeout`` passes; whether one is due.

        ``time.sleep`` (not a spin): an idle paced source costs no CPU; its granularity
        (tens of µs on Linux) is well below the gaps a paced latency run measures.
        """
        left = self.seconds_to_next()
        if left > 0:
            time.sleep(min(left, timeout))
        return self.due() > 0
