"""Generic shared-memory rings: fixed-size numpy records, one producer, multicast consumers.

Knows nothing of trading. See ``ring`` for the model and ``docs/architecture.md`` for how
the pipeline uses it. One concept per module, in the LMAX Disruptor's vocabulary: ``ring``
(lifecycle, wiring the roles), ``producer`` / ``consumer`` (the roles, ``role`` what they
share), ``barrier`` (``SequenceBarrier``), ``sequence`` (padded cursors and their park
handshake), ``wait`` (wait strategies), ``peers`` (liveness and role locks), ``layout``,
``segments``, ``fence``, ``futex`` (parking), ``doorbell`` (the wake-up as a file
descriptor, for a consumer that sleeps in a poll), ``records``.
"""

from ringbuffer.consumer import Consumer
from ringbuffer.doorbell import Doorbell
from ringbuffer.errors import (
    AlertedError,
    AttachError,
    EndOfStreamError,
    LayoutMismatchError,
    PeerDeadError,
    RingError,
    WaitTimeoutError,
)
from ringbuffer.producer import Producer
from ringbuffer.ring import ConsumerSpec, Ring
from ringbuffer.segments import list_segments, remove_stale_segments, segment_name
from ringbuffer.wait import Backoff, BusySpin, Parking, WaitStrategy, Yielding, wait_strategy

__all__ = [
    "AlertedError",
    "AttachError",
    "Backoff",
    "BusySpin",
    "Consumer",
    "ConsumerSpec",
    "Doorbell",
    "EndOfStreamError",
    "LayoutMismatchError",
    "Parking",
    "PeerDeadError",
    "Producer",
    "Ring",
    "RingError",
    "WaitStrategy",
    "WaitTimeoutError",
    "Yielding",
    "list_segments",
    "remove_stale_segments",
    "segment_name",
    "wait_strategy",
]
