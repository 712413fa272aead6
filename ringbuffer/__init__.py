"""Generic shared-memory rings: fixed-size numpy records, one producer, multicast consumers.

Knows nothing of trading. See ``ring`` for the model and ``docs/architecture.md`` for how
the pipeline uses it.
"""

from ringbuffer.errors import (
    AlertedError,
    AttachError,
    EndOfStreamError,
    LayoutMismatchError,
    PeerDeadError,
    RingError,
    WaitTimeoutError,
)
from ringbuffer.ring import Consumer, ConsumerSpec, Producer, Ring
from ringbuffer.segments import list_segments, remove_stale_segments, segment_name
from ringbuffer.wait import Backoff, BusySpin, WaitStrategy, Yielding, wait_strategy

__all__ = [
    "AlertedError",
    "AttachError",
    "Backoff",
    "BusySpin",
    "Consumer",
    "ConsumerSpec",
    "EndOfStreamError",
    "LayoutMismatchError",
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
