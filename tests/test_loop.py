"""The generic stage run loop, in one process: batches, end of stream, control, counters."""

from __future__ import annotations

import numpy as np
import pytest

from ringbuffer import EndOfStreamError, Ring
from ringbuffer.records import copy_records
from stages.loop import StageLoop, request_kind
from stages.records import COMMAND_DTYPE


class FakeControl:
    """Hands out queued requests once each and records the replies."""

    def __init__(self, requests: list[object]) -> None:
        self.requests = list(requests)
        self.replies: list[tuple[object, dict]] = []

    def poll(self) -> list[object]:
        out, self.requests = self.requests, []
        return out

    def reply(self, request: object, answer: dict) -> None:
        self.replies.append((request, answer))


class Request:
    def __init__(self, kind: str) -> None:
        self.kind = kind


def _commands(n: int, first: int = 1) -> np.ndarray:
    batch = np.zeros(n, dtype=COMMAND_DTYPE)
    batch["seq"] = np.arange(first, first + n)
    return batch


@pytest.fixture
def rings():
    inbound = Ring.create("looptest-in", COMMAND_DTYPE, 64, consumers=["stage"])
    outbound = Ring.create("looptest-out", COMMAND_DTYPE, 64, consumers=["next"])
    try:
        yield inbound, outbound
    finally:
        for ring in (inbound, outbound):
            ring.close()
            ring.unlink()


def _forwarder(out):
    def handle(views):
        for view in views:
            for claimed in out.claim(len(view)):
                copy_records(claimed, view[: len(claimed)])
                view = view[len(claimed) :]
        out.publish()

    return handle


@pytest.mark.timeout(30)
def test_runs_to_the_end_of_the_stream_and_finishes_downstream(rings):
    inbound, outbound = rings
    producer = inbound.producer()
    source = inbound.consumer("stage")
    out = outbound.producer()
    sink = outbound.consumer("next")
    producer.publish_batch(_commands(40))
    producer.finish()
    finished = []
    loop = StageLoop(source, _forwarder(out), [out], limit=16, finish=lambda: finished.append(1))
    assert loop.run() == "end_of_stream"
    assert finished == [1]
    assert loop.counters.records == 40
    assert loop.counters.batches == 3  # 16 + 16 + 8
    assert loop.counters.state == "stopped"
    got = sink.take()
    assert list(got["seq"]) == list(range(1, 41))
    with pytest.raises(EndOfStreamError):
        sink.wait(timeout=1.0)


@pytest.mark.timeout(30)
def test_answers_status_and_stops_on_request(rings):
    inbound, outbound = rings
    producer = inbound.producer()
    source = inbound.consumer("stage")
    out = outbound.producer()
    sink = outbound.consumer("next")
    producer.publish_batch(_commands(8))
    control = FakeControl(["status", Request("stop"), Request("halt")])
    loop = StageLoop(
        source,
        _forwarder(out),
        [out],
        control=control,
        limit=4,
        status=lambda: {"extra": 1},
        idle_timeout=0.01,
    )
    assert loop.run() == "stop"  # stopped after the first batch: control is read per batch
    kinds = [request_kind(request) for request, _ in control.replies]
    assert kinds == ["status", "stop", "halt"]
    status = control.replies[0][1]
    assert status["records"] == 4 and status["extra"] == 1 and status["state"] == "running"
    assert "error" in control.replies[2][1]  # no on_control: refused, named
    assert len(sink.take()) == 4
    with pytest.raises(EndOfStreamError):  # a stop finishes downstream too
        sink.wait(timeout=1.0)


@pytest.mark.timeout(30)
def test_idle_waits_run_the_idle_hook_and_answer_control(rings):
    inbound, outbound = rings
    inbound.producer()  # attached, publishing nothing
    source = inbound.consumer("stage")
    out = outbound.producer()
    control = FakeControl([])
    idles = []

    def idle():
        idles.append(1)
        if len(idles) == 2:
            control.requests.append("stop")

    loop = StageLoop(source, _forwarder(out), [out], control=control, idle=idle, idle_timeout=0.001)
    assert loop.run() == "stop"
    assert len(idles) == 2 and loop.counters.batches == 0 and loop.counters.idle_ns > 0


@pytest.mark.timeout(30)
def test_a_held_batch_comes_back_with_what_arrived_since(rings):
    inbound, _ = rings
    producer = inbound.producer()
    source = inbound.consumer("stage")
    seen: list[list[int]] = []

    def handle(views):
        seen.append([int(seq) for view in views for seq in view["seq"]])
        if len(seen) == 1:
            producer.publish_batch(_commands(3, first=6))  # arrives while the batch is held
            return False
        producer.finish()
        return None

    producer.publish_batch(_commands(5))
    loop = StageLoop(source, handle)
    assert loop.run() == "end_of_stream"
    assert seen == [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6, 7, 8]]
    assert loop.counters.records == 8 and loop.counters.batches == 2
