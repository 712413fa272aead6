"""``Consumer``: a named reader of a ring, behind a ``SequenceBarrier``.

It reads read-only views of what is available, works on them in place and releases them
with one store of its own cursor. ``poll`` never waits; ``wait`` waits through the role's
``WaitStrategy``; ``poll_one`` / ``get`` are the single-record paths (bytes out). What it
may read is what its barrier makes available: the producer's cursor, and for a consumer
declared ``after`` others, the lowest of their cursors too (a dependency barrier, so e.g.
matching reads only what risk has released). Once the producer has finished and this
consumer has read everything published, waits raise ``EndOfStreamError``.

What the ring hands it (``Ring.consumer``): besides a ``Role``'s peer line and read-only
slots, its ``name`` and the names it runs ``after``, its own ``cursor``, the producer's
cursor (``producer_cursor``, for the end of the stream), the ``barrier`` (the producer's
cursor first, then the dependencies' cursors; it knows the producer's finished state),
and the peer lines it waits on (``producer_peer``, ``dependency_peers``). A producer that
has finished is not waited on any more: its process may exit while this consumer drains.
"""

from __future__ import annotations

import mmap
import time
from typing import TYPE_CHECKING

import numpy as np

from ringbuffer.barrier import SequenceBarrier
from ringbuffer.errors import EndOfStreamError
from ringbuffer.peers import PEER_CHECK_NS, PeerLine
from ringbuffer.records import clone_records, concat_records
from ringbuffer.role import Role
from ringbuffer.sequence import Sequence
from ringbuffer.wait import WaitStrategy

if TYPE_CHECKING:
    from ringbuffer.ring import Ring


class Consumer(Role):
    """A named reader of a ring: reads views of available records, then releases them."""

    __slots__ = (
        "_available", "_barrier", "_dependency_peers", "_pending", "_producer_cursor",
        "_producer_peer", "_read_available", "after", "name",
    )  # fmt: skip

    def __init__(
        self,
        ring: Ring,
        wait: WaitStrategy,
        stale_after: float | None,
        *,
        peer: PeerLine,
        records: np.ndarray,
        buf: mmap.mmap,
        name: str,
        after: tuple[str, ...],
        cursor: Sequence,
        producer_cursor: Sequence,
        barrier: SequenceBarrier,
        producer_peer: PeerLine,
        dependency_peers: tuple[PeerLine, ...],
    ) -> None:
        self.name = name
        self.after = after
        super().__init__(ring, wait, stale_after, peer=peer, records=records, buf=buf)
        self._cursor = cursor
        self._producer_cursor = producer_cursor
        self._barrier = barrier
        self._read_available = barrier.available  # the producer's cursor itself if no ``after``
        self._producer_peer = producer_peer
        self._dependency_peers = dependency_peers
        self._next = cursor.get() + 1  # resume after what this consumer released
        self._pending = self._next - 1
        self._available = self._read_available()

    @property
    def released(self) -> int:
        """The highest sequence this consumer has released (-1 before the first)."""
        return self._next - 1

    def _park(self, timeout_ns: int) -> bool:
        """Sleep on the cursor that holds this consumer back: the producer's or a dependency's
        (False: the park timed out). The end of the stream and an alert end it too."""
        return self._barrier.park(self._next, timeout_ns)

    def _housekeeping(self, now: int) -> None:
        self._peer.beat(now)
        barrier = self._barrier
        barrier.check_alert()
        # End of stream once this consumer read everything published (not merely all that
        # its dependencies let through so far).
        finished = barrier.finished()
        if finished and self._producer_cursor.get() < self._next:
            raise EndOfStreamError(
                f"ring {barrier.ring_name!r}: the producer finished at sequence "
                f"{self._producer_cursor.get()} and consumer {self.name!r} has read it all"
            )
        if now - self._last_peer_check >= PEER_CHECK_NS:
            self._last_peer_check = now
            if not finished:  # a finished producer may exit: what it published stays
                self._producer_peer.check(self.stale_after, now)
            for peer in self._dependency_peers:
                peer.check(self.stale_after, now)

    def poll(self, limit: int | None = None) -> tuple[np.ndarray, ...]:
        """Read-only views of up to ``limit`` available records (1 or 2 views), or ().

        Hot path: never waits. The views stay valid until ``release()``. ``limit`` is None
        (all that is available, at most the capacity) or >= 1; raises ``ValueError`` else.
        """
        first = self._next
        if limit is None:
            limit = self._capacity
        elif limit < 1:
            raise ValueError(f"poll limit {limit!r}: must be >= 1, or None for all available")
        wanted = first + limit - 1
        available = self._available
        if wanted > available:  # the cached cursor cannot satisfy the request: refresh it
            available = self._available = self._read_available()
            if first > available:
                return ()
        last = available if wanted > available else wanted
        self._pending = last
        start = first & self._mask
        end = start + last - first + 1
        if end <= self._capacity:
            return (self._records[start:end],)
        return (self._records[start:], self._records[: end - self._capacity])

    def wait(
        self, limit: int | None = None, timeout: float | None = None
    ) -> tuple[np.ndarray, ...]:
        """Like ``poll`` but waits for at least one record.

        Raises ``ValueError`` for a ``limit`` below 1 (before waiting), ``WaitTimeoutError``,
        ``AlertedError``, ``PeerDeadError``, or ``EndOfStreamError`` once the producer
        finished and everything was read.
        """
        views = self.poll(limit)
        if views:
            return views
        self._available = self.wait_strategy.wait(
            self._next, self._read_available, self._housekeeping, timeout, self._park
        )
        return self.poll(limit)

    def arm(self) -> bool:
        """Get ready to sleep somewhere else than in ``wait``: in a poll that includes the
        ring's ``Doorbell`` (a process serving sockets too). Raises the parked flag on the
        cursor this consumer waits for, so the next publish rings the doorbell; True if
        there is no point sleeping (records are available, the stream ended, an alert).
        Drain the doorbell *before* arming, never after (``doorbell``)."""
        return self._barrier.arm(self._next)

    def keep_house(self) -> None:
        """For a consumer that polls and never ``wait``s: refresh its heartbeat and check
        its peers and the alert as a wait would (the peers at most every ``PEER_CHECK_NS``). Raises
        ``EndOfStreamError`` once the producer finished and everything was read,
        ``AlertedError`` or ``PeerDeadError``."""
        self._housekeeping(time.monotonic_ns())

    def release(self) -> None:
        """Give back everything the last ``poll``/``wait`` returned (one release store)."""
        last = self._pending
        if last < self._next:
            return
        self._next = last + 1
        self._cursor.publish(last)

    def take(self, limit: int | None = None, timeout: float | None = None) -> np.ndarray:
        """Wait, copy up to ``limit`` records out and release them (convenience path)."""
        views = self.wait(limit, timeout)
        batch = clone_records(views[0]) if len(views) == 1 else concat_records(views)
        self.release()
        return batch

    def poll_one(self) -> bytes | None:
        """Copy out and release the next record if one is available (slow path)."""
        seq = self._next
        if seq > self._available:
            self._available = self._read_available()
            if seq > self._available:
                return None
        offset = self._data_at + (seq & self._mask) * self._record_size
        record = self._buf[offset : offset + self._record_size]
        self._pending = seq
        self.release()
        return record

    def get(self, timeout: float | None = None) -> bytes:
        """Wait for the next record, copy it out and release it (slow path)."""
        record = self.poll_one()
        if record is None:
            self._available = self.wait_strategy.wait(
                self._next, self._read_available, self._housekeeping, timeout, self._park
            )
            record = self.poll_one()
        return record
