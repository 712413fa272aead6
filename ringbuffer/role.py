"""``Role``: what a ring's producer and its consumers share.

A role is held by one process at a time (``PeerLine.claim``: a lock the kernel releases
when the holder dies) from construction until ``close()`` or garbage collection. It gets
from the ``Ring`` that makes it (``Ring.producer`` / ``Ring.consumer``), and touches
nothing of the ring beyond its public attributes (``name``, ``capacity``, ``record_size``,
``data_offset``):

* ``peer`` -- its own peer line (pid, start time, heartbeat; the role's lock);
* ``records`` -- the ring's slots as one numpy array (writable for the producer, read-only
  for a consumer), sliced into the views ``claim`` / ``poll`` return;
* ``buf`` -- the segment's mapping, for the single-record paths that copy bytes
  (``offer``, ``poll_one``) at ``data_offset + slot * record_size``.

The subclasses add their sequences and their ``SequenceBarrier``. Hot-path state is copied
into the role's own slots at construction, so a claim or a poll reads no other object.
"""

from __future__ import annotations

import mmap
import os
import time
import weakref
from typing import TYPE_CHECKING

import numpy as np

from ringbuffer import fence
from ringbuffer.peers import PeerLine
from ringbuffer.segments import NO_LOCK
from ringbuffer.wait import WaitStrategy

if TYPE_CHECKING:
    from ringbuffer.ring import Ring


class Role:
    """The ring's geometry, a wait strategy, and the peer line this process claims."""

    __slots__ = (
        "__weakref__", "_buf", "_capacity", "_cursor", "_data_at", "_last_peer_check",
        "_mask", "_next", "_peer", "_record_size", "_records", "_role_lock", "ring",
        "stale_after", "wait_strategy",
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
    ) -> None:
        self.ring = ring
        self.wait_strategy = wait
        self.stale_after = stale_after
        self._peer = peer
        # A role writes a cursor: register for the waiters' membarrier in *this* process
        # (a no-op if done; needed again in a child forked after its sequences were made).
        fence.asymmetric_fence_ready()
        fd = peer.claim()
        # the role is held while this object lives: ``close`` or garbage collection frees it
        self._role_lock = weakref.finalize(self, os.close, fd) if fd != NO_LOCK else None
        self._capacity = ring.capacity
        self._mask = ring.capacity - 1
        self._records = records
        self._buf = buf
        self._data_at = ring.data_offset
        self._record_size = ring.record_size
        self._last_peer_check = 0

    def heartbeat(self) -> None:
        """Tell the other side this process is alive (call it from an otherwise idle loop)."""
        self._peer.beat(time.monotonic_ns())

    def close(self) -> None:
        """Detach cleanly: another process may take the role (a consumer's cursor stays)."""
        lock = self._role_lock
        if lock is None or lock.alive:  # once: never clear the pid of the role's next owner
            self._peer.leave()
            if lock is not None:
                lock()  # releases the role (after the pid is cleared)
