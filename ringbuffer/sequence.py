"""``Sequence``: one int64 cursor in shared memory on its own cache line.

A ring has one for the producer (the highest published sequence) and one per consumer
(the highest sequence it has finished with). Sequences start at -1 (nothing yet) and only
grow; slot = ``seq & (capacity - 1)``. Reads are acquire loads and writes release stores
(see ``fence``), so whatever was written before a ``set`` is visible to whoever ``get``s it.
The 8 bytes after the cursor are its *parked* flag: a waiter sets it before sleeping in
the kernel on the cursor (``futex``), and the writer wakes it after its next store.
"""

from __future__ import annotations

import mmap

from ringbuffer import futex
from ringbuffer.fence import HARDWARE_ORDERED, cursor_accessors
from ringbuffer.layout import PARKED_FLAG_DELTA

INITIAL = -1


class Sequence:
    """A view of the int64 at ``offset`` of ``buf`` with ordered ``get`` / ``set``.

    ``view`` is exposed for hot loops on hardware-ordered machines, where ``view[0]`` read
    or written inline is the cheapest correct access; elsewhere use ``get`` / ``set``.
    """

    __slots__ = ("address", "get", "offset", "ordered", "parked", "set", "view")

    def __init__(self, buf: mmap.mmap, offset: int, address: int) -> None:
        if offset % 8:
            raise ValueError(f"a sequence needs 8-byte alignment, offset {offset} is not")
        self.offset = offset
        self.view = memoryview(buf)[offset : offset + 8].cast("q")
        flag_at = offset + PARKED_FLAG_DELTA
        self.parked = memoryview(buf)[flag_at : flag_at + 8].cast("q")
        self.address = address
        self.ordered = HARDWARE_ORDERED
        self.get, self.set = cursor_accessors(self.view, address)

    def publish(self, value: int) -> None:
        """Store ``value`` (release) and wake whoever is parked on this sequence."""
        if self.ordered:  # ``set`` inlined: the cheapest correct store on x86-64
            self.view[0] = value
        else:
            self.set(value)
        if self.parked[0]:
            self.wake()

    def park(self, seen: int, timeout_ns: int) -> None:
        """Sleep until this sequence moves away from ``seen``, a wake-up, or ``timeout_ns``."""
        self.parked[0] = 1
        if self.get() == seen:  # re-check after raising the flag: the writer may have moved
            futex.wait(self.address, seen, timeout_ns)

    def wake(self) -> None:
        """Wake everyone parked on this sequence (writers call it when ``parked[0]`` is set)."""
        self.parked[0] = 0
        futex.wake(self.address)

    def release(self) -> None:
        """Drop the memoryviews so the mapping can be closed."""
        self.view.release()
        self.parked.release()

    def __repr__(self) -> str:
        return f"Sequence(offset={self.offset}, value={self.get()})"
