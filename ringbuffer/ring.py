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

This module is the ring's lifecycle (``create``, ``attach``, ``close``, ``unlink``,
``status``, ``alert``) and the place where roles are wired: ``producer()`` and
``consumer()`` hand each role exactly what it uses -- its sequences (``sequence``), its
``SequenceBarrier`` (``barrier``), its slots and its peer line (``peers``) -- so the roles
(``producer``, ``consumer``, their common ``role``) read no private state of the ring.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ringbuffer import layout
from ringbuffer.barrier import SequenceBarrier
from ringbuffer.consumer import Consumer
from ringbuffer.errors import AttachError, LayoutMismatchError
from ringbuffer.peers import PeerLine
from ringbuffer.producer import Producer
from ringbuffer.segments import (
    Segment,
    attach_segment,
    create_segment,
    creator_pid,
    segment_name,
    unlink_segment,
)
from ringbuffer.sequence import INITIAL, Sequence
from ringbuffer.wait import DEFAULT_WAIT, WaitStrategy

__all__ = ["Consumer", "ConsumerSpec", "Producer", "Ring"]


@dataclass(frozen=True)
class ConsumerSpec:
    """A consumer's name and the consumers whose released records it waits for."""

    name: str
    after: tuple[str, ...] = ()


class Ring:
    """One ring segment mapped into this process. Make one with ``create`` or ``attach``."""

    def __init__(self, segment: Segment, dtype: np.dtype, owner: bool) -> None:
        self._segment = segment
        self.owner = owner
        self.dtype = np.dtype(dtype)
        whole = np.frombuffer(segment.buf, dtype=np.uint8)
        self._base_address = whole.ctypes.data
        self._header = whole[: layout.LINE].view(layout.HEADER_DTYPE)
        self._alert = self._header["alert"]  # a one-element view of the alert word
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
        self._header = self._alert = self._producer_peer = self._consumers = None
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
        gates = tuple(self._consumer_cursor(i) for i in range(len(self.consumer_names)))
        return Producer(
            self,
            wait or DEFAULT_WAIT(),
            stale_after,
            peer=self._peer_line(None),
            records=self._records,
            buf=self._segment.buf,
            cursor=self._sequence(layout.PRODUCER_CURSOR_OFFSET),
            state=self._sequence(layout.PRODUCER_STATE_OFFSET),
            barrier=SequenceBarrier(self.name, gates, self._alert),
            consumers=tuple((gate, self._peer_line(index)) for index, gate in enumerate(gates)),
        )

    def consumer(
        self, name: str, wait: WaitStrategy | None = None, stale_after: float | None = None
    ) -> Consumer:
        """Become the consumer ``name`` (declared at creation); resumes from its cursor. Held
        like the producer role: one live holder at a time."""
        if name not in self.consumer_names:
            raise AttachError(
                f"ring {self.name!r} has no consumer {name!r}; declared: {list(self.consumer_names)}"
            )
        index = self.consumer_names.index(name)
        mask = int(self._consumers[index]["after_mask"])
        after = [i for i in range(len(self.consumer_names)) if mask >> i & 1]
        producer_cursor = self._sequence(layout.PRODUCER_CURSOR_OFFSET)
        return Consumer(
            self,
            wait or DEFAULT_WAIT(),
            stale_after,
            peer=self._peer_line(index),
            records=self._readonly_records,
            buf=self._segment.buf,
            name=name,
            after=tuple(self.consumer_names[i] for i in after),
            cursor=self._consumer_cursor(index),
            producer_cursor=producer_cursor,
            barrier=SequenceBarrier(
                self.name,
                (producer_cursor, *(self._consumer_cursor(i) for i in after)),
                self._alert,
                state=self._sequence(layout.PRODUCER_STATE_OFFSET),
            ),
            producer_peer=self._peer_line(None),
            dependency_peers=tuple(self._peer_line(i) for i in after),
        )

    # ----------------------------------------------------------------- control
    def alert(self) -> None:
        """Interrupt every wait on this ring, in every process, with ``AlertedError``."""
        self._alert[0] = 1  # before the nudges: a waiter about to park re-checks it
        offsets = [layout.PRODUCER_CURSOR_OFFSET] + [
            layout.consumer_offset(i) for i in range(len(self.consumer_names))
        ]
        for offset in offsets:
            self._sequence(offset).nudge()  # not ``wake``: only a sequence's writer bumps it

    def clear_alert(self) -> None:
        """Let waits on this ring run again (in every process)."""
        self._alert[0] = 0

    @property
    def alerted(self) -> bool:
        return bool(self._alert[0])

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

    def consumer_cursor(self, name: str) -> int:
        """The highest sequence consumer ``name`` has released (-1 before the first), read now.

        For whoever owns the ring after its consumer died (a supervisor working out how far
        a dead stage got), not for synchronisation: a live consumer may move it at any time.
        """
        if name not in self.consumer_names:
            raise AttachError(
                f"ring {self.name!r} has no consumer {name!r}; declared: {list(self.consumer_names)}"
            )
        return int(self._consumer_cursor(self.consumer_names.index(name)).get())

    def read(self, first: int, count: int) -> np.ndarray:
        """A copy of the ``count`` records of sequences ``first`` .. ``first + count - 1``.

        Post-mortem inspection (the records a dead consumer released last); the caller makes
        sure they are published and not yet overwritten (within ``capacity`` of the cursor).
        """
        if not 0 <= count <= self.capacity or first < 0:
            raise ValueError(f"read of {count} records from {first}: must be 0..{self.capacity}")
        index = (np.arange(first, first + count) & (self.capacity - 1)).astype(np.intp)
        return self._records[index].copy()

    # ----------------------------------------------------------------- internals
    def _sequence(self, offset: int) -> Sequence:
        """The (shared, memoised) ``Sequence`` at ``offset`` of the segment."""
        sequence = self._sequences.get(offset)
        if sequence is None:
            sequence = Sequence(self._segment.buf, offset, self._base_address + offset)
            self._sequences[offset] = sequence
        return sequence

    def _consumer_cursor(self, index: int) -> Sequence:
        return self._sequence(layout.consumer_offset(index) + layout.CURSOR_FIELD_OFFSET)

    def _peer_line(self, index: int | None) -> PeerLine:
        """The peer line of consumer ``index``, or of the producer (None)."""
        if index is None:
            return PeerLine(self.name, self._producer_peer, layout.PRODUCER_PEER_OFFSET, "producer")
        return PeerLine(
            self.name,
            self._consumers[index : index + 1],
            layout.consumer_offset(index),
            f"consumer {self.consumer_names[index]!r}",
        )
