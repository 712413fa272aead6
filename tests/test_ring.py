"""Single-process behaviour of the ring: claims, wrap-around, full/empty, barriers, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ringbuffer import (
    AlertedError,
    AttachError,
    Backoff,
    ConsumerSpec,
    EndOfStreamError,
    LayoutMismatchError,
    Ring,
    WaitTimeoutError,
    futex,
    layout,
)
from tests.ringhelpers import RECORD, fill_records, make_records, verify


def drain(consumer, limit=None):
    out = []
    while True:
        views = consumer.poll(limit)
        if not views:
            break
        out.extend(view.copy() for view in views)
        consumer.release()
    return np.concatenate(out) if out else np.zeros(0, dtype=RECORD)


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 16, 31, 64, 100, 255, 256])
def test_wrap_around_at_many_batch_sizes(batch):
    with Ring.create("wrap", RECORD, 64, consumers=["c"]) as ring:
        producer, consumer = ring.producer(), ring.consumer("c")
        produced = 0
        total = 64 * 9 + 5
        while produced < total:
            n = min(batch, 64, total - produced)
            views = producer.claim(n)
            assert sum(len(v) for v in views) == n
            assert len(views) in (1, 2)
            for view in views:
                fill_records(view, produced)
                produced += len(view)
            producer.publish()
            got = drain(consumer, limit=max(1, batch // 2))
            verify(got, produced - len(got))
        assert consumer.released == total - 1


def test_claim_views_are_the_ring_itself_zero_copy():
    with Ring.create("zc", RECORD, 8, consumers=["c"]) as ring:
        producer, consumer = ring.producer(), ring.consumer("c")
        (view,) = producer.claim(4)
        view["seq"] = [10, 11, 12, 13]
        producer.publish()
        (read,) = consumer.poll()
        assert list(read["seq"]) == [10, 11, 12, 13]
        assert np.shares_memory(view, read)
        assert not read.flags.writeable, "consumer views must be read-only"
        with pytest.raises(ValueError):
            read["seq"][0] = 1


def test_full_ring_gives_back_pressure_not_loss():
    with Ring.create("full", RECORD, 16, consumers=["c"]) as ring:
        producer, consumer = ring.producer(), ring.consumer("c")
        producer.publish_batch(make_records(0, 16))
        assert producer.try_claim(1) == ()
        assert producer.offer(bytes(64)) is False
        with pytest.raises(WaitTimeoutError):
            producer.claim(1, timeout=0.05)
        views = consumer.poll(limit=5)
        verify(views[0], 0)
        consumer.release()
        got = producer.try_claim(10)
        assert sum(len(v) for v in got) == 5, "exactly the released slots are free"
        fill_records(got[0], 16)
        producer.publish()
        verify(drain(consumer), 5)


def test_empty_ring_poll_returns_nothing_and_wait_times_out():
    with Ring.create("empty", RECORD, 16, consumers=["c"]) as ring:
        ring.producer()
        consumer = ring.consumer("c")
        assert consumer.poll() == ()
        assert consumer.poll_one() is None
        with pytest.raises(WaitTimeoutError):
            consumer.wait(timeout=0.05)
        with pytest.raises(WaitTimeoutError):
            consumer.get(timeout=0.05)


@pytest.mark.parametrize("n", [0, -1, 17])
def test_claims_outside_one_to_capacity_are_rejected_clearly(n):
    with Ring.create("big", RECORD, 16, consumers=["c"]) as ring:
        producer = ring.producer()
        with pytest.raises(ValueError, match=r"claim of .* slots: must be 1\.\.16"):
            producer.claim(n)


@pytest.mark.parametrize("limit", [0, -1, -3])
def test_poll_and_wait_refuse_limits_below_one(limit):
    """``poll(-3)`` once returned unpublished slots and ``poll(0)``/``wait(0)`` a truthy
    tuple holding one empty view (``wait`` promises at least one record)."""
    with Ring.create("limits", RECORD, 16, consumers=["c"]) as ring:
        producer = ring.producer()
        consumer = ring.consumer("c")
        message = rf"poll limit {limit}: must be >= 1, or None for all available"
        with pytest.raises(ValueError, match=message):
            consumer.poll(limit)  # on an empty ring
        producer.publish_batch(make_records(0, 5))
        for call in (consumer.poll, consumer.wait, consumer.take):
            with pytest.raises(ValueError, match=message):
                call(limit)
        assert [len(view) for view in consumer.poll(1)] == [1], "a limit of 1 still works"
        consumer.release()
        assert consumer.released == 0


def test_publish_batch_larger_than_capacity_goes_in_chunks():
    with Ring.create("chunks", RECORD, 16, consumers=["c"]) as ring:
        producer, consumer = ring.producer(), ring.consumer("c")
        received = []

        def read():
            while sum(map(len, received)) < 100:
                received.append(consumer.take(timeout=5))

        reader = threading.Thread(target=read)
        reader.start()
        producer.publish_batch(make_records(0, 100), timeout=5)
        reader.join(5)
        verify(np.concatenate(received), 0)


def test_sequences_far_past_two_to_the_32():
    start = (1 << 40) + 12345
    with Ring.create("far", RECORD, 32, consumers=["c"], initial_sequence=start - 1) as ring:
        producer, consumer = ring.producer(), ring.consumer("c")
        assert producer.next_sequence == start
        for _ in range(10):
            first = producer.next_sequence
            for view in producer.claim(13):
                fill_records(view, first)
                first += len(view)
            producer.publish()
            verify(drain(consumer), first - 13)
        assert consumer.released == start + 129
        assert producer.published == start + 129


def test_single_record_path_round_trips_bytes():
    with Ring.create("single", RECORD, 8, consumers=["c"]) as ring:
        producer, consumer = ring.producer(), ring.consumer("c")
        records = make_records(0, 20)
        for i, record in enumerate(records):
            assert producer.offer(record.tobytes())
            got = consumer.poll_one()
            assert np.frombuffer(got, dtype=RECORD)[0] == records[i]
        producer.put(records[0].tobytes())
        assert consumer.get(timeout=1) == records[0].tobytes()


def test_dependency_barrier_consumer_sees_only_what_its_dependency_released():
    specs = ["risk", ConsumerSpec("matching", after=("risk",)), "audit"]
    with Ring.create("barrier", RECORD, 64, consumers=specs) as ring:
        producer = ring.producer()
        risk, matching, audit = (ring.consumer(n) for n in ("risk", "matching", "audit"))
        assert matching.after == ("risk",)
        producer.publish_batch(make_records(0, 10))
        assert matching.poll() == ()
        assert len(audit.poll()[0]) == 10
        risk.poll(limit=4)
        risk.release()
        (view,) = matching.poll()
        verify(view, 0)
        assert len(view) == 4
        matching.release()
        assert matching.poll() == ()


def test_producer_is_gated_by_the_slowest_consumer():
    with Ring.create("gate", RECORD, 8, consumers=["fast", "slow"]) as ring:
        producer = ring.producer()
        fast, slow = ring.consumer("fast"), ring.consumer("slow")
        producer.publish_batch(make_records(0, 8))
        drain(fast)
        assert producer.try_claim(1) == (), "slow consumer still holds every slot"
        slow.poll(limit=3)
        slow.release()
        assert sum(len(v) for v in producer.try_claim(8)) == 3


@pytest.mark.parametrize("n", [2, 4, 8])
def test_a_claim_waits_parked_until_all_its_slots_are_free(n, monkeypatch):
    """``claim(n)`` on a ring whose consumer has freed fewer than ``n`` slots parks on the
    consumer's cursor until it frees them all; it does not loop (awake, housekeeping) while
    only the first of its slots is free."""
    parks = []
    real_wait = futex.wait
    monkeypatch.setattr(
        futex, "wait", lambda *args: parks.append(args) or real_wait(*args), raising=True
    )
    wait = Backoff(spin_ns=0, yield_ns=0, max_park_ns=5_000_000)
    with Ring.create("claimpark", RECORD, 8, consumers=["c"]) as ring:
        producer, consumer = ring.producer(wait), ring.consumer("c")
        producer.publish_batch(make_records(0, 8))
        consumer.poll(limit=n - 1)
        consumer.release()  # the next n - 1 slots are free, the n-th is not
        with pytest.raises(WaitTimeoutError):
            producer.claim(n, timeout=0.05)
        assert parks, "claim did not park while it waited for its last slot"
        assert len(parks) <= 20  # one per park timeout (5 ms), not one per loop


def test_consumer_resumes_from_its_cursor_after_reattach():
    with Ring.create("resume", RECORD, 16, consumers=["c"]) as ring:
        producer = ring.producer()
        producer.publish_batch(make_records(0, 10))
        first = ring.consumer("c")
        first.poll(limit=6)
        first.release()
        first.close()
        other = Ring.attach(ring.name, RECORD)
        try:
            second = other.consumer("c")
            verify(drain(second), 6)
        finally:
            other.close()


def test_end_of_stream_after_finish():
    with Ring.create("eos", RECORD, 16, consumers=["c"]) as ring:
        producer, consumer = ring.producer(), ring.consumer("c")
        producer.publish_batch(make_records(0, 5))
        producer.finish()
        verify(consumer.take(timeout=1), 0)
        with pytest.raises(EndOfStreamError):
            consumer.wait(timeout=1)


def test_alert_interrupts_a_waiting_consumer():
    with Ring.create("alert", RECORD, 16, consumers=["c"]) as ring:
        ring.producer()
        consumer = ring.consumer("c")
        errors = []

        def wait():
            try:
                consumer.wait(timeout=10)
            except Exception as error:
                errors.append(error)

        waiter = threading.Thread(target=wait)
        waiter.start()
        ring.alert()
        waiter.join(5)
        assert not waiter.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], AlertedError)
        ring.clear_alert()
        assert not ring.alerted


def test_attach_with_another_dtype_names_the_difference():
    other = np.dtype([("seq", "<i8"), ("chk", "<u8"), ("payload", "u1", (48,))])
    with Ring.create("dtype", RECORD, 16, consumers=["c"]) as ring:
        with pytest.raises(LayoutMismatchError, match=r"field 1 is \('check'.*\('chk'"):
            Ring.attach(ring.name, other)
        with pytest.raises(LayoutMismatchError, match="record size is 64 bytes in the ring, 8"):
            Ring.attach(ring.name, np.dtype([("seq", "<i8")]))


def test_attach_with_another_layout_version_is_refused():
    with Ring.create("version", RECORD, 16, consumers=["c"]) as ring:
        ring._header[0]["version"] = layout.LAYOUT_VERSION + 1
        with pytest.raises(
            LayoutMismatchError,
            match=f"layout version {layout.LAYOUT_VERSION + 1}, this tradepipe reads version {layout.LAYOUT_VERSION}",
        ):
            Ring.attach(ring.name, RECORD)


def test_attach_errors_name_the_problem():
    with pytest.raises(AttachError, match="does not exist"):
        Ring.attach("tradepipe.1.nosuchring", RECORD)
    with (
        Ring.create("roles", RECORD, 16, consumers=["c"]) as ring,
        pytest.raises(AttachError, match="no consumer 'x'; declared: \\['c'\\]"),
    ):
        ring.consumer("x")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capacity": 12}, "power of two"),
        ({"consumers": ["a", "a"]}, "unique"),
        ({"consumers": [ConsumerSpec("b", after=("a",)), "a"]}, "must be declared before it"),
        ({"consumers": ["x" * 40]}, "1..32 bytes"),
    ],
)
def test_create_rejects_bad_arguments(kwargs, message):
    arguments = {"capacity": 16, "consumers": ["c"]} | kwargs
    with pytest.raises(ValueError, match=message):
        Ring.create("bad", RECORD, **arguments)


def test_status_reports_fill_and_lag():
    with Ring.create("status", RECORD, 16, consumers=["c"]) as ring:
        producer, consumer = ring.producer(), ring.consumer("c")
        producer.publish_batch(make_records(0, 8))
        consumer.poll(limit=2)
        consumer.release()
        status = ring.status()
        assert status["published"] == 7
        assert status["consumers"]["c"]["lag"] == 6
        assert status["fill"] == 6 / 16
