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
    held = ring.producer() if role == "producer" else ring.consumer(role)  # holds the role
    ready.set()
    time.sleep(3600)
    held.close()


def release_some_then_sleep(name: str, role: str, count: int, ready) -> None:
    """As consumer ``role``: read and release the first ``count`` records, say so, idle."""
    ring = Ring.attach(name, RECORD)
    consumer = ring.consumer(role)
    done = 0
    while done < count:
        done += sum(len(view) for view in consumer.wait(limit=count - done, timeout=60))
        consumer.release()
    ready.set()
    time.sleep(3600)
    consumer.close()


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


class CountingBackoff:
    """Factory of a ``Backoff`` that parks at once (no spin, no yield phase) with a long park
    timeout, counting the parks that ended by a wake-up and those that ran out."""

    def __new__(cls, max_park_ns: int):
        from ringbuffer import Backoff

        class Counting(Backoff):
            def __init__(self) -> None:
                super().__init__(spin_ns=0, yield_ns=0, max_park_ns=max_park_ns)
                self.woken = 0
                self.timed_out = 0

            def wait(self, target, poll, housekeeping, timeout, park=None):
                def counted(timeout_ns: int) -> bool:
                    woken = park(timeout_ns)
                    if woken is False:
                        self.timed_out += 1
                    else:
                        self.woken += 1
                    return woken

                return super().wait(target, poll, housekeeping, timeout, counted)

        return Counting()


def produce_counting(name: str, total: int, park_ns: int, results) -> None:
    """Publish records 0..total-1 one per publish, parking at once whenever the ring is full;
    report how the parks ended."""
    ring = Ring.attach(name, RECORD)
    wait = CountingBackoff(park_ns)
    try:
        producer = ring.producer(wait=wait)
        for seq in range(total):
            for view in producer.claim(1):
                fill_records(view, seq)
            producer.publish()
        results.put(("producer", total, wait.woken, wait.timed_out, None))
    except Exception as error:
        results.put(("producer", -1, wait.woken, wait.timed_out, repr(error)))
    finally:
        ring.close()


def consume_counting(name: str, consumer_name: str, total: int, park_ns: int, results) -> None:
    """Read ``total`` records a few at a time, parking at once whenever none is there; report
    how the parks ended."""
    ring = Ring.attach(name, RECORD)
    wait = CountingBackoff(park_ns)
    expected = 0
    try:
        consumer = ring.consumer(consumer_name, wait=wait)
        while expected < total:
            for view in consumer.wait(limit=3):
                verify(view, expected)
                expected += len(view)
            consumer.release()
        results.put((consumer_name, expected, wait.woken, wait.timed_out, None))
    except Exception as error:
        results.put((consumer_name, expected, wait.woken, wait.timed_out, repr(error)))
    finally:
        ring.close()


def race_for_producer(names: list[str], barrier, results) -> None:
    """For each ring in turn: attach as producer the moment ``barrier`` releases every
    contender, report whether this process won, and hold the role until every contender
    has tried (a second barrier), so the losers meet a live holder."""
    import os

    from ringbuffer import AttachError

    for name in names:
        ring = Ring.attach(name, RECORD)
        producer = None
        try:
            barrier.wait(60)
            try:
                producer = ring.producer()
                results.put((name, "attached", os.getpid(), ""))
            except AttachError as error:
                results.put((name, "refused", os.getpid(), str(error)))
            barrier.wait(60)
        finally:
            if producer is not None:
                producer.close()
            ring.close()


def produce_ringing(name: str, doorbell: str, total: int, pause_every: int, results) -> None:
    """Publish records 0..total-1 one per publish, ringing ``doorbell`` on every wake-up,
    pausing now and then so the consumer falls asleep; then finish the stream."""
    import random

    from ringbuffer import Doorbell

    ring = Ring.attach(name, RECORD)
    bell = Doorbell(doorbell)
    rng = random.Random(7)
    try:
        producer = ring.producer()
        producer.ring_doorbell(bell)
        for seq in range(total):
            for view in producer.claim(1, timeout=60):
                fill_records(view, seq)
            producer.publish()
            if seq % pause_every == 0:
                time.sleep(rng.random() / 1000)  # let the consumer drain and sleep
        producer.finish()
        results.put(("producer", total, None))
    except Exception as error:
        results.put(("producer", -1, repr(error)))
    finally:
        bell.close()
        ring.close()


def consume_polling(name: str, consumer_name: str, doorbell: str, poll_ms: int, results) -> None:
    """Read to the end of the stream the way a process serving sockets does: ``poll`` the
    ring, and when it is empty drain the doorbell, ``arm`` and sleep in ``select.poll`` on
    it with a timeout far longer than the test allows; report the sleeps that ran out."""
    import select

    from ringbuffer import Doorbell

    ring = Ring.attach(name, RECORD)
    bell = Doorbell(doorbell)
    expected = slept = timed_out = 0
    try:
        consumer = ring.consumer(consumer_name)
        poller = select.poll()
        poller.register(bell.fileno(), select.POLLIN)
        while True:
            views = consumer.poll(5)
            if views:
                for view in views:
                    verify(view, expected)
                    expected += len(view)
                consumer.release()
                continue
            consumer.keep_house()  # EndOfStreamError once everything was read
            bell.drain()
            if consumer.arm():
                continue
            slept += 1
            if not poller.poll(poll_ms):
                timed_out += 1
    except EndOfStreamError:
        results.put((consumer_name, expected, slept, timed_out, None))
    except Exception as error:
        results.put((consumer_name, expected, slept, timed_out, repr(error)))
    finally:
        bell.close()
        ring.close()
