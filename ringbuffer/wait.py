"""Wait strategies: how a producer waits for space and a consumer for data.

Every wait has the same contract: return the available sequence once ``poll()`` reports at
least ``target``; call ``housekeeping(now_ns)`` at least every ``HOUSEKEEPING_NS`` while
spinning or yielding and before every park (a ring role's housekeeping refreshes its
heartbeat and raises ``AlertedError`` once ``Ring.alert()`` was called, ``PeerDeadError``
when the peer died, ``EndOfStreamError`` at the end of the stream); raise
``WaitTimeoutError`` once ``timeout`` seconds have passed. A strategy knows nothing of
alerts itself: whatever ``housekeeping`` raises ends the wait.

* ``BusySpin`` — polls without pause: lowest latency (sub-µs), burns its core. Only for a
  dedicated, isolated core.
* ``Yielding`` — polls, then ``sched_yield()`` between polls: lets a co-scheduled thread run
  but still shows as 100 % CPU.
* ``Backoff`` (the default) — spins for ``spin_ns``, yields until ``yield_ns``, then parks
  in the kernel (``park(timeout_ns)``, a futex on the awaited cursor, see ``futex``) for at
  most ``max_park_ns`` at a time; the writer wakes it on its next store (the handshake
  cannot lose that wake-up, see ``sequence``; the timeout is for housekeeping). A stream arriving
  every few µs keeps it in the spin/yield phases (latency of a spin); an idle ring costs one
  wake-up per ``max_park_ns``. Measured on a 2-vCPU VM: a plain 1 ms sleep loop already
  costs ~3 % of a core, which is why it parks instead of sleeping. Without a ``park`` it
  falls back to sleeping, doubling from ``min_sleep_ns``, with the thread's timer slack
  lowered (``prctl(PR_SET_TIMERSLACK)``) so short sleeps are not stretched by 50 µs.
  Made for a waiter with a core of its own.
* ``Parking`` (``park``) — ``Backoff`` with a 5 µs spin and no yield phase: for a waiter
  that shares its core with other stages, where polling takes the core from them
  (``pipeline.topology`` gives it to every stage the CPU plan puts on a shared core).
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
Park = Callable[[int], bool]  # sleep at most timeout_ns; False if the timeout ran out


class _Waiting:
    """One wait in progress: the target, the callbacks, the deadline, and its phases.

    Each phase returns the available sequence once it reaches the target, or ``None`` when
    the phase's time is up; housekeeping and the timeout are checked the same way in all.
    """

    __slots__ = ("deadline", "housekeeping", "last_housekeeping", "now", "poll", "start", "target")

    def __init__(
        self, target: int, poll: Poll, housekeeping: Housekeeping, timeout: float | None
    ) -> None:
        self.target = target
        self.poll = poll
        self.housekeeping = housekeeping
        self.start = self.now = self.last_housekeeping = time.monotonic_ns()
        self.deadline = None if timeout is None else self.start + int(timeout * 1e9)

    def keep_house(self, force: bool = False) -> None:
        """Housekeeping at most every ``HOUSEKEEPING_NS`` (or now), then the timeout check."""
        now = self.now
        if force or now - self.last_housekeeping >= HOUSEKEEPING_NS:
            self.housekeeping(now)
            self.last_housekeeping = now
        if self.deadline is not None and now >= self.deadline:
            raise WaitTimeoutError(f"sequence {self.target} not available before the timeout")

    def spin(self, until_ns: int | None, burst: int = 32, pause=None) -> int | None:
        """Poll until ``until_ns`` (None: forever), looking at the clock every ``burst``
        polls; ``pause`` (e.g. ``os.sched_yield``) runs between polls if given."""
        poll, target, clock = self.poll, self.target, time.monotonic_ns
        bursts = range(burst)
        while until_ns is None or self.now < until_ns:
            for _ in bursts:
                if pause is not None:
                    pause()
                available = poll()
                if available >= target:
                    return available
            self.now = clock()
            self.keep_house()
        return None

    def yield_core(self, until_ns: int | None) -> int | None:
        """Poll with ``sched_yield()`` between polls: other threads of the core may run."""
        return self.spin(until_ns, burst=1, pause=os.sched_yield)

    def park(self, park: Park, max_park_ns: int) -> int:
        """Sleep in the kernel until a writer wakes us (at most ``max_park_ns`` a time)."""
        while True:
            self.keep_house(force=True)
            limit = max_park_ns if self.deadline is None else self.deadline - self.now
            park(max(1000, min(max_park_ns, limit)))
            available = self.poll()
            if available >= self.target:
                return available
            self.now = time.monotonic_ns()

    def sleep(self, min_sleep_ns: int, max_sleep_ns: int) -> int:
        """Sleep between polls, doubling the sleep up to ``max_sleep_ns``."""
        sleep_ns = min_sleep_ns
        while True:
            self.keep_house(force=True)
            time.sleep(sleep_ns / 1e9)
            available = self.poll()
            if available >= self.target:
                return available
            sleep_ns = min(sleep_ns * 2, max_sleep_ns)
            self.now = time.monotonic_ns()


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
    """Poll in a tight loop, forever (housekeeping between bursts of polls)."""

    name = "busy-spin"

    def wait(self, target, poll, housekeeping, timeout, park=None):
        return _Waiting(target, poll, housekeeping, timeout).spin(until_ns=None, burst=512)


class Yielding(WaitStrategy):
    """Spin for ``spin_ns``, then give the core away with ``sched_yield`` between polls."""

    name = "yielding"

    def __init__(self, spin_ns: int = 2_000) -> None:
        self.spin_ns = spin_ns

    def wait(self, target, poll, housekeeping, timeout, park=None):
        waiting = _Waiting(target, poll, housekeeping, timeout)
        available = waiting.spin(waiting.start + self.spin_ns)
        return available if available is not None else waiting.yield_core(until_ns=None)


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
        max_park_ns: int = 100_000_000,
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
        waiting = _Waiting(target, poll, housekeeping, timeout)
        available = waiting.spin(waiting.start + self.spin_ns)
        if available is None:
            available = waiting.yield_core(waiting.start + self.yield_ns)
        if available is not None:
            return available
        if park is not None:
            return waiting.park(park, self.max_park_ns)
        if not self._slack_lowered:
            self._slack_lowered = lower_timer_slack()
        return waiting.sleep(self.min_sleep_ns, self.max_sleep_ns)


class Parking(Backoff):
    """``Backoff`` for a waiter that shares its core: a short spin, no yield, then park.

    On a core shared with other stages every µs spent polling is taken from them, and
    often from the very producer being waited for (measured on 2 vCPUs, 5 stages at
    100 k commands/s: consumers spent ~80 % of their samples in ``sched_yield``, the
    cores were saturated and ingest→ack p50 was ~14 ms). A short spin still catches a
    producer on another core that is about to publish; after it the waiter parks and
    the producer's next store wakes it.
    """

    name = "park"

    def __init__(self, spin_ns: int = 5_000, **kwargs: int) -> None:
        super().__init__(spin_ns=spin_ns, yield_ns=kwargs.pop("yield_ns", spin_ns), **kwargs)


STRATEGIES: dict[str, type[WaitStrategy]] = {
    BusySpin.name: BusySpin,
    Yielding.name: Yielding,
    Backoff.name: Backoff,
    Parking.name: Parking,
}


def wait_strategy(name: str) -> WaitStrategy:
    """The strategy called ``name`` (``busy-spin``, ``yielding``, ``backoff``, ``park``)
    with defaults."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise ValueError(
            f"unknown wait strategy {name!r}; choose one of {', '.join(sorted(STRATEGIES))}"
        ) from None


DEFAULT_WAIT = Backoff
