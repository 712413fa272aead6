"""``Sequence``: one int64 cursor in shared memory on its own cache line.

A ring has one for the producer (the highest published sequence) and one per consumer
(the highest sequence it has finished with). Sequences start at -1 (nothing yet) and only
grow; slot = ``seq & (capacity - 1)``. Reads are acquire loads and writes release stores
(see ``fence``), so whatever was written before a ``set`` is visible to whoever ``get``s it.
"""

from __future__ import annotations

import mmap

from ringbuffer.fence import HARDWARE_ORDERED, cursor_accessors

INITIAL = -1


class Sequence:
    """A view of the int64 at ``offset`` of ``buf`` with ordered ``get`` / ``set``.

    ``view`` is exposed for hot loops on hardware-ordered machines, where ``view[0]`` read
    or written inline is the cheapest correct access; elsewhere use ``get`` / ``set``.
    """

    __slots__ = ("address", "get", "offset", "ordered", "set", "view")

    def __init__(self, buf: mmap.mmap, offset: int, address: int) -> None:
        if offset % 8:
            raise ValueError(f"a sequence needs 8-byte alignment, offset {offset} is not")
        self.offset = offset
        self.view = memoryview(buf)[offset : offset + 8].cast("q")
        self.address = address
        self.ordered = HARDWARE_ORDERED
        self.get, self.set = cursor_accessors(self.view, address)

    def release(self) -> None:
        """Drop the memoryview so the mapping can be closed."""
        self.view.release()

    def __repr__(self) -> str:
        return f"Sequence(offset={self.offset}, value={self.get()})"
