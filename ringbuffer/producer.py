"""``Producer``: the single writer of a ring (the Disruptor's single-producer sequencer).

It claims slots, fills them in place and publishes them with one store of its cursor.
``claim(n)`` waits for ``n`` free slots and returns writable views of the ring itself (two
at the wrap); ``try_claim`` and ``offer`` never wait (a full ring is back-pressure, never
loss); ``finish()`` ends the stream. It may overwrite a slot once every consumer has
released it: its ``SequenceBarrier`` holds the consumers' cursors (its gating sequences),
whose lowest value it caches and re-reads only when the ring looks full.

What the ring hands it (``Ring.producer``): besides a ``Role``'s peer line and slots, its
``cursor`` (the published sequence), the producer ``state`` word (attached / finished),
the ``barrier`` over the consumers' cursors, and each consumer's cursor with its peer line
(``consumers``), to check the liveness of a consumer that keeps the ring full.
"""

from __future__ import annotations

import mmap
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from ringbuffer import layout
from ringbuffer.barrier import SequenceBarrier
from ringbuffer.peers import PEER_CHECK_NS, PeerLine
from ringbuffer.records import copy_records
from ringbuffer.role import Role
from ringbuffer.sequence import Sequence
from ringbuffer.wait import WaitStrategy

if TYPE_CHECKING:
    from ringbuffer.doorbell import Doorbell
    from ringbuffer.ring import Ring


class Producer(Role):
    """The single writer of a ring: claims slots, fills them in place, publishes."""

    __slots__ = ("_barrier", "_consumers", "_gate", "_read_gate", "_state")

    def __init__(
        self,
        ring: Ring,
        wait: WaitStrategy,
        stale_after: float | None,
        *,
        peer: PeerLine,
        records: np.ndarray,
        buf: mmap.mmap,
        cursor: Sequence,
        state: Sequence,
        barrier: SequenceBarrier,
        consumers: tuple[tuple[Sequence, PeerLine], ...],
    ) -> None:
        super().__init__(ring, wait, stale_after, peer=peer, records=records, buf=buf)
        self._cursor = cursor
        self._state = state
        self._state.set(layout.PRODUCER_ATTACHED)
        self._barrier = barrier
        self._read_gate = barrier.available  # the slowest consumer's cursor, read now
        self._consumers = consumers
        self._next = cursor.get() + 1  # resume after what a previous producer published
        self._gate = self._read_gate()

    @property
    def published(self) -> int:
        """The highest published sequence (-1 before the first)."""
        return self._cursor.get()

    @property
    def next_sequence(self) -> int:
        """The sequence the next claimed slot will get."""
        return self._next

    def _housekeeping(self, wrap_point: int, now: int) -> None:
        """Beat, check for an alert, and check the liveness of every consumer that still
        holds a slot up to ``wrap_point`` (the last slot the pending claim needs freed)."""
        self._peer.beat(now)
        self._barrier.check_alert()
        if now - self._last_peer_check >= PEER_CHECK_NS:
            self._last_peer_check = now
            for cursor, peer in self._consumers:
                if cursor.get() < wrap_point:
                    peer.check(self.stale_after, now)

    def _views(self, first: int, count: int) -> tuple[np.ndarray, ...]:
        start = first & self._mask
        end = start + count
        if end <= self._capacity:
            return (self._records[start:end],)
        return (self._records[start:], self._records[: end - self._capacity])

    def claim(self, n: int, timeout: float | None = None) -> tuple[np.ndarray, ...]:
        """Claim the next ``n`` slots, waiting for space; return 1 or 2 writable views.

        Hot path: no allocation beyond the views. Fill the views, then ``publish()``.
        Raises ``ValueError`` if ``n`` is not in 1..capacity, and the wait's errors.
        """
        if not 0 < n <= self._capacity:
            raise ValueError(f"claim of {n} slots: must be 1..{self._capacity} (the capacity)")
        first = self._next
        wrap_point = first + n - 1 - self._capacity
        if wrap_point > self._gate:
            # park on a consumer that keeps any of the n slots busy, not only the first
            park = partial(self._barrier.park, wrap_point)
            self._gate = self.wait_strategy.wait(
                wrap_point, self._read_gate, partial(self._housekeeping, wrap_point), timeout, park
            )
        self._next = first + n
        return self._views(first, n)

    def try_claim(self, n: int) -> tuple[np.ndarray, ...]:
        """Claim up to ``n`` slots that are free now, without waiting; () if the ring is full."""
        if n <= 0:
            raise ValueError(f"claim of {n} slots: must be positive")
        first = self._next
        free = self._gate + self._capacity - first + 1
        if free < n:
            self._gate = self._read_gate()
            free = self._gate + self._capacity - first + 1
            if free <= 0:
                return ()
        n = min(n, free, self._capacity)
        self._next = first + n
        return self._views(first, n)

    def try_claim_exactly(self, n: int) -> tuple[np.ndarray, ...]:
        """Claim ``n`` slots if ``n`` are free now, else none: () without waiting.

        For a source that cannot wait and must not split what it sends (a gateway answers
        "busy" instead: nothing half-sent, nothing lost silently).
        """
        if not 0 < n <= self._capacity:
            raise ValueError(f"claim of {n} slots: must be 1..{self._capacity} (the capacity)")
        first = self._next
        if self._gate + self._capacity - first + 1 < n:
            self._gate = self._read_gate()
            if self._gate + self._capacity - first + 1 < n:
                return ()
        self._next = first + n
        return self._views(first, n)

    def publish(self) -> None:
        """Make every claimed slot visible to consumers (one release store of the cursor)."""
        self._cursor.publish(self._next - 1)

    def publish_batch(self, records: np.ndarray, timeout: float | None = None) -> None:
        """Copy ``records`` into the ring (in capacity-sized chunks) and publish them."""
        total = len(records)
        done = 0
        while done < total:
            n = min(total - done, self._capacity)
            for view in self.claim(n, timeout):
                copy_records(view, records[done : done + len(view)])
                done += len(view)
            self.publish()

    def offer(self, record: bytes | memoryview | np.void) -> bool:
        """Publish one record if there is space now; False if the ring is full (slow path)."""
        seq = self._next
        if seq - self._capacity > self._gate:
            self._gate = self._read_gate()
            if seq - self._capacity > self._gate:
                return False
        offset = self._data_at + (seq & self._mask) * self._record_size
        self._buf[offset : offset + self._record_size] = record
        self._next = seq + 1
        cursor = self._cursor
        if cursor.ordered:  # Sequence.publish inlined: this runs once per record
            cursor.view[0] = seq
        else:
            cursor.set(seq)
        if cursor.parked[0]:
            cursor.wake()
        return True

    def put(self, record: bytes | memoryview | np.void, timeout: float | None = None) -> None:
        """Publish one record, waiting for space (slow path: prefer ``claim``)."""
        if not self.offer(record):
            wrap_point = self._next - self._capacity
            self._gate = self.wait_strategy.wait(
                wrap_point,
                self._read_gate,
                partial(self._housekeeping, wrap_point),
                timeout,
                partial(self._barrier.park, wrap_point),
            )
            if not self.offer(record):  # pragma: no cover - the wait guarantees space
                raise AssertionError("slot still busy after the wait")

    def ring_doorbell(self, doorbell: Doorbell) -> None:
        """Ring ``doorbell`` with every wake-up of this ring's parked consumers, for a
        consumer that sleeps in a poll on it (``Consumer.arm``, ``doorbell``)."""
        self._cursor.doorbell = doorbell

    def finish(self) -> None:
        """Declare the end of the stream: consumers drain what was published, then stop."""
        self.publish()
        self._state.set(layout.PRODUCER_FINISHED)  # release: ordered after the cursor store
        self._cursor.wake()  # always: parked consumers re-check it (SequenceBarrier.park)
