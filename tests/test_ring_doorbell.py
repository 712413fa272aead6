"""The doorbell: a ring's wake-up as a file descriptor, for a consumer that sleeps in a
poll over its sockets (the order gateway). No wake-up may be lost, and a producer whose
consumer is not asleep must not write to the pipe at all."""

from __future__ import annotations

import multiprocessing
import select

import pytest

from ringbuffer import Doorbell, EndOfStreamError, Ring
from tests import ringworkers
from tests.ringhelpers import RECORD, make_records, reap

SPAWN = multiprocessing.get_context("spawn")


def readable(bell: Doorbell) -> bool:
    return bool(select.select([bell.fileno()], [], [], 0)[0])


@pytest.fixture
def bell_path(tmp_path):
    path = Doorbell.create(tmp_path / "answers.bell")
    yield path
    Doorbell.unlink(path)


def test_create_refuses_an_existing_path_and_open_refuses_what_is_not_a_pipe(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    with pytest.raises(FileExistsError) as refused:
        Doorbell.create(plain)
    assert refused.value.filename == str(plain)  # named: os.mkfifo's own error is not
    with pytest.raises(ValueError, match="not a named pipe"):
        Doorbell(plain)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Doorbell(tmp_path / "missing")
    assert plain.read_bytes() == b""  # untouched
    Doorbell.unlink(tmp_path / "missing")  # nothing to remove: no error


def test_ring_and_drain(bell_path):
    with Doorbell(bell_path) as writer, Doorbell(bell_path) as reader:
        assert not readable(reader)
        writer.ring()
        writer.ring()
        assert readable(reader)
        assert reader.drain() == 2
        assert not readable(reader)
        assert reader.drain() == 0


def test_a_full_pipe_still_holds_a_wake_up(bell_path):
    with Doorbell(bell_path) as bell:
        for _ in range(70_000):  # more than a pipe holds: the rest are skipped, not blocked on
            bell.ring()
        assert readable(bell)
        assert 0 < bell.drain() <= 70_000
        assert not readable(bell)


def test_publish_rings_only_for_an_armed_consumer(bell_path):
    with Ring.create("bell", RECORD, 16, consumers=["c"]) as ring:
        producer, consumer = ring.producer(), ring.consumer("c")
        with Doorbell(bell_path) as writer, Doorbell(bell_path) as reader:
            producer.ring_doorbell(writer)
            producer.publish_batch(make_records(0, 1))
            assert not readable(reader)  # nobody asleep: no write per publish
            assert consumer.arm()  # a record is there: do not sleep
            assert len(consumer.poll()[0]) == 1
            consumer.release()
            assert not consumer.arm()  # nothing left: armed, may sleep
            assert not readable(reader)
            producer.publish_batch(make_records(1, 1))
            assert readable(reader)  # the publish saw the flag and rang
            assert reader.drain() == 1
            producer.publish_batch(make_records(2, 1))
            assert not readable(reader)  # the flag was cleared by the wake-up
            consumer.poll()
            consumer.release()
            assert not consumer.arm()
            producer.finish()  # the end of the stream rings too
            assert readable(reader)
            reader.drain()
            assert consumer.arm()  # ended: do not sleep
            with pytest.raises(EndOfStreamError):
                consumer.keep_house()
        producer.close()
        consumer.close()


@pytest.mark.timeout(120)
def test_a_consumer_sleeping_on_the_doorbell_is_always_woken(bell_path):
    """A producer publishes one record per publish with random pauses; the consumer
    sleeps in ``select.poll`` on the doorbell (60 s timeout) whenever it caught up. Every
    sleep must end by a ring: a publish that did not ring would leave it asleep."""
    total = 20_000
    with Ring.create("bell", RECORD, 64, consumers=["c"]) as ring:
        results = SPAWN.Queue()
        processes = [
            SPAWN.Process(
                target=ringworkers.consume_polling,
                args=(ring.name, "c", str(bell_path), 60_000, results),
            ),
            SPAWN.Process(
                target=ringworkers.produce_ringing,
                args=(ring.name, str(bell_path), total, 50, results),
            ),
        ]
        for process in processes:
            process.start()
        try:
            reports = {}
            for _ in processes:
                role, *figures = results.get(timeout=100)
                reports[role] = figures
        finally:
            reap(processes)
    assert reports["producer"] == [total, None]
    count, slept, timed_out, error = reports["c"]
    assert error is None, error
    assert count == total
    assert slept > 0, "the consumer never slept: the test proves nothing"
    assert timed_out == 0, f"{timed_out} of {slept} sleeps ran out: a wake-up was lost"
