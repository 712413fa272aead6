"""The pipeline's stage cores wired as a Python engineer would first wire them: one process
per stage, byte frames over pyzmq PUSH/PULL (``ipc://``) or ``multiprocessing.Queue``.

``bench_pipeline.py`` runs these peers beside the real pipeline (the same cores over the
shared-memory rings, ``pipeline.supervisor``), so the figures compare the wiring, not the
work: every stage calls the domain core the ring stage calls, and nothing is re-implemented.

* ingest: ``IngestInput`` (the ingest stage's own input: stamp, validate, throttle, and
  with ``load.rate`` the same ``Pacer``: take what has arrived, up to a batch); each batch
  is sent to persistence, then to risk;
* persistence: ``JournalWriter`` under the fsync policy; it appends what has arrived in one
  go (group commit, as the ring's journaller gets every published record in one wait) and
  sends the durable seq to output;
* risk: ``RiskEngine.pre_trade_words`` per settlement-window chunk, each chunk a frame to
  matching, and the Engine's window rule: before the first command of a new window, wait
  until matching answered every chunk sent, then ``post_trade_words`` their events;
* matching: ``MatchingEngine.process`` per frame; the events go to output, then to risk;
* output: ``stages.output.stage.Releaser`` (the output stage's core): an answer leaves only
  once persistence said its command is durable; ingest→ack latency into its HdrHistogram.

One frame is one batch: the numpy records' bytes; an empty frame ends a stream. Every
link but matching→risk is bounded (``BOUND`` frames), so a fast ingest meets
back-pressure instead of filling memory; matching→risk is not, which keeps the one cycle
(risk → matching → risk) free of deadlock, as the rings' risk stage avoids it by never
blocking in ``claim``. Stages are pinned as the supervisor pins them
(``pipeline.affinity``'s default plan), so placement is not what differs.

The stage functions know nothing of the transport: ``Link`` makes a ``Sender`` and a
``Receiver`` for the transport chosen (``zmq`` or ``mp_queue``), and ``run`` forks the five
processes, starts them together and collects what each reports.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import queue
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import affinity
from pipeline.config import RunConfig
from ringbuffer import EndOfStreamError, WaitTimeoutError
from stages.engine import EngineConfig
from stages.ingest.stage import IngestConfig, IngestInput
from stages.matching.engine import MatchingEngine
from stages.output.stage import Releaser
from stages.persistence.journal_writer import JournalWriter
from stages.record_words import command_words, event_words
from stages.records import COMMAND_DTYPE, EVENT_DTYPE
from stages.risk.engine import RiskEngine

TRANSPORTS = ("zmq", "mp_queue")
FORK = multiprocessing.get_context("fork")
#: frames a bounded link holds (per side for zmq: SNDHWM and RCVHWM)
BOUND = 64
#: seconds a receiving stage waits before it looks at its other inputs again
POLL_TIMEOUT = 0.005
#: seconds to wait for the stages to start, and for a run to end
START_TIMEOUT = 60.0
RUN_TIMEOUT = 600.0
END = b""
#: one link per edge of the topology (sender stage, receiver stage), bounded or not
LINKS = {
    "ingest_persistence": True,
    "ingest_risk": True,
    "risk_matching": True,
    "matching_risk": False,
    "matching_output": True,
    "persistence_output": True,
}


# ---------------------------------------------------------------- transports
class Sender:
    def send(self, frame: bytes) -> None: ...

    def close(self) -> None: ...


class Receiver:
    def recv(self, timeout: float | None) -> bytes | None:
        """The next frame; None if none came within ``timeout`` (0: never wait)."""
        ...

    def close(self) -> None: ...


class _ZmqSender(Sender):
    def __init__(self, address: str, bounded: bool) -> None:
        import zmq

        self.socket = zmq.Context.instance().socket(zmq.PUSH)
        self.socket.setsockopt(zmq.SNDHWM, BOUND if bounded else 0)
        self.socket.connect(address)

    def send(self, frame: bytes) -> None:
        self.socket.send(frame)

    def close(self) -> None:
        self.socket.close(linger=0)  # every frame a peer needs was taken before the close


class _ZmqReceiver(Receiver):
    def __init__(self, address: str, bounded: bool) -> None:
        import zmq

        self.zmq = zmq
        self.socket = zmq.Context.instance().socket(zmq.PULL)
        self.socket.setsockopt(zmq.RCVHWM, BOUND if bounded else 0)
        self.socket.bind(address)

    def recv(self, timeout: float | None) -> bytes | None:
        if timeout is None:
            return self.socket.recv()
        if timeout > 0 and not self.socket.poll(int(timeout * 1000) or 1):
            return None
        try:
            return self.socket.recv(self.zmq.NOBLOCK)
        except self.zmq.Again:
            return None

    def close(self) -> None:
        self.socket.close(linger=0)


class _QueueSender(Sender):
    def __init__(self, channel: Any) -> None:
        self.queue = channel

    def send(self, frame: bytes) -> None:
        self.queue.put(frame)

    def close(self) -> None:
        self.queue.close()
        self.queue.cancel_join_thread()  # every frame a peer needs was taken before the close


class _QueueReceiver(Receiver):
    def __init__(self, channel: Any) -> None:
        self.queue = channel

    def recv(self, timeout: float | None) -> bytes | None:
        try:
            if timeout == 0:
                return self.queue.get_nowait()
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.queue.close()


@dataclass
class Link:
    """One edge of the topology over the chosen transport; made in the parent, opened at
    one end in each of the two stage processes (after the fork)."""

    transport: str
    bounded: bool
    address: str = ""  # zmq: ipc:// endpoint
    channel: Any = None  # mp_queue: the Queue

    @classmethod
    def make(cls, transport: str, name: str, bounded: bool, directory: Path) -> Link:
        if transport == "zmq":
            return cls(transport, bounded, address=f"ipc://{directory / name}")
        if transport == "mp_queue":
            return cls(transport, bounded, channel=FORK.Queue(BOUND if bounded else 0))
        raise ValueError(f"unknown transport {transport!r}: one of {', '.join(TRANSPORTS)}")

    def sender(self) -> Sender:
        if self.transport == "zmq":
            return _ZmqSender(self.address, self.bounded)
        return _QueueSender(self.channel)

    def receiver(self) -> Receiver:
        if self.transport == "zmq":
            return _ZmqReceiver(self.address, self.bounded)
        return _QueueReceiver(self.channel)

    def discard(self) -> None:
        """Parent side: let go of the queue without waiting for a feeder thread."""
        if self.channel is not None:
            self.channel.close()
            self.channel.cancel_join_thread()


def _records(frame: bytes, dtype: np.dtype) -> np.ndarray:
    """A writable batch of a frame (the compiled kernels take writable arrays)."""
    return np.frombuffer(frame, dtype=dtype).copy()


# ---------------------------------------------------------------- the stages
def ingest_config(config: RunConfig) -> IngestConfig:
    """The ingest stage's config for ``config``'s load, as ``pipeline.topology`` makes it."""
    engine, load = config.engine, config.load
    return IngestConfig(
        engine=engine, orders=load.orders, batch=load.batch, accounts=load.accounts,
        seed=load.seed, funding=load.funding, rate=load.rate,
    )  # fmt: skip


def ingest(ends: dict[str, Any], config: IngestConfig, report: dict[str, Any]) -> None:
    """The ingest stage's own input (stamp, validate, throttle; paced at ``config.rate``,
    the same ``Pacer``), each batch sent to persistence, then to risk."""
    to_persistence, to_risk = ends["ingest_persistence"], ends["ingest_risk"]
    source = IngestInput(config, None)
    while True:
        try:
            (batch,) = source.wait(None, POLL_TIMEOUT)
        except WaitTimeoutError:  # paced: nothing due yet
            continue
        except EndOfStreamError:
            break
        frame = batch.tobytes()
        to_persistence.send(frame)
        to_risk.send(frame)
    to_persistence.send(END)
    to_risk.send(END)
    report["last_seq"] = source.stamper.last_seq


def persistence(ends: dict[str, Any], directory: str, fsync: str, report: dict[str, Any]) -> None:
    """Journal what has arrived in one append (one fsync under ``batch``), then tell output
    how far the journal is durable (8 bytes, little-endian)."""
    commands, to_output = ends["ingest_persistence"], ends["persistence_output"]
    journal = JournalWriter(directory, COMMAND_DTYPE, fsync=fsync)
    try:
        ended = False
        while not ended:
            frames = [commands.recv(None)]
            while frames[-1] and (more := commands.recv(0)) is not None:
                frames.append(more)
            if frames[-1] == END:
                ended = True
                frames.pop()
            if frames:
                journal.append(np.frombuffer(b"".join(frames), dtype=COMMAND_DTYPE))
                to_output.send(journal.durable_seq.to_bytes(8, "little"))
        journal.sync()
        to_output.send(journal.durable_seq.to_bytes(8, "little"))
        to_output.send(END)
        report["durable_seq"] = journal.durable_seq
    finally:
        journal.close_quietly()


class _RiskPeer:
    """Risk between its links: pre-trade per window chunk, the Engine's settlement rule."""

    def __init__(self, config: EngineConfig, to_matching: Sender, events: Receiver) -> None:
        self.risk = RiskEngine(config.risk)
        self.every = config.settle_every
        self.to_matching = to_matching
        self.events = events
        self.window = -1
        self.sent = 0  # chunks sent to matching
        self.answered = 0  # their event frames received
        self.unsettled: list[np.ndarray] = []
        self.last_seq = 0

    def check(self, batch: np.ndarray) -> None:
        seqs = batch["seq"]
        n, start, every = len(batch), 0, self.every
        while start < n:
            window = (int(seqs[start]) - 1) // every
            if window != self.window:
                if self.window >= 0:
                    self.await_matching()
                    self.settle()
                self.window = window
            stop = start + int(np.searchsorted(seqs[start:], (window + 1) * every, "right"))
            chunk = batch[start:stop]
            chunk["ts_risk"] = time.perf_counter_ns()
            self.risk.pre_trade_words(command_words(chunk))
            self.to_matching.send(chunk.tobytes())
            self.sent += 1
            start = stop
        self.last_seq = int(seqs[n - 1])
        self.drain(0)

    def drain(self, timeout: float) -> None:
        """Take matching's event frames that arrived (waiting up to ``timeout`` for one)."""
        frame = self.events.recv(timeout)
        while frame is not None:
            self.unsettled.append(_records(frame, EVENT_DTYPE))
            self.answered += 1
            frame = self.events.recv(0)

    def await_matching(self) -> None:
        while self.answered < self.sent:
            self.drain(POLL_TIMEOUT)

    def settle(self) -> None:
        for events in self.unsettled:
            self.risk.post_trade_words(event_words(events))
        self.unsettled.clear()


def risk(ends: dict[str, Any], config: EngineConfig, report: dict[str, Any]) -> None:
    commands = ends["ingest_risk"]
    peer = _RiskPeer(config, ends["risk_matching"], ends["matching_risk"])
    while True:
        frame = commands.recv(POLL_TIMEOUT)
        if frame is None:
            peer.drain(0)
            continue
        if frame == END:
            break
        peer.check(_records(frame, COMMAND_DTYPE))
    peer.await_matching()
    if peer.last_seq and peer.last_seq % peer.every == 0:
        peer.settle()
    peer.to_matching.send(END)
    report["last_seq"] = peer.last_seq


def matching(ends: dict[str, Any], config: EngineConfig, report: dict[str, Any]) -> None:
    commands, to_output, to_risk = (
        ends["risk_matching"],
        ends["matching_output"],
        ends["matching_risk"],
    )
    engine = MatchingEngine(
        config.symbol_specs(),
        order_capacity=config.matching_order_capacity,
        emit_book_top=config.emit_book_top,
    )
    events_sent = 0
    while (frame := commands.recv(None)) != END:
        events = engine.process(_records(frame, COMMAND_DTYPE))
        answer = events.tobytes()
        to_output.send(answer)
        to_risk.send(answer)
        events_sent += len(events)
    to_output.send(END)
    to_risk.send(END)
    report["events"] = events_sent


class _DurableFeed:
    """The durable seqs persistence sends, as the ring consumer ``Releaser`` reads them
    (``poll`` / ``wait`` / ``release`` of views whose last record's ``seq`` is durable)."""

    _SEQ = np.dtype([("seq", "<i8")])

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.ended = False

    def _take(self, timeout: float) -> tuple[np.ndarray, ...]:
        seqs = []
        frame = None if self.ended else self.receiver.recv(timeout)
        while frame is not None:
            if frame == END:
                self.ended = True
                break
            seqs.append(int.from_bytes(frame, "little"))
            frame = self.receiver.recv(0)
        return (np.array([(max(seqs),)], dtype=self._SEQ),) if seqs else ()

    def poll(self) -> tuple[np.ndarray, ...]:
        return self._take(0)

    def wait(self, limit: int | None = None, timeout: float | None = None) -> tuple:
        views = self._take(POLL_TIMEOUT if timeout is None else timeout)
        if not views:
            raise WaitTimeoutError("no durable seq yet")
        return views

    def release(self) -> None:
        """Nothing to give back."""


def output(ends: dict[str, Any], report: dict[str, Any]) -> None:
    events = ends["matching_output"]
    releaser = Releaser(_DurableFeed(ends["persistence_output"]))  # type: ignore[arg-type]
    while (frame := events.recv(None)) != END:
        releaser.handle((np.frombuffer(frame, dtype=EVENT_DTYPE),))
    report["end_ns"] = time.perf_counter_ns()
    details = releaser.details()
    report.update(
        answered=details["answered"],
        gaps=details["gaps"] + details["out_of_order"],
        last_seq=details["last_seq"],
        latency_hdr=details["latency_hdr"],
    )


#: each stage: its body and the links it sends on / receives from
STAGES: dict[str, tuple[Callable[..., None], tuple[str, ...], tuple[str, ...]]] = {
    "output": (output, (), ("matching_output", "persistence_output")),
    "persistence": (persistence, ("persistence_output",), ("ingest_persistence",)),
    "matching": (matching, ("matching_output", "matching_risk"), ("risk_matching",)),
    "risk": (risk, ("risk_matching",), ("ingest_risk", "matching_risk")),
    "ingest": (ingest, ("ingest_persistence", "ingest_risk"), ()),
}


# ---------------------------------------------------------------- one process per stage
def _stage_process(
    name: str,
    links: dict[str, Link],
    kwargs: dict[str, Any],
    cpu_plan: affinity.CpuPlan,
    ready: Any,
    go: Any,
    results: Any,
    done: Any,
) -> None:
    """The one skeleton of every stage process: pin, open its ends, say ready, wait for the
    start, run the stage's body, report (what it says, its CPU seconds), and close its ends
    only once every stage has reported: a sender that went away while its peer was behind
    could lose the frames still queued for it (libzmq drops what a receiver at its
    high-water mark had not read from a connection that closed), and all frames a stage
    needs are taken by then, so nothing waits on a close."""
    body, sends, receives = STAGES[name]
    ends: dict[str, Any] = {}
    report: dict[str, Any] = {"stage": name}
    _die_with_parent()
    try:
        affinity.apply(cpu_plan, name)
        for link in receives:
            ends[link] = links[link].receiver()
        for link in sends:
            ends[link] = links[link].sender()
        ready.put(name)
        go.wait()
        cpu = time.process_time()
        body(ends, report=report, **kwargs)
        report["cpu_seconds"] = time.process_time() - cpu
        results.put(report)
        done.wait(RUN_TIMEOUT)
    except BaseException:
        results.put({"stage": name, "error": traceback.format_exc()})
        raise SystemExit(1) from None
    finally:
        for end in ends.values():
            with contextlib.suppress(Exception):
                end.close()


def _die_with_parent() -> None:
    """Be killed when the bench dies (even by SIGKILL): a stage blocked in a receive would
    otherwise wait for ever (Linux ``PR_SET_PDEATHSIG``; elsewhere nothing is done)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


@dataclass
class PeerReport:
    """What one peer run did: what ``bench_pipeline`` reads of a ``PipelineReport``."""

    commands: int
    seconds: float
    answered: int
    gaps: int
    latency_hdr: bytes
    cpu_seconds: float  # all five stages, from the start to their end


def run(transport: str, config: RunConfig) -> PeerReport:
    """Run ``config``'s load (paced at ``load.rate`` if set) through the five stage
    processes over ``transport``.

    Time runs from the moment every stage is ready (links open) to output's last release.
    Every process is reaped and every link and temporary directory removed on every path.
    """
    directory = Path(tempfile.mkdtemp(prefix="tp-peers-"))
    links: dict[str, Link] = {}
    processes: list[Any] = []
    ready, results, go, done = FORK.Queue(), FORK.Queue(), FORK.Event(), FORK.Event()
    try:
        links = {
            name: Link.make(transport, name, bounded, directory) for name, bounded in LINKS.items()
        }
        kwargs = {
            "output": {},
            "persistence": {"directory": config.journal.directory, "fsync": config.journal.fsync},
            "matching": {"config": config.engine},
            "risk": {"config": config.engine},
            "ingest": {"config": ingest_config(config)},
        }
        cpu_plan = affinity.plan(config.pipeline.cpus)
        for name in STAGES:
            process = FORK.Process(
                target=_stage_process,
                args=(name, links, kwargs[name], cpu_plan, ready, go, results, done),
                name=f"peer-{transport}-{name}",
                daemon=True,
            )
            process.start()
            processes.append(process)
        for _ in STAGES:
            _get(ready, processes, START_TIMEOUT, "start")
        started = time.perf_counter_ns()
        go.set()
        reports: dict[str, dict[str, Any]] = {}
        while len(reports) < len(STAGES):
            report = _get(results, processes, RUN_TIMEOUT, "finish")
            if "error" in report:
                raise RuntimeError(f"peer {transport} stage {report['stage']}: {report['error']}")
            reports[report["stage"]] = report
        done.set()
        for process in processes:
            process.join(START_TIMEOUT)
        out = reports["output"]
        return PeerReport(
            commands=int(reports["ingest"]["last_seq"]),
            seconds=(out["end_ns"] - started) / 1e9,
            answered=int(out["answered"]),
            gaps=int(out["gaps"]),
            latency_hdr=out["latency_hdr"],
            cpu_seconds=sum(r["cpu_seconds"] for r in reports.values()),
        )
    finally:
        go.set()  # a stage still waiting for the start runs into its closed links and ends
        done.set()
        for process in processes:
            if process.is_alive():
                process.join(1.0)
            if process.is_alive():
                process.kill()
            process.join()
        for link in links.values():
            link.discard()
        for q in (ready, results):
            q.close()
            q.cancel_join_thread()
        shutil.rmtree(directory, ignore_errors=True)


def _get(q: Any, processes: list[Any], timeout: float, what: str) -> Any:
    """The next item of ``q``; a RuntimeError if a stage died or ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            if dead:
                with contextlib.suppress(queue.Empty):
                    return q.get(timeout=0.5)  # its error report, if it made one
                raise RuntimeError(f"{dead[0].name} died (exit code {dead[0].exitcode})") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"the peer stages did not {what} in {timeout:.0f} s") from None
