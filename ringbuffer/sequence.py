"""``Sequence``: one int64 cursor in shared memory on its own cache line.

A ring has one for the producer (the highest published sequence) and one per consumer
(the highest sequence it has finished with). Sequences start at -1 (nothing yet) and only
grow; slot = ``seq & (capacity - 1)``. Reads are acquire loads and writes release stores
(see ``fence``), so whatever was written before a ``set`` is visible to whoever ``get``s it.
Each sequence has exactly one *writer* (the producer for its cursor, a consumer for its
own), and any number of *waiters*.

**Parking.** Beside the cursor sit two more int64 words (``layout.PARKED_FLAG_DELTA``,
``layout.WAKE_COUNTER_DELTA``): the *parked* flag ("someone may be asleep on me") and the
*wake counter*, which only the writer changes and on whose low 32-bit word waiters sleep
(``futex``). The handshake, with W the writer and P a waiter::

    W publish:  store cursor           P park:  e = load counter        (acquire)
                -- store-load fence --          store parked = 1
                load parked                     -- store-load fence --
                if set:  store parked = 0       if cursor moved: return
                         store counter + 1      FUTEX_WAIT(counter, e)  (sleeps only
                         FUTEX_WAKE(counter)                            while counter == e)

Why no waiter can sleep through a publish:

* The two fences make it Dekker's handshake: W's load sees P's flag, or P's re-check sees
  W's cursor (or both). A full store-load barrier is needed on both sides; program order
  is not enough, on x86 either. How it is made cheap for W: ``fence.waiter_fence``.
* If W sees the flag it clears it and *then* bumps the counter. Clearing may erase the flag
  of another waiter Q that raised it after W's load (the race of the old design, where Q
  then slept on the cursor with nobody left to wake it). Here that costs nothing: Q read
  ``e`` before raising its flag, and the bump follows the clear, so the counter is no
  longer ``e`` when Q sleeps -- FUTEX_WAIT returns at once (or W's FUTEX_WAKE, which the
  kernel orders after the bump, wakes Q); Q finds nothing new, takes a fresh ``e`` and
  raises its flag again, where W's next publish will see it. A waiter whose flag was
  erased is therefore never asleep on a counter value that is still current.
* W never waits for waiters and keeps one plain load per publish when nobody is parked.
  Only W writes the counter, so a plain increment is enough (no atomic read-modify-write);
  other processes (``Ring.alert``) only ``nudge``: a FUTEX_WAKE that touches no word.

``park`` returns False only when the futex wait ran to its timeout, so tests and
monitoring can tell a timed-out park (a missed wake-up while records flow) from a wake.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import TYPE_CHECKING

from ringbuffer import fence, futex
from ringbuffer.fence import HARDWARE_ORDERED, cursor_accessors
from ringbuffer.layout import PARKED_FLAG_DELTA, WAKE_COUNTER_DELTA

if TYPE_CHECKING:
    from ringbuffer.doorbell import Doorbell

INITIAL = -1


class Sequence:
    """A view of the int64 at ``offset`` of ``buf`` with ordered ``get`` / ``set``.

    ``view`` is exposed for hot loops where ``ordered`` is true: there ``view[0]`` written
    inline, followed by a plain load of ``parked[0]``, is the cheapest correct publish;
    elsewhere use ``set`` (a compiled release store, fenced where the host has no
    ``membarrier``).
    """

    __slots__ = (
        "address", "doorbell", "get", "offset", "ordered", "parked", "set", "view",
        "wake_address", "wakes", "wakes_get", "wakes_set",
    )  # fmt: skip

    def __init__(self, buf: mmap.mmap, offset: int, address: int) -> None:
        if offset % 8:
            raise ValueError(f"a sequence needs 8-byte alignment, offset {offset} is not")
        self.offset = offset
        self.view = memoryview(buf)[offset : offset + 8].cast("q")
        flag_at = offset + PARKED_FLAG_DELTA
        self.parked = memoryview(buf)[flag_at : flag_at + 8].cast("q")
        wakes_at = offset + WAKE_COUNTER_DELTA
        self.wakes = memoryview(buf)[wakes_at : wakes_at + 8].cast("q")
        self.address = address
        self.wake_address = address + WAKE_COUNTER_DELTA
        unfenced = fence.asymmetric_fence_ready()  # waiters fence us: plain stores suffice
        self.ordered = HARDWARE_ORDERED and unfenced
        self.get, self.set = cursor_accessors(self.view, address, fenced=not unfenced)
        self.wakes_get, self.wakes_set = cursor_accessors(self.wakes, self.wake_address)
        #: the writer's side of a ``doorbell.Doorbell``: rung with every wake-up, for a
        #: waiter that sleeps in a poll instead of on the futex (None: futex only)
        self.doorbell: Doorbell | None = None

    def publish(self, value: int) -> None:
        """Store ``value`` (release) and wake whoever is parked on this sequence (writer only)."""
        if self.ordered:  # ``set`` inlined: the cheapest correct store on x86-64
            self.view[0] = value
        else:
            self.set(value)
        # store-load order between the store above and this load: ``fence.waiter_fence``
        if self.parked[0]:
            self.wake()

    def park(self, seen: int, timeout_ns: int, stop: Callable[[], bool] | None = None) -> bool:
        """Sleep until this sequence moves away from ``seen``, a wake-up, or ``timeout_ns``.

        True if it returned because of a wake-up or a move (or a signal), False if the
        timeout ran out. Any number of processes may park on one sequence. ``stop`` is
        another reason not to sleep, re-checked with the cursor: a state the writer stores
        before an unconditional ``wake`` (the producer's end of stream), which a check
        made before the counter was read could have missed; or the ring's alert flag
        (``SequenceBarrier.park``), which catches an alert raised before this re-check.
        """
        event = self.wakes_get()  # before raising the flag: any later bump ends the wait
        if self.arm(seen, stop):
            return True
        return futex.wait(self.wake_address, event, timeout_ns)

    def arm(self, seen: int, stop: Callable[[], bool] | None = None) -> bool:
        """The waiter's half of the handshake without the sleep: raise the parked flag,
        fence, re-check. True if the sequence moved away from ``seen`` (or ``stop``): do
        not sleep. Else the writer's next publish wakes the futex and rings the doorbell,
        so a waiter may now sleep in a poll on the doorbell (``doorbell``)."""
        self.parked[0] = 1
        fence.waiter_fence()  # the flag store before the cursor re-check (and W's side)
        return self.get() != seen or (stop is not None and stop())

    def wake(self) -> None:
        """Wake everyone parked on this sequence. Only its writer may call it: the flag is
        cleared *before* the counter is bumped, and the bump is a plain increment."""
        self.parked[0] = 0
        self.wakes_set(self.wakes_get() + 1)  # release: after the clear
        futex.wake(self.wake_address)
        if self.doorbell is not None:
            self.doorbell.ring()

    def nudge(self) -> None:
        """Wake the processes asleep on this sequence now, from any process (``alert``).

        Touches no shared word, so it cannot disturb the writer's handshake, and cannot
        make a sleep fail either: a waiter that re-checks the reason for the nudge in its
        ``park`` (``stop``) after this process stored it does not sleep; one whose re-check
        came before the store and whose sleep begins after this wake sleeps until the next
        publish or its timeout.
        """
        futex.wake(self.wake_address)

    def release(self) -> None:
        """Drop the memoryviews so the mapping can be closed."""
        self.view.release()
        self.parked.release()
        self.wakes.release()

    def __repr__(self) -> str:
        return f"Sequence(offset={self.offset}, value={self.get()})"
