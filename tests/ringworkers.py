"""Process entry points for the multiprocess ring tests (importable under 'spawn')."""

from __future__ import annotations

import time

from ringbuffer import EndOfStreamError, Ring
from tests.ringhelpers import RECORD, fill_records, verify


def produce(name: str, total: int, batch: int) -> None:
    """Publish records 0..total-1 in batches, then finish the stream."""
    ring = Ring.attach(name, RECORD)
    producer = ring.producer()
    sent = 0
    while sent < total:
        for view in producer.claim(min(batch, total - sent), timeout=60):
            fill_records(view, sent)
            sent += len(view)
        producer.publish()
    producer.finish()
    ring.close()


def consume(name: str, consumer_name: str, total: int, results) -> None:
    """Read until the end of the stream, verifying order and checksums; report the count."""
    ring = Ring.attach(name, RECORD)
    consumer = ring.consumer(consumer_name)
    expected = 0
    try:
        while True:
            try:
                views = consumer.wait(limit=1000, timeout=60)
            except EndOfStreamError:
                break
            for view in views:
                verify(view, expected)
                expected += len(view)
            consumer.release()
        results.put((consumer_name, expected, None))
    except Exception as error:
        results.put((consumer_name, expected, repr(error)))
    finally:
        ring.close()


def attach_and_sleep(name: str, role: str, ready) -> None:
    """Take a role on the ring, say so, then idle until killed."""
    ring = Ring.attach(name, RECORD)
    if role == "producer":
        ring.producer()
    else:
        ring.consumer(role)
    ready.set()
    time.sleep(3600)


def park_then_read(name: str, results) -> None:
    """Wait with a park timeout far longer than the test allows: only a wake-up ends it."""
    from ringbuffer import Backoff

    ring = Ring.attach(name, RECORD)
    consumer = ring.consumer("c", wait=Backoff(max_park_ns=600_000_000_000))
    results.put("parking")
    try:
        record = consumer.get(timeout=600)
        results.put(int.from_bytes(record[:8], "little"))
    finally:
        ring.close()


def report_fence_mode(results) -> None:
    """Say whether this process uses plain stores (True) or the compiled atomics (False)."""
    from ringbuffer import fence

    results.put(fence.HARDWARE_ORDERED)
