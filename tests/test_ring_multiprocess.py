"""Rings between real processes: millions of records, multicast, dead and hung peers."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal

import pytest

from ringbuffer import ConsumerSpec, EndOfStreamError, PeerDeadError, Ring, WaitTimeoutError
from tests import ringworkers
from tests.ringhelpers import RECORD, make_records, reap, wait_until

pytestmark = [pytest.mark.slow]

SPAWN = multiprocessing.get_context("spawn")
TOTAL = 5_000_000


def run_stream(consumers, readers):
    with Ring.create("mp", RECORD, 1 << 14, consumers=consumers) as ring:
        results = SPAWN.Queue()
        processes = [
            SPAWN.Process(target=ringworkers.consume, args=(ring.name, name, TOTAL, results))
            for name in readers
        ]
        processes.append(SPAWN.Process(target=ringworkers.produce, args=(ring.name, TOTAL, 256)))
        for process in processes:
            process.start()
        try:
            reports = {}
            for _ in readers:
                name, count, error = results.get(timeout=240)
                reports[name] = (count, error)
            for process in processes:
                process.join(30)
                assert process.exitcode == 0
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
                    process.join()
        for name in readers:
            assert reports[name] == (TOTAL, None), f"consumer {name}: {reports[name]}"


@pytest.mark.timeout(300)
def test_five_million_records_one_to_one():
    run_stream(["only"], ["only"])


@pytest.mark.timeout(300)
def test_five_million_records_multicast_with_dependency_barrier():
    consumers = ["risk", ConsumerSpec("matching", after=("risk",)), "journal"]
    run_stream(consumers, ["risk", "matching", "journal"])


@contextlib.contextmanager
def sleeper(ring, role):
    """A process that takes ``role`` on ``ring`` and idles; killed and reaped on exit."""
    ready = SPAWN.Event()
    process = SPAWN.Process(target=ringworkers.attach_and_sleep, args=(ring.name, role, ready))
    process.start()
    try:
        assert ready.wait(60), "the sleeper did not attach"
        yield process
    finally:
        process.kill()
        process.join()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("reap", [False, True], ids=["zombie", "reaped"])
def test_killed_consumer_is_reported_to_the_waiting_producer(reap):
    with Ring.create("deadc", RECORD, 64, consumers=["c"]) as ring, sleeper(ring, "c") as process:
        producer = ring.producer()
        producer.publish_batch(make_records(0, 64))
        os.kill(process.pid, signal.SIGKILL)
        if reap:
            process.join()
        with pytest.raises(PeerDeadError, match=r"consumer 'c' pid \d+ exited") as caught:
            producer.claim(1, timeout=30)  # detected, not waited out
        assert caught.value.role == "consumer 'c'"
        assert caught.value.pid == process.pid


@pytest.mark.timeout(120)
def test_a_dead_consumer_holding_part_of_a_batch_claim_is_reported():
    # The consumer freed the first 8 slots, then died: a claim of 32 needs slots it still
    # holds, though the first slot of the claim is free. Only a liveness check against the
    # claim's own wrap point notices; one against the first slot waited out the timeout.
    with Ring.create("deadpart", RECORD, 64, consumers=["c"]) as ring:
        producer = ring.producer()
        producer.publish_batch(make_records(0, 64))
        ready = SPAWN.Event()
        process = SPAWN.Process(
            target=ringworkers.release_some_then_sleep, args=(ring.name, "c", 8, ready)
        )
        process.start()
        try:
            assert ready.wait(60), "the consumer did not release its first records"
            os.kill(process.pid, signal.SIGKILL)
            process.join()
            with pytest.raises(PeerDeadError, match=r"consumer 'c' pid \d+ exited"):
                producer.claim(32, timeout=30)
        finally:
            process.kill()
            process.join()
        producer.close()


@pytest.mark.timeout(120)
def test_killed_producer_is_reported_to_the_waiting_consumer():
    with (
        Ring.create("deadp", RECORD, 64, consumers=["c"]) as ring,
        sleeper(ring, "producer") as process,
    ):
        consumer = ring.consumer("c")
        os.kill(process.pid, signal.SIGKILL)
        with pytest.raises(PeerDeadError, match=r"producer pid \d+ exited"):
            consumer.wait(timeout=30)


@pytest.mark.timeout(120)
def test_a_finished_producer_that_exited_is_not_reported_dead():
    """A producer that finished its stream and exited (without ``close``) is not a dead
    peer: a consumer still behind a slower dependency waits for it, then drains and gets
    the end of the stream."""
    consumers = ["risk", ConsumerSpec("matching", after=("risk",))]
    with Ring.create("gone", RECORD, 64, consumers=consumers) as ring:
        process = SPAWN.Process(target=ringworkers.produce, args=(ring.name, 64, 64))
        process.start()
        process.join(60)
        assert process.exitcode == 0
        matching, risk = ring.consumer("matching"), ring.consumer("risk")
        with pytest.raises(WaitTimeoutError):
            matching.wait(timeout=0.3)  # risk has released nothing yet; peers checked
        assert len(risk.take()) == 64
        assert len(matching.take()) == 64
        with pytest.raises(EndOfStreamError):
            matching.wait(timeout=5)


@pytest.mark.timeout(120)
def test_hung_consumer_is_reported_once_its_heartbeat_is_stale():
    with Ring.create("hung", RECORD, 64, consumers=["c"]) as ring, sleeper(ring, "c") as process:
        os.kill(process.pid, signal.SIGSTOP)
        producer = ring.producer(stale_after=0.3)
        producer.publish_batch(make_records(0, 64))
        with pytest.raises(PeerDeadError, match="heartbeat stale"):
            producer.claim(1, timeout=30)


@pytest.mark.timeout(120)
def test_a_second_live_producer_is_refused():
    from ringbuffer import AttachError

    with Ring.create("twoprod", RECORD, 64, consumers=["c"]) as ring:
        with (
            sleeper(ring, "producer"),
            pytest.raises(AttachError, match="already attached by live"),
        ):
            ring.producer()
        ring.producer()  # the dead one's role can be taken over


@pytest.mark.timeout(120)
def test_a_parked_consumer_is_woken_by_the_next_publish():
    with Ring.create("park", RECORD, 64, consumers=["c"]) as ring:
        producer = ring.producer()
        results = SPAWN.Queue()
        process = SPAWN.Process(target=ringworkers.park_then_read, args=(ring.name, results))
        process.start()
        try:
            assert results.get(timeout=60) == "parking"
            wait_until(lambda: ring.status()["consumers_parked"], "the consumer parks")
            producer.publish_batch(make_records(41, 1))
            assert results.get(timeout=30) == 41, "the wake-up reached the parked consumer"
        finally:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()


@pytest.mark.timeout(120)
def test_a_producer_parked_on_a_full_ring_is_woken_by_a_release():
    """The producer thread parks (observed: its parked flag on the consumer's cursor) with a
    park timeout longer than the test; only the release's wake-up can let it claim."""
    import threading

    from ringbuffer import AlertedError, Backoff

    with Ring.create("parkp", RECORD, 8, consumers=["c"]) as ring:
        producer = ring.producer(wait=Backoff(max_park_ns=600_000_000_000))
        consumer = ring.consumer("c")
        producer.publish_batch(make_records(0, 8))
        claimed, failed = [], []

        def claim() -> None:
            try:
                claimed.append(producer.claim(1, timeout=600))
            except AlertedError as error:  # the test gave up and alerted: see finally
                failed.append(error)

        waiter = threading.Thread(target=claim, daemon=True)
        waiter.start()
        try:
            wait_until(
                lambda: ring.status()["consumers"]["c"]["parked_on"],
                "the producer parks on consumer c's cursor",
            )
            assert not claimed, "the ring is full: the claim cannot have succeeded yet"
            consumer.poll(limit=1)
            consumer.release()
            waiter.join(30)
            assert not waiter.is_alive(), "the release did not wake the parked producer"
            assert len(claimed) == 1 and not failed
        finally:
            if waiter.is_alive():  # never leave it parked for 600 s: alert wakes it
                ring.alert()
                waiter.join(30)


@pytest.mark.timeout(180)
def test_producers_attaching_at_the_same_moment_exactly_one_wins():
    """Contenders released together by a barrier, on several rings in turn: the old
    check-then-set let several see the producer slot free and all 'attach'. Exactly one may
    on each ring; the others are told which live pid holds it."""
    contenders, rounds = 4, 16
    with contextlib.ExitStack() as stack:
        names = [
            stack.enter_context(Ring.create(f"race{n}", RECORD, 64, consumers=["c"])).name
            for n in range(rounds)
        ]
        barrier = SPAWN.Barrier(contenders)
        results = SPAWN.Queue()
        processes = [
            SPAWN.Process(target=ringworkers.race_for_producer, args=(names, barrier, results))
            for _ in range(contenders)
        ]
        for process in processes:
            process.start()
        try:
            outcomes = [results.get(timeout=120) for _ in range(contenders * rounds)]
        finally:
            reap(processes)
    for name in names:
        mine = [outcome[1:] for outcome in outcomes if outcome[0] == name]
        winners = [pid for outcome, pid, _ in mine if outcome == "attached"]
        assert len(winners) == 1, f"{name}: exactly one producer may attach: {mine}"
        for outcome, _pid, message in mine:
            if outcome == "refused":
                assert f"producer is already attached by live pid {winners[0]}" in message


def test_a_second_role_object_in_one_process_is_refused_until_the_first_is_closed():
    from ringbuffer import AttachError

    with Ring.create("tworoles", RECORD, 64, consumers=["c"]) as ring:
        first = ring.consumer("c")
        with pytest.raises(
            AttachError, match=rf"consumer 'c' is already attached by live pid {os.getpid()}"
        ):
            ring.consumer("c")
        first.close()
        second = ring.consumer("c")  # the closed role is free again
        second.close()
        producer = ring.producer()
        del producer  # dropping the object frees the role as well
        ring.producer().close()
