"""Wait strategies: how a producer waits for space and a consumer for data.

Every wait has the same contract: return the available sequence once ``poll()`` reports at
least ``target``; call ``housekeeping(now_ns)`` at least every ``HOUSEKEEPING_NS`` while
spinning or yielding and after every park (it refreshes this side's heartbeat, raises ``AlertedError`` when the ring or the
caller was alerted, ``PeerDeadError`` when the peer died, ``EndOfStreamError`` at the end);
raise ``WaitTimeoutError`` once ``timeout`` seconds have passed.

* ``BusySpin`` — polls without pause: lowest latency (sub-µs), burns its core. Only for a
  dedicated, isolated core.
* ``Yielding`` — polls, then ``sched_yield()`` between polls: lets a co-scheduled thread run
  but still shows as 100 % CPU.
* ``Backoff`` (the default) — spins for ``spin_ns``, yields until ``yield_ns``, then parks
  in the kernel (``park(timeout_ns)``, a futex on the awaited cursor, see ``futex``) for at
  most ``max_park_ns`` at a time; the writer wakes it on its next store. A stream arriving
  every few µs keeps it in the spin/yield phases (latency of a spin); an idle ring costs one
  wake-up per ``max_park_ns``. Measured on a 2-vCPU VM: a plain 1 ms sleep loop already
  costs ~3 % of a core, which is why it parks instead of sleeping. Without a ``park`` it
  falls back to sleeping, doubling from ``min_sleep_ns``, with the thread's timer slack
  lowered (``prctl(PR_SET_TIMERSLACK)``) so short sleeps are not stretched by 50 µs.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections.abc import Callable

from ringbuffer.errors import WaitTimeoutError

HOUSEKEEPING_NS = 1_000_000
PR_SET_TIMERSLACK = 29

Poll = Callable[[], int]
Housekeeping = Callable[[int], None]
Park = Callable[[int], None]


def _deadline(timeout: float | None, now: int) -> int | None:
    return None if timeout is None else now + int(timeout * 1e9)


def _timed_out(deadline: int | None, now: int, target: int) -> None:
    if deadline is not None and now >= deadline:
        raise WaitTimeoutError(f"sequence {target} not available before the timeout")


class WaitStrategy:
    """Base class; subclasses implement ``wait``."""

    name = "abstract"

    def wait(
        self,
        target: int,
        poll: Poll,
        housekeeping: Housekeeping,
        timeout: float | None,
        park: Park | None = None,
    ) -> int:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BusySpin(WaitStrategy):
    """Poll in a tight loop; housekeeping every ``batch`` polls."""

    name = "busy-spin"

    def __init__(self, batch: int = 512) -> None:
        self.batch = batch

    def wait(self, target, poll, housekeeping, timeout, park=None):
        clock = time.monotonic_ns
        deadline = _deadline(timeout, clock())
        spins = range(self.batch)
        while True:
            for _ in spins:
                available = poll()
                if available >= target:
                    return available
            now = clock()
            housekeeping(now)
            _timed_out(deadline, now, target)


class Yielding(WaitStrategy):
    """Poll ``spins`` times, then give the core away with ``sched_yield`` between polls."""

    name = "yielding"

    def __init__(self, spins: int = 100) -> None:
        self.spins = spins

    def wait(self, target, poll, housekeeping, timeout, park=None):
        clock = time.monotonic_ns
        start = clock()
        deadline = _deadline(timeout, start)
        for _ in range(self.spins):
            available = poll()
            if available >= target:
                return available
        last_housekeeping = start
        while True:
            os.sched_yield()
            available = poll()
            if available >= target:
                return available
            now = clock()
            if now - last_housekeeping >= HOUSEKEEPING_NS:
                housekeeping(now)
                last_housekeeping = now
                _timed_out(deadline, now, target)


def lower_timer_slack(slack_ns: int = 1000) -> bool:
    """Lower this thread's timer slack (Linux) so short sleeps wake on time. True if done."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(slack_ns), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class Backoff(WaitStrategy):
    """Spin, then yield, then park (or sleep): idle-friendly, fast under load."""

    name = "backoff"

    def __init__(
        self,
        spin_ns: int = 20_000,
        yield_ns: int = 100_000,
        min_sleep_ns: int = 20_000,
        max_sleep_ns: int = 2_000_000,
        max_park_ns: int = 20_000_000,
    ) -> None:
        if not 0 <= spin_ns <= yield_ns:
            raise ValueError(f"need 0 <= spin_ns <= yield_ns, got {spin_ns}, {yield_ns}")
        if not 0 < min_sleep_ns <= max_sleep_ns:
            raise ValueError(
                f"need 0 < min_sleep_ns <= max_sleep_ns, got {min_sleep_ns}, {max_sleep_ns}"
            )
        self.spin_ns = spin_ns
        self.yield_ns = yield_ns
        self.min_sleep_ns = min_sleep_ns
        self.max_sleep_ns = max_sleep_ns
        self.max_park_ns = max_park_ns
        self._slack_lowered = False

    def wait(self, target, poll, housekeeping, timeout, park=None):
        available = poll()
        if available >= target:
            return available
        clock = time.monotonic_ns
        start = clock()
        deadline = _deadline(timeout, start)
        last_housekeeping = start
        # Phase 1: spin (poll in batches, looking at the clock between batches).
        spin_until = start + self.spin_ns
        now = start
        while now < spin_until:
            for _ in range(32):
                available = poll()
                if available >= target:
                    return available
            now = clock()
        # Phase 2: yield the core between polls.
        yield_until = start + self.yield_ns
        while now < yield_until:
            os.sched_yield()
            available = poll()
            if available >= target:
                return available
            now = clock()
            if now - last_housekeeping >= HOUSEKEEPING_NS:
                housekeeping(now)
                last_housekeeping = now
                _timed_out(deadline, now, target)
        # Phase 3: park in the kernel until woken (bounded), or sleep with doubling sleeps.
        if park is not None:
            while True:
                housekeeping(now)
                _timed_out(deadline, now, target)
                limit = self.max_park_ns if deadline is None else deadline - now
                park(max(1000, min(self.max_park_ns, limit)))
                available = poll()
                if available >= target:
                    return available
                now = clock()
        if not self._slack_lowered:
            lower_timer_slack()
            self._slack_lowered = True
        sleep_ns = self.min_sleep_ns
        sleep = time.sleep
        while True:
            housekeeping(now)
            _timed_out(deadline, now, target)
            sleep(sleep_ns / 1e9)
            available = poll()
            if available >= target:
                return available
            sleep_ns = min(sleep_ns * 2, self.max_sleep_ns)
            now = clock()


STRATEGIES: dict[str, type[WaitStrategy]] = {
    BusySpin.name: BusySpin,
    Yielding.name: Yielding,
    Backoff.name: Backoff,
}


def wait_strategy(name: str) -> WaitStrategy:
    """The strategy called ``name`` (``busy-spin``, ``yielding``, ``backoff``) with defaults."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise ValueError(
            f"unknown wait strategy {name!r}; choose one of {', '.join(sorted(STRATEGIES))}"
        ) from None


DEFAULT_WAIT = Backoff
