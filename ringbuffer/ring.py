"""A single-producer, multicast shared-memory ring of fixed-size numpy records.

The Disruptor's design in one segment: the producer claims slots, fills them in place
(zero copy: it gets writable numpy views of the ring itself, two at the wrap) and
publishes them all with one cursor store; each named consumer reads read-only views of
what is available, works on them in place and releases them with one store of its own
cursor. The producer is gated by the slowest consumer (it caches that cursor and re-reads
it only when the ring looks full); a consumer declared ``after`` others sees only what
they have released (a dependency barrier), so e.g. matching reads only what risk finished.

    ring = Ring.create("orders", COMMAND_DTYPE, 1 << 16,
                       consumers=["risk", ConsumerSpec("audit", after=("risk",))])
    producer = Ring.attach(ring.name, COMMAND_DTYPE).producer()      # in the producer
    for view in producer.claim(256): fill(view)                      # 1 or 2 views
    producer.publish()
    consumer = Ring.attach(ring.name, COMMAND_DTYPE).consumer("risk")  # in a consumer
    for view in consumer.wait(): handle(view)                        # read-only views
    consumer.release()

A full ring is back-pressure (``claim`` waits, ``try_claim``/``offer`` return nothing),
never loss. A peer that dies while the other side waits on it raises ``PeerDeadError``
instead of hanging; ``alert()`` interrupts every wait with ``AlertedError``.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import psutil

from ringbuffer import fence, layout
from ringbuffer.errors import (
    AlertedError,
    AttachError,
    EndOfStreamError,
    LayoutMismatchError,
    PeerDeadError,
)
from ringbuffer.records import clone_records, concat_records, copy_records
from ringbuffer.segments import (
    NO_LOCK,
    Segment,
    attach_segment,
    create_segment,
    creator_pid,
    lock_byte,
    segment_name,
    unlink_segment,
)
from ringbuffer.sequence import INITIAL, Sequence
from ringbuffer.wait import DEFAULT_WAIT, WaitStrategy

PEER_CHECK_NS = 100_000_000  # how often a waiting side checks that its peers are alive
HOLDER_WAIT_S = 1.0  # how long a refused claimant waits for the holder to write its pid
NO_GATE = 1 << 62  # the gate of a ring without consumers: never full


@dataclass(frozen=True)
class ConsumerSpec:
    """A consumer's name and the consumers whose released records it waits for."""

    name: str
    after: tuple[str, ...] = ()


def _process_start_ms(pid: int) -> int:
    """The start time of ``pid`` in ms: with the pid it identifies a process despite pid reuse."""
    return round(psutil.Process(pid).create_time() * 1000)


def _peer_state(pid: int, start_ms: int) -> str | None:
    """None if the process ``pid`` started at ``start_ms`` runs, else why it does not."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "exited (zombie)"
        if abs(round(process.create_time() * 1000) - start_ms) > 50:
            return "exited (pid reused)"
    except psutil.NoSuchProcess:
        return "exited"
    except psutil.AccessDenied:
        return None
    return None


class Ring:
    """One ring segment mapped into this process. Make one with ``create`` or ``attach``."""

    def __init__(self, segment: Segment, dtype: np.dtype, owner: bool) -> None:
        self._segment = segment
        self.owner = owner
        self.dtype = np.dtype(dtype)
        whole = np.frombuffer(segment.buf, dtype=np.uint8)
        self._base_address = whole.ctypes.data
        self._header = whole[: layout.LINE].view(layout.HEADER_DTYPE)
        header = self._header[0]
        self.capacity = int(header["capacity"])
        self.record_size = int(header["record_size"])
        count = int(header["consumer_count"])
        self._producer_peer = whole[
            layout.PRODUCER_PEER_OFFSET : layout.PRODUCER_PEER_OFFSET + layout.LINE
        ].view(layout.PEER_DTYPE)
        self._consumers = whole[
            layout.CONSUMERS_OFFSET : layout.CONSUMERS_OFFSET + count * layout.LINE
        ].view(layout.CONSUMER_DTYPE)
        self.consumer_names = tuple(
            bytes(slot["name"]).rstrip(b"\0").decode() for slot in self._consumers
        )
        start = self.data_offset = int(header["data_offset"])
        stop = start + self.capacity * self.record_size
        self._records = whole[start:stop].view(self.dtype)
        self._readonly_records = self._records.view()
        self._readonly_records.flags.writeable = False
        self._sequences: dict[int, Sequence] = {}

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(
        cls,
        name: str,
        dtype: np.dtype,
        capacity: int,
        consumers: Iterable[str | ConsumerSpec] = (),
        initial_sequence: int = INITIAL,
    ) -> Ring:
        """Create and initialise a ring segment; the caller owns it and must ``unlink`` it.

        ``name`` is a label (the segment becomes ``tradepipe.<pid>.<label>``) or a full
        segment name. ``consumers`` fixes the consumer set: the producer is gated by all of
        them, so it must be known before the first record is published.
        ``initial_sequence`` is the sequence considered already published and consumed
        (e.g. the last journaled one, so sequences continue across restarts).
        """
        dtype = np.dtype(dtype)
        layout.check_capacity(capacity)
        if initial_sequence < INITIAL:
            raise ValueError(f"initial_sequence must be >= {INITIAL}, got {initial_sequence}")
        specs = [c if isinstance(c, ConsumerSpec) else ConsumerSpec(c) for c in consumers]
        names = [spec.name for spec in specs]
        if len(specs) > layout.MAX_CONSUMERS:
            raise ValueError(
                f"a ring takes at most {layout.MAX_CONSUMERS} consumers, got {len(specs)}"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"consumer names must be unique, got {names}")
        for spec in specs:
            if not spec.name or len(spec.name.encode()) > layout.NAME_BYTES:
                raise ValueError(
                    f"consumer name {spec.name!r} must be 1..{layout.NAME_BYTES} bytes"
                )
            for dependency in spec.after:
                if dependency not in names[: names.index(spec.name)]:
                    raise ValueError(
                        f"consumer {spec.name!r} runs after {dependency!r}, which must be "
                        f"declared before it (declared: {names})"
                    )
        full_name = name if creator_pid(name) is not None else segment_name(name)
        descr = layout.describe(dtype).encode()
        if len(descr) > layout.DESCR_BYTES:
            raise ValueError(f"record layout description too long ({len(descr)} bytes)")
        size = layout.segment_size(capacity, dtype.itemsize, len(specs))
        segment = create_segment(full_name, size)
        try:
            whole = np.frombuffer(segment.buf, dtype=np.uint8)
            header = whole[: layout.LINE].view(layout.HEADER_DTYPE)
            header["version"] = layout.LAYOUT_VERSION
            header["consumer_count"] = len(specs)
            header["capacity"] = capacity
            header["record_size"] = dtype.itemsize
            header["fingerprint"] = layout.fingerprint(dtype)
            header["descr_len"] = len(descr)
            header["data_offset"] = layout.data_offset(len(specs))
            header["created_ns"] = time.monotonic_ns()
            descr_at = layout.descr_offset(len(specs))
            whole[descr_at : descr_at + len(descr)] = np.frombuffer(descr, dtype=np.uint8)
            cursor_at = layout.PRODUCER_CURSOR_OFFSET
            whole[cursor_at : cursor_at + 8].view(np.int64)[0] = initial_sequence
            slots = whole[
                layout.CONSUMERS_OFFSET : layout.CONSUMERS_OFFSET + len(specs) * layout.LINE
            ].view(layout.CONSUMER_DTYPE)
            for index, spec in enumerate(specs):
                slots[index]["cursor"] = initial_sequence
                slots[index]["name"] = spec.name.encode()
                slots[index]["after_mask"] = sum(1 << names.index(d) for d in spec.after)
            del whole, header, slots
            segment.buf[: len(layout.MAGIC)] = layout.MAGIC  # last: the ring is now valid
        except BaseException:
            segment.close()
            unlink_segment(full_name)
            raise
        return cls(segment, dtype, owner=True)

    @classmethod
    def attach(cls, name: str, dtype: np.dtype) -> Ring:
        """Map an existing ring, checking that it holds records of ``dtype``."""
        segment = attach_segment(name)
        try:
            whole = np.frombuffer(segment.buf, dtype=np.uint8)
            if segment.size < layout.CONSUMERS_OFFSET:
                raise LayoutMismatchError(f"segment {name!r} is too small to be a ring")
            header = whole[: layout.LINE].view(layout.HEADER_DTYPE)[0]
            count = int(header["consumer_count"])
            at = layout.descr_offset(count)
            descr = bytes(whole[at : at + int(header["descr_len"])]).decode(errors="replace")
            layout.check_header(name, header, descr, np.dtype(dtype))
            del whole, header
        except BaseException:
            segment.close()
            raise
        return cls(segment, dtype, owner=False)

    @property
    def name(self) -> str:
        return self._segment.name

    def close(self) -> None:
        """Unmap this process's view (handles made from it must not be used afterwards)."""
        for sequence in self._sequences.values():
            sequence.release()
        self._sequences.clear()
        self._header = self._producer_peer = self._consumers = None
        self._records = self._readonly_records = None
        self._segment.close()

    def unlink(self) -> None:
        """Remove the segment's name; processes that mapped it keep their mapping."""
        self._segment.unlink()

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self.owner:
            self.unlink()

    # ----------------------------------------------------------------- roles
    def producer(
        self, wait: WaitStrategy | None = None, stale_after: float | None = None
    ) -> Producer:
        """Become this ring's (only) producer; the role is this process's until the returned
        object is closed or dropped. Raises ``AttachError`` naming the live holder."""
        return Producer(self, wait or DEFAULT_WAIT(), stale_after)

    def consumer(
        self, name: str, wait: WaitStrategy | None = None, stale_after: float | None = None
    ) -> Consumer:
        """Become the consumer ``name`` (declared at creation); resumes from its cursor. Held
        like the producer role: one live holder at a time."""
        if name not in self.consumer_names:
            raise AttachError(
                f"ring {self.name!r} has no consumer {name!r}; declared: {list(self.consumer_names)}"
            )
        return Consumer(self, self.consumer_names.index(name), wait or DEFAULT_WAIT(), stale_after)

    # ----------------------------------------------------------------- control
    def alert(self) -> None:
        """Interrupt every wait on this ring, in every process, with ``AlertedError``."""
        self._header[0]["alert"] = 1
        offsets = [layout.PRODUCER_CURSOR_OFFSET] + [
            layout.consumer_offset(i) for i in range(len(self.consumer_names))
        ]
        for offset in offsets:
            self._sequence(offset).nudge()  # not ``wake``: only a sequence's writer bumps it

    def clear_alert(self) -> None:
        self._header[0]["alert"] = 0

    @property
    def alerted(self) -> bool:
        return bool(self._header[0]["alert"])

    def status(self) -> dict:
        """A snapshot of cursors, fill and peers, for monitoring (not for synchronisation)."""
        published = int(self._sequence(layout.PRODUCER_CURSOR_OFFSET).get())
        consumers = {}
        for index, name in enumerate(self.consumer_names):
            slot = self._consumers[index]
            consumers[name] = {
                "cursor": int(slot["cursor"]),
                "lag": published - int(slot["cursor"]),
                "pid": int(slot["pid"]),
                "heartbeat_ns": int(slot["heartbeat_ns"]),
                "parked_on": bool(slot["parked"]),  # someone (producer, dependent) parks on it
            }
        slowest = min((c["cursor"] for c in consumers.values()), default=published)
        return {
            "name": self.name,
            "capacity": self.capacity,
            "published": published,
            "fill": (published - slowest) / self.capacity,
            "producer_pid": int(self._producer_peer[0]["pid"]),
            "producer_heartbeat_ns": int(self._producer_peer[0]["heartbeat_ns"]),
            "producer_state": int(self._header[0]["producer_state"]),
            "consumers_parked": bool(self._sequence(layout.PRODUCER_CURSOR_OFFSET).parked[0]),
            "consumers": consumers,
        }

    # ----------------------------------------------------------------- internals
    def _sequence(self, offset: int) -> Sequence:
        """The (shared, memoised) ``Sequence`` at ``offset`` of the segment."""
        sequence = self._sequences.get(offset)
        if sequence is None:
            sequence = Sequence(self._segment.buf, offset, self._base_address + offset)
            self._sequences[offset] = sequence
        return sequence

    def _claim_peer(self, peer_line: np.ndarray, role: str) -> int:
        """Take ``role`` for this process and record it in its peer line (pid, start time);
        refuse if a live process holds it. Returns the fd holding the role's lock.

        Atomic: the role is an exclusive open-file-description lock (``fcntl``) on the first
        byte of its peer line, so of processes attaching at the same moment exactly one
        wins -- a check of the pid field and then a store (the old way) let several see it
        free. Why a lock and not a compare-and-swap of the pid: Python has no CAS on shared
        memory, a compiled one would need the pid *and* its start time swapped as one word,
        and a lock held by a process that dies, however it dies, is released by the kernel,
        so a crashed producer's role can be taken over without guessing whether it lives.
        The lock is per open file, so a second role object in this process is refused too.
        Without OFD locks (not Linux) this falls back to the pid check, which is racy.
        """
        peer = peer_line[0]
        fd = lock_byte(self.name, peer_line.ctypes.data - self._base_address)
        if fd is None:
            raise AttachError(
                f"ring {self.name!r}: {role} is already attached by {self._holder(peer)}"
            )
        me = os.getpid()
        try:
            if fd == NO_LOCK:
                pid = int(peer["pid"])
                if pid and pid != me and _peer_state(pid, int(peer["pid_start"])) is None:
                    raise AttachError(
                        f"ring {self.name!r}: {role} is already attached by live pid {pid}"
                    )
            peer["pid_start"] = _process_start_ms(me)
            peer["heartbeat_ns"] = time.monotonic_ns()
            peer["pid"] = me  # last: a refused claimant takes a live pid here as the holder's
        except BaseException:
            if fd != NO_LOCK:
                os.close(fd)  # give the role back
            raise
        return fd

    @staticmethod
    def _holder(peer: np.void) -> str:
        """Who holds a role whose lock was refused: its pid, once the holder (which may
        have won the lock a moment ago) has written it, yielding the core meanwhile."""
        deadline = time.monotonic() + HOLDER_WAIT_S
        while True:
            pid = int(peer["pid"])
            if pid and _peer_state(pid, int(peer["pid_start"])) is None:
                return f"live pid {pid}"
            if time.monotonic() > deadline:
                return "another process (its pid is not recorded yet)"
            os.sched_yield()

    def _check_peer(self, peer: np.void, role: str, stale_after: float | None, now: int) -> None:
        pid = int(peer["pid"])
        if not pid:
            return  # not attached yet (or detached cleanly): wait for it
        why = _peer_state(pid, int(peer["pid_start"]))
        if why is None and stale_after is not None:
            silent = (now - int(peer["heartbeat_ns"])) / 1e9
            if silent > stale_after:
                why = f"silent for {silent:.1f} s (heartbeat stale, limit {stale_after} s)"
        if why is not None:
            raise PeerDeadError(f"ring {self.name!r}: {role} pid {pid} {why}", role, pid)

    def _check_alert(self) -> None:
        if self._header[0]["alert"]:
            raise AlertedError(f"ring {self.name!r} was alerted")


class _Role:
    """What a producer and a consumer share: the ring's geometry, a wait strategy, and a
    peer line (pid, start time, heartbeat) this process claims for its role."""

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
        peer: np.ndarray,
        role: str,
        records: np.ndarray,
    ) -> None:
        self.ring = ring
        self.wait_strategy = wait
        self.stale_after = stale_after
        self._peer = peer
        # A role writes a cursor: register for the waiters' membarrier in *this* process
        # (a no-op if done; needed again in a child forked after its sequences were made).
        fence.asymmetric_fence_ready()
        fd = ring._claim_peer(peer, role)
        # the role is held while this object lives: ``close`` or garbage collection frees it
        self._role_lock = weakref.finalize(self, os.close, fd) if fd != NO_LOCK else None
        self._capacity = ring.capacity
        self._mask = ring.capacity - 1
        self._records = records
        self._buf = ring._segment.buf
        self._data_at = ring.data_offset
        self._record_size = ring.record_size
        self._last_peer_check = 0

    def heartbeat(self) -> None:
        """Tell the other side this process is alive (call it from an otherwise idle loop)."""
        self._peer[0]["heartbeat_ns"] = time.monotonic_ns()

    def close(self) -> None:
        """Detach cleanly: another process may take the role (a consumer's cursor stays)."""
        lock = self._role_lock
        if lock is None or lock.alive:  # once: never clear the pid of the role's next owner
            self._peer[0]["pid"] = 0
            if lock is not None:
                lock()  # releases the role (after the pid is cleared)


class Producer(_Role):
    """The single writer of a ring: claims slots, fills them in place, publishes."""

    __slots__ = ("_gate", "_gates", "_state")

    def __init__(self, ring: Ring, wait: WaitStrategy, stale_after: float | None) -> None:
        super().__init__(
            ring, wait, stale_after, ring._producer_peer[0:1], "producer", ring._records
        )
        self._cursor = ring._sequence(layout.PRODUCER_CURSOR_OFFSET)
        self._state = ring._sequence(layout.PRODUCER_STATE_OFFSET)
        self._state.set(layout.PRODUCER_ATTACHED)
        self._gates = [
            ring._sequence(layout.consumer_offset(i) + layout.CURSOR_FIELD_OFFSET)
            for i in range(len(ring.consumer_names))
        ]
        self._next = self._cursor.get() + 1  # resume after what a previous producer published
        self._gate = self._read_gate()

    @property
    def published(self) -> int:
        """The highest published sequence (-1 before the first)."""
        return self._cursor.get()

    @property
    def next_sequence(self) -> int:
        """The sequence the next claimed slot will get."""
        return self._next

    def _read_gate(self) -> int:
        gates = self._gates
        if not gates:
            return NO_GATE
        return min(gate.get() for gate in gates)

    def _park(self, timeout_ns: int) -> bool:
        """Sleep on the cursor of a consumer that keeps the next slot busy (False: timed out)."""
        wrap_point = self._next - self._capacity
        for gate in self._gates:
            seen = gate.get()
            if seen < wrap_point:
                return gate.park(seen, timeout_ns)
        return True

    def _housekeeping(self, now: int) -> None:
        self._peer[0]["heartbeat_ns"] = now
        self.ring._check_alert()
        if now - self._last_peer_check >= PEER_CHECK_NS:
            self._last_peer_check = now
            ring = self.ring
            wrap_point = self._next - self._capacity
            for index, name in enumerate(ring.consumer_names):
                slot = ring._consumers[index]
                if int(slot["cursor"]) < wrap_point:
                    ring._check_peer(slot, f"consumer {name!r}", self.stale_after, now)

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
            self._gate = self.wait_strategy.wait(
                wrap_point, self._read_gate, self._housekeeping, timeout, self._park
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
            self._gate = self.wait_strategy.wait(
                self._next - self._capacity,
                self._read_gate,
                self._housekeeping,
                timeout,
                self._park,
            )
            if not self.offer(record):  # pragma: no cover - the wait guarantees space
                raise AssertionError("slot still busy after the wait")

    def finish(self) -> None:
        """Declare the end of the stream: consumers drain what was published, then stop."""
        self.publish()
        self._state.set(layout.PRODUCER_FINISHED)  # release: ordered after the cursor store
        self._cursor.wake()  # always: parked consumers re-check the state (Consumer._park)


class Consumer(_Role):
    """A named reader of a ring: reads views of available records, then releases them."""

    __slots__ = (
        "_available", "_dependencies", "_pending", "_producer_cursor", "_producer_state",
        "_read_available", "after", "name",
    )  # fmt: skip

    def __init__(
        self, ring: Ring, index: int, wait: WaitStrategy, stale_after: float | None
    ) -> None:
        self.name = ring.consumer_names[index]
        slot = ring._consumers[index : index + 1]
        role = f"consumer {self.name!r}"
        super().__init__(ring, wait, stale_after, slot, role, ring._readonly_records)
        self._cursor = ring._sequence(layout.consumer_offset(index) + layout.CURSOR_FIELD_OFFSET)
        self._producer_cursor = ring._sequence(layout.PRODUCER_CURSOR_OFFSET)
        self._producer_state = ring._sequence(layout.PRODUCER_STATE_OFFSET)
        mask = int(slot[0]["after_mask"])
        self.after = tuple(n for i, n in enumerate(ring.consumer_names) if mask >> i & 1)
        self._dependencies = [
            ring._sequence(layout.consumer_offset(i) + layout.CURSOR_FIELD_OFFSET)
            for i in range(len(ring.consumer_names))
            if mask >> i & 1
        ]
        self._read_available = (
            self._producer_cursor.get if not self._dependencies else self._read_through_barrier
        )
        self._next = self._cursor.get() + 1  # resume after what this consumer released
        self._pending = self._next - 1
        self._available = self._read_available()

    @property
    def released(self) -> int:
        """The highest sequence this consumer has released (-1 before the first)."""
        return self._next - 1

    def _read_through_barrier(self) -> int:
        available = self._producer_cursor.get()
        for dependency in self._dependencies:
            released = dependency.get()
            if released < available:
                available = released
        return available

    def _park(self, timeout_ns: int) -> bool:
        """Sleep on the cursor that holds this consumer back: the producer's or a dependency's
        (False: the park timed out)."""
        producer_cursor = self._producer_cursor
        seen = producer_cursor.get()
        if seen < self._next:  # all published was read: the end of stream also ends the park
            return producer_cursor.park(seen, timeout_ns, self._producer_finished)
        for sequence in self._dependencies:
            seen = sequence.get()
            if seen < self._next:
                return sequence.park(seen, timeout_ns)
        return True

    def _producer_finished(self) -> bool:
        return self._producer_state.get() == layout.PRODUCER_FINISHED

    def _housekeeping(self, now: int) -> None:
        self._peer[0]["heartbeat_ns"] = now
        ring = self.ring
        ring._check_alert()
        # End of stream once this consumer read everything published (not merely all that
        # its dependencies let through so far).
        finished = self._producer_state.get() == layout.PRODUCER_FINISHED
        if finished and self._producer_cursor.get() < self._next:
            raise EndOfStreamError(
                f"ring {ring.name!r}: the producer finished at sequence "
                f"{self._producer_cursor.get()} and consumer {self.name!r} has read it all"
            )
        if now - self._last_peer_check >= PEER_CHECK_NS:
            self._last_peer_check = now
            ring._check_peer(ring._producer_peer[0], "producer", self.stale_after, now)
            for index, name in enumerate(ring.consumer_names):
                if name in self.after:
                    slot = ring._consumers[index]
                    ring._check_peer(slot, f"consumer {name!r}", self.stale_after, now)

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
