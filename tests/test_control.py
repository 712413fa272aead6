"""The control plane over real ipc:// sockets in tmp run directories: every request and its
reply, broadcasts, timeouts, heartbeats on an injected clock, garbage from either side, the
run directory's checks, tcp refusal, and finding (or not) a running pipeline."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import zmq

from pipeline import control_messages as m
from pipeline.control import (
    CONTROL_SOCKET,
    ControlError,
    ControlServer,
    ControlTimeout,
    LoopChannel,
    PipelineClient,
    StageControl,
    SupervisorGoneError,
    prepare_run_dir,
)
from ringbuffer import WaitTimeoutError

WAIT = 10.0  # seconds: a bound for what must happen, never expected to elapse


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(message: m.Message) -> m.Message:
    """What the test stage answers: a reply of each kind, one refusal."""
    match message:
        case m.Status():
            return m.StatusReply(
                stage="risk",
                state="running",
                pid=os.getpid(),
                core=1,
                cpu_pct=12.5,
                counters={"checked": 10, "rejected": 2},
                rings={"orders": 12, "checked": 10},
            )
        case m.Deposit(asset=99):
            return m.Refused("unknown asset 99")
        case m.Halt(symbol=s) | m.Resume(symbol=s):
            return m.Ack(f"{type(message).__name__.lower()} {s}")
        case _:
            return m.Ack(type(message).__name__)


class StageThread:
    """A stage's control side answering in a thread of its own (sockets stay in it)."""

    def __init__(self, endpoint: str, stage: str, context: zmq.Context) -> None:
        self.received: list[m.Message] = []
        self._stop = threading.Event()
        self._ready = threading.Event()

        def handler(message: m.Message) -> m.Message:
            self.received.append(message)
            return answer(message)

        def run() -> None:
            with StageControl(endpoint, stage, handler, context=context) as control:
                self._ready.set()
                while not self._stop.is_set():
                    control.poll(0.02)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert self._ready.wait(WAIT)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.term()  # hangs (and times out) if a test left a socket open


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def server(run_dir: Path, context: zmq.Context) -> Iterator[ControlServer]:
    with ControlServer(run_dir, context=context) as server:
        yield server


@pytest.fixture
def stage(server: ControlServer, context: zmq.Context) -> Iterator[StageThread]:
    stage = StageThread(server.manifest.control, "risk", context)
    server.wait_registered(["risk"], WAIT)
    yield stage
    stage.stop()


# --- requests and replies --------------------------------------------------------------------
REQUESTS: list[tuple[m.Message, m.Message]] = [
    (m.Stop(), m.Ack("Stop")),
    (m.Snapshot(), m.Ack("Snapshot")),
    (m.Halt(7), m.Ack("halt 7")),
    (m.Resume(7), m.Ack("resume 7")),
    (m.KillSwitch(account=5), m.Ack("KillSwitch")),
    (m.KillSwitch(all_accounts=True, release=True), m.Ack("KillSwitch")),
    (m.Deposit(account=3, asset=1, amount=10**12), m.Ack("Deposit")),
    (m.Deposit(account=3, asset=99, amount=1), m.Refused("unknown asset 99")),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("request_", "reply"), REQUESTS, ids=lambda x: repr(x))
def test_every_request_reaches_the_stage_and_its_reply_comes_back(
    server: ControlServer, stage: StageThread, request_: m.Message, reply: m.Message
) -> None:
    assert server.request("risk", request_, timeout=WAIT) == reply
    assert stage.received == [request_]


@pytest.mark.timeout(30)
def test_status_reply_carries_state_counters_rings_pid_core_cpu(
    server: ControlServer, stage: StageThread
) -> None:
    reply = server.request("risk", m.Status(), timeout=WAIT)
    assert isinstance(reply, m.StatusReply)
    assert (reply.stage, reply.state, reply.pid, reply.core) == ("risk", "running", os.getpid(), 1)
    assert reply.cpu_pct == 12.5
    assert reply.counters == {"checked": 10, "rejected": 2}
    assert reply.rings == {"orders": 12, "checked": 10}
    assert server.pid("risk") == os.getpid()
    assert server.stages == ("risk",)


@pytest.mark.timeout(30)
def test_many_requests_in_a_row_each_get_their_own_reply(
    server: ControlServer, stage: StageThread
) -> None:
    for symbol in range(50):
        assert server.request("risk", m.Halt(symbol), timeout=WAIT) == m.Ack(f"halt {symbol}")
    assert server.late_replies == server.undecodable == 0


@pytest.mark.timeout(30)
def test_broadcast_collects_every_stage_and_none_for_a_silent_one(
    server: ControlServer, context: zmq.Context
) -> None:
    risk = StageThread(server.manifest.control, "risk", context)
    matching = StageThread(server.manifest.control, "matching", context)
    silent = StageControl(server.manifest.control, "output", answer, context=context)
    try:
        server.wait_registered(["risk", "matching", "output"], WAIT)
        replies = server.broadcast(m.Snapshot(), timeout=0.2)
        assert replies == {"risk": m.Ack("Snapshot"), "matching": m.Ack("Snapshot"), "output": None}
    finally:
        silent.close()
        risk.stop()
        matching.stop()


def take_registration_beat(stage: StageControl) -> None:
    """Handle the heartbeat the server answers a registration with (``poll`` counts it)."""
    while not stage.supervisor_beating:
        stage.poll(WAIT)


# --- timeouts --------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_a_request_nobody_answers_times_out_and_its_late_reply_is_dropped(
    server: ControlServer, context: zmq.Context
) -> None:
    with StageControl(server.manifest.control, "risk", answer, context=context) as stage:
        server.wait_registered(["risk"], WAIT)
        take_registration_beat(stage)
        with pytest.raises(ControlTimeout, match=r"stage risk did not answer Status within 0\.1 s"):
            server.request("risk", m.Status(), timeout=0.1)
        assert stage.poll(WAIT) == 1  # it answers now, too late
        while server.late_replies == 0:
            server.poll(WAIT)
        assert server.late_replies == 1


@pytest.mark.timeout(30)
def test_a_request_to_a_stage_that_never_connected_is_refused(server: ControlServer) -> None:
    with pytest.raises(ControlError, match=r"stage ghost is not connected to the control plane"):
        server.request("ghost", m.Status(), timeout=WAIT)


@pytest.mark.timeout(30)
def test_wait_registered_names_the_stages_that_did_not_come(server: ControlServer) -> None:
    with pytest.raises(ControlTimeout, match=r"stage\(s\) ingest, risk did not register"):
        server.wait_registered(["ingest", "risk"], 0.1)


# --- heartbeats ------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_heartbeats_keep_a_stage_fresh_and_silence_makes_it_stale(
    run_dir: Path, context: zmq.Context
) -> None:
    clock = FakeClock()
    with (
        ControlServer(run_dir, stale_after=1.0, clock=clock, context=context) as server,
        StageControl(
            server.manifest.control, "risk", answer, heartbeat_every=0.25, clock=clock,
            context=context,
        ) as stage,
    ):  # fmt: skip
        server.wait_registered(["risk"], WAIT)
        take_registration_beat(stage)
        assert server.last_seen("risk") == 1000.0
        assert server.last_seen("matching") is None
        clock.now += 1.0
        assert server.stale() == []  # silent exactly stale_after: not yet
        assert stage.poll() == 0  # and the stage's heartbeat is long due: it sends one
        while server.last_seen("risk") != 1001.0:
            server.poll(WAIT)
        clock.now += 0.1
        stage.poll()  # not due: nothing sent
        clock.now += 1.0
        assert server.stale() == ["risk"]
        assert server.poll(0) == 0
        stage.poll()  # due again
        while server.stale():
            server.poll(WAIT)
        assert server.last_seen("risk") == 1002.1

        # the other way: the supervisor's heartbeats keep it fresh for the stage
        assert stage.supervisor_last_seen == 1000.0
        assert stage.supervisor_stale(1.0)
        server.send_heartbeats()
        assert stage.poll(WAIT) == 1
        assert stage.supervisor_last_seen == 1002.1
        assert not stage.supervisor_stale(1.0)


# --- garbage from either side ----------------------------------------------------------------
def _raw_dealer(context: zmq.Context, endpoint: str, identity: bytes) -> zmq.Socket:
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.IDENTITY, identity)
    socket.connect(endpoint)
    return socket


def _reply(socket: zmq.Socket) -> tuple[int, m.Message]:
    assert socket.poll(WAIT * 1000)
    request_id, payload = socket.recv_multipart()
    return int.from_bytes(request_id, "little"), m.reply_decoder.decode(payload)


BAD_STAGE_MESSAGES: list[tuple[str, list[bytes], str]] = [
    ("not-msgpack", [(7).to_bytes(8, "little"), b"\xc1\xc1"], r"undecodable: "),
    ("unknown-kind", [(7).to_bytes(8, "little"), msgspec.msgpack.encode({"kind": "launch"})],
     r"undecodable: .*`\$\.kind`"),
    ("a-request-from-a-stage", [(7).to_bytes(8, "little"), m.encode(m.Stop())],
     r"undecodable: .*`\$\.kind`"),
    ("bad-field", [(7).to_bytes(8, "little"),
                   msgspec.msgpack.encode({"kind": "register", "stage": "risk", "pid": -1})],
     r"undecodable: Expected `int` >= 0 - at `\$\.pid`"),
    ("one-frame", [b"hello"], r"expected 2 frames"),
    ("short-id", [b"\x07", m.encode(m.Heartbeat())], r"expected 2 frames"),
]  # fmt: skip


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("frames", "reason"), [c[1:] for c in BAD_STAGE_MESSAGES],
                         ids=[c[0] for c in BAD_STAGE_MESSAGES])  # fmt: skip
def test_the_supervisor_counts_and_refuses_what_does_not_decode(
    server: ControlServer, context: zmq.Context, frames: list[bytes], reason: str
) -> None:
    socket = _raw_dealer(context, server.manifest.control, b"risk")
    try:
        socket.send_multipart(frames)
        while server.undecodable == 0:
            server.poll(WAIT)
        request_id, reply = _reply(socket)
        assert isinstance(reply, m.Refused)
        assert request_id == (7 if len(frames) == 2 and len(frames[0]) == 8 else 0)
        assert re.search(reason, reply.reason), reply.reason
        assert server.stages == ()  # nothing registered by garbage
    finally:
        socket.close()


@pytest.mark.timeout(30)
def test_a_stage_registering_under_another_name_is_refused(
    server: ControlServer, context: zmq.Context
) -> None:
    socket = _raw_dealer(context, server.manifest.control, b"risk")
    try:
        socket.send_multipart([bytes(8), m.encode(m.Register("matching", 1))])
        assert server.poll(WAIT) == 1
        assert _reply(socket)[1] == m.Refused("registers as 'matching' on a socket named 'risk'")
        assert server.stages == ()
    finally:
        socket.close()


BAD_REQUESTS: list[tuple[str, list[bytes], str]] = [
    ("not-msgpack", [(9).to_bytes(8, "little"), b"\xc1"], r"undecodable: "),
    ("a-reply-as-a-request", [(9).to_bytes(8, "little"), m.encode(m.Ack())],
     r"undecodable: Invalid value 'ack' - at `\$\.kind`"),
    ("kill-switch-both", [(9).to_bytes(8, "little"), msgspec.msgpack.encode(
        {"kind": "kill_switch", "account": 1, "all_accounts": True})],
     r"names one account or all_accounts"),
    ("deposit-zero", [(9).to_bytes(8, "little"), msgspec.msgpack.encode(
        {"kind": "deposit", "account": 1, "asset": 0, "amount": 0})],
     r">= 1 - at `\$\.amount`"),
    ("unknown-field", [(9).to_bytes(8, "little"), msgspec.msgpack.encode(
        {"kind": "halt", "symbol": 1, "why": "x"})], r"unknown field `why`"),
    ("three-frames", [b"a", b"b", b"c"], r"expected 2 frames"),
]  # fmt: skip


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("frames", "reason"), [c[1:] for c in BAD_REQUESTS],
                         ids=[c[0] for c in BAD_REQUESTS])  # fmt: skip
def test_a_stage_counts_and_refuses_what_does_not_decode_without_calling_its_handler(
    run_dir: Path, context: zmq.Context, frames: list[bytes], reason: str
) -> None:
    """A raw ROUTER stands in for the supervisor, to send what ControlServer never would."""
    endpoint = f"ipc://{prepare_run_dir(run_dir) / CONTROL_SOCKET}"
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(endpoint)
    handled: list[m.Message] = []
    stage = StageControl(endpoint, "risk", lambda x: handled.append(x) or m.Ack(), context=context)
    try:
        assert router.poll(WAIT * 1000)
        identity, _, register = router.recv_multipart()
        assert m.stage_message_decoder.decode(register) == m.Register("risk", os.getpid())
        router.send_multipart([identity, *frames])
        assert stage.poll(WAIT) == 1
        assert stage.undecodable == 1 and handled == []
        assert router.poll(WAIT * 1000)
        _, request_id, payload = router.recv_multipart()
        reply = m.stage_message_decoder.decode(payload)
        assert isinstance(reply, m.Refused)
        assert re.search(reason, reply.reason), reply.reason
        assert int.from_bytes(request_id, "little") == (9 if len(frames) == 2 else 0)
    finally:
        stage.close()
        router.close()


@pytest.mark.timeout(30)
def test_a_restarted_stage_takes_its_name_over(server: ControlServer, context: zmq.Context) -> None:
    first = StageControl(server.manifest.control, "risk", answer, context=context)
    server.wait_registered(["risk"], WAIT)
    first.close()  # it dies; its successor connects under the same name
    server.forget("risk")
    second = StageThread(server.manifest.control, "risk", context)
    try:
        server.wait_registered(["risk"], WAIT)
        reply = server.request("risk", m.Halt(3), timeout=WAIT)
        assert reply == m.Ack("halt 3") and second.received == [m.Halt(3)]
    finally:
        second.stop()


@pytest.mark.timeout(30)
def test_a_client_handler_that_asks_the_stages_gets_their_replies(
    run_dir: Path, context: zmq.Context
) -> None:
    """The supervisor's pattern for `tradepipe status`: a verb's request, answered from a
    broadcast made while the verb waits."""

    def handler(message: m.Message) -> m.Message:
        replies = server.broadcast(message, timeout=WAIT)
        return m.PipelineStatus(os.getpid(), [r for r in replies.values() if r is not None])

    with ControlServer(run_dir, client_handler=handler, context=context) as server:
        stage = StageThread(server.manifest.control, "risk", context)
        try:
            server.wait_registered(["risk"], WAIT)
            result: list[m.Message] = []

            def ask() -> None:
                with PipelineClient(run_dir, context=context) as client:
                    result.append(client.request(m.Status(), WAIT))

            thread = threading.Thread(target=ask, daemon=True)
            thread.start()
            while thread.is_alive():
                server.poll(0.05)
            thread.join()
        finally:
            stage.stop()
    [status] = result
    assert isinstance(status, m.PipelineStatus)
    assert [(s.stage, s.counters) for s in status.stages] == [("risk", answer(m.Status()).counters)]


# --- the run loop's channel ------------------------------------------------------------------
class IdleSource:
    """A loop input with nothing to read: every wait times out (after waiting its timeout)."""

    def __init__(self) -> None:
        self._nothing = threading.Event()

    def wait(self, limit: int | None = None, timeout: float | None = None) -> tuple:
        self._nothing.wait(timeout)
        raise WaitTimeoutError("idle")

    def release(self) -> None:  # pragma: no cover - nothing is ever handed out
        raise AssertionError


@pytest.mark.timeout(30)
def test_a_stage_loop_answers_through_a_loop_channel(
    server: ControlServer, context: zmq.Context
) -> None:
    """stages.loop.StageLoop with ``control=LoopChannel(...)``: status, its own kinds, a kind
    it does not handle, and stop, which ends its run."""
    from stages.loop import StageLoop

    outcome: list[str] = []
    ready = threading.Event()

    def on_control(request: object) -> dict:
        if isinstance(request.message, m.Halt):  # type: ignore[attr-defined]
            return {"halted": request.message.symbol}  # type: ignore[attr-defined]
        return {"error": f"this stage does not handle {request.kind!r}"}  # type: ignore[attr-defined]

    def run() -> None:
        with StageControl(server.manifest.control, "risk", context=context) as control:
            loop = StageLoop(
                IdleSource(),
                lambda views: None,
                control=LoopChannel(control, core=1),
                status=lambda: {"rings": {"orders": 42}, "checked": 7},
                on_control=on_control,
                idle_timeout=0.01,
            )
            ready.set()
            outcome.append(loop.run())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(WAIT)
    server.wait_registered(["risk"], WAIT)
    status = server.request("risk", m.Status(), timeout=WAIT)
    assert isinstance(status, m.StatusReply)
    assert (status.stage, status.state, status.pid, status.core) == (
        "risk",
        "running",
        os.getpid(),
        1,
    )
    assert status.rings == {"orders": 42}
    assert status.counters["checked"] == 7 and status.counters["records"] == 0
    assert {"batches", "busy_ns", "idle_ns"} <= status.counters.keys()
    assert status.cpu_pct >= 0.0
    assert server.request("risk", m.Halt(5), timeout=WAIT) == m.Ack("halted=5")
    assert server.request("risk", m.Snapshot(), timeout=WAIT) == m.Refused(
        "this stage does not handle 'snapshot'"
    )
    assert server.request("risk", m.Stop(), timeout=WAIT) == m.Ack("stopping=True")
    thread.join(WAIT)
    assert outcome == ["stop"]


@pytest.mark.timeout(30)
def test_queued_requests_are_answered_later_and_each_reply_finds_its_request(
    server: ControlServer, context: zmq.Context
) -> None:
    """Two requests outstanding at once (the server's internals send them, as broadcast
    does for two stages), answered in reverse order: the ids route each reply."""
    with StageControl(server.manifest.control, "risk", context=context) as stage:
        server.wait_registered(["risk"], WAIT)
        first, second = (server._send_request("risk", m.Halt(s)) for s in (1, 2))
        requests: list = []
        while len(requests) < 2:
            stage.poll(WAIT)
            requests += stage.take_requests()
        assert [r.message for r in requests] == [m.Halt(1), m.Halt(2)]
        assert [r.kind for r in requests] == ["halt", "halt"]
        for request in reversed(requests):
            stage.answer(request, m.Ack(f"halted {request.message.symbol}"))
        replies = server._collect({"first": first, "second": second}, WAIT)
        assert replies == {"first": m.Ack("halted 1"), "second": m.Ack("halted 2")}


# --- a stage notices a dead or silent supervisor ---------------------------------------------
@pytest.mark.timeout(30)
def test_a_loop_channel_raises_once_its_supervisor_goes_silent(
    server: ControlServer, context: zmq.Context
) -> None:
    """Silence counts once the supervisor beats, which it does in answer to the stage's
    registration (a supervisor that hangs right after its stages registered is noticed,
    whatever verb it answered before), and only past ``silence``; the check runs every
    ``check_every``."""
    clock = FakeClock()
    with StageControl(server.manifest.control, "risk", clock=clock, context=context) as stage:
        channel = LoopChannel(stage, silence=3.0, check_every=0.25)
        clock.now += 100.0  # not registered, not beating yet: no verdict
        assert channel.poll() == [] and not stage.supervisor_beating
        server.wait_registered(["risk"], WAIT)  # answered with a heartbeat, no other call
        while not stage.supervisor_beating:
            stage.poll(WAIT)
        clock.now += 3.0  # silent exactly `silence`: not yet
        assert channel.poll() == []
        clock.now += 0.25
        with pytest.raises(SupervisorGoneError, match=r"stage risk: its supervisor has been "
                           r"silent for more than 3 s; stopping"):  # fmt: skip
            channel.poll()


@pytest.mark.timeout(30)
def test_a_loop_channel_raises_once_its_parent_the_supervisor_is_gone(
    server: ControlServer, context: zmq.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new parent means the supervisor that spawned the stage died; getppid() is asked
    at most every ``check_every``, never per poll (the loop polls once per batch)."""
    clock = FakeClock()
    asked: list[int] = []
    real_getppid = os.getppid

    def getppid() -> int:
        asked.append(1)
        return real_getppid() if len(asked) < 3 else 1  # reparented to init

    monkeypatch.setattr(os, "getppid", getppid)
    with StageControl(server.manifest.control, "risk", clock=clock, context=context) as stage:
        channel = LoopChannel(stage, check_every=0.25)  # asks once, for the parent
        for _ in range(1000):
            assert channel.poll() == []
        assert len(asked) == 1
        clock.now += 0.25
        assert channel.poll() == [] and len(asked) == 2  # the same parent: fine
        clock.now += 0.25
        # a new parent is enough, even while the manifest's supervisor (this process
        # here) lives: the fork server or supervisor that made the stage is gone
        with pytest.raises(SupervisorGoneError, match=rf"its supervisor \(pid {os.getpid()}\) "
                           r"is gone; stopping \(tradepipe clean removes"):  # fmt: skip
            channel.poll()


@pytest.mark.timeout(30)
def test_a_loop_channel_raises_once_the_supervisor_its_manifest_names_is_gone(
    run_dir: Path, context: zmq.Context
) -> None:
    """Stages forked by a fork server keep their parent when the supervisor dies: the
    manifest next to the control socket names the supervisor, pid and start time."""
    import subprocess

    from pipeline.control import PipelineManifest, ipc_endpoint, write_manifest

    child = subprocess.Popen(["true"])
    child.wait()
    prepare_run_dir(run_dir)
    endpoint = ipc_endpoint(run_dir, CONTROL_SOCKET)
    write_manifest(run_dir, PipelineManifest(child.pid, 1, endpoint, endpoint))
    clock = FakeClock()
    with StageControl(endpoint, "risk", clock=clock, context=context) as stage:
        channel = LoopChannel(stage, check_every=0.25)
        assert channel.supervisor is not None and channel.supervisor.supervisor_pid == child.pid
        assert channel.poll() == []  # not checked before check_every
        clock.now += 0.25
        with pytest.raises(
            SupervisorGoneError, match=rf"its supervisor \(pid {child.pid}\) is gone"
        ):
            channel.poll()
    # a manifest of another endpoint is not this stage's supervisor
    write_manifest(run_dir, PipelineManifest(child.pid, 1, endpoint + "x", endpoint))
    with StageControl(endpoint, "risk", clock=clock, context=context) as stage:
        channel = LoopChannel(stage, check_every=0.25)
        assert channel.supervisor is None
        clock.now += 0.25
        assert channel.poll() == []


@pytest.mark.timeout(30)
def test_a_stage_loop_idle_on_its_input_stops_with_an_error_when_the_supervisor_dies(
    server: ControlServer, context: zmq.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop waiting for input answers control between waits, so the death is seen there
    and ends ``run()`` with the error (its outputs are not finished)."""
    from stages.loop import StageLoop

    parent = os.getppid()
    monkeypatch.setattr(os, "getppid", lambda: parent)
    with StageControl(server.manifest.control, "risk", context=context) as control:
        loop = StageLoop(
            IdleSource(),
            lambda views: None,
            control=LoopChannel(control, check_every=0.01),
            idle_timeout=0.01,
        )
        monkeypatch.setattr(os, "getppid", lambda: parent + 1)
        with pytest.raises(SupervisorGoneError, match="is gone"):
            loop.run()
    assert loop.counters.state == "running"
