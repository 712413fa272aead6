"""The supervisor: runs the pipeline as five pinned stage processes over the rings, watches
them through the control plane, restarts them after a crash, and says what the run did.

``run_pipeline(config)`` prepares the run directory (0700) and its ``ControlServer``,
creates the rings (``pipeline.topology``), starts the stages (consumers before producers,
forked from a warm fork server: ``stage_context``), each one pinned by
``pipeline.affinity.apply`` inside the child before its loop starts and connected to the
control plane under its name, waits until all have registered, and lets the load run to
its end: ingest finishes the commands ring and the end of the stream flows down to output.
Meanwhile its watch loop follows the durable journal with an ``Engine`` replica that saves
the periodic snapshots (``stages.persistence.follower``). At the end it joins every
process, unlinks the rings, removes the files it made, and returns a ``PipelineReport``:
per stage pid, core, records, batches, busy and CPU time; output's outcomes; every hop's
latency; the durable seq; the restarts; and the state check (throttle + risk + matching
state against ``Engine`` replays of the journal, from the newest snapshot and the start).

* A stop (``request_stop()``: SIGINT / SIGTERM when run from the main thread, or a
  client's ``stop``) asks ingest to stop: it finishes the commands ring, and the stages
  downstream drain what was sequenced and stop in turn. The report says ``stopped``.
* A stage that dies (exit code ≠ 0, or it reports an error such as ``PeerDeadError``), or
  is silent on the control plane for ``stale_after`` seconds: the others are terminated
  and the pipeline starts again from the last command whose answers all left
  (``pipeline.restart``), exactly once. More than ``max_restarts`` failures within
  ``restart_window`` seconds end the run: ``StageFailure`` (a ``CommandError``) names the
  stage, its exit code or signal and how far the journal is durable.
* Operator requests: ``halt``, ``resume``, ``kill_switch`` and ``deposit`` go to ingest,
  which sequences them with the orders; ``snapshot`` is the replica's.

Nothing is left in /dev/shm or the run directory on any path out of ``run_pipeline``;
after a ``kill -9`` of the supervisor itself, its stages exit on their own and
``tradepipe clean`` (or the next run) removes what it left.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from pipeline import affinity
from pipeline import control_messages as m
from pipeline.config import RunConfig
from pipeline.control import (
    HEARTBEAT_EVERY,
    PROGRESS_FILE,
    RESTART_STATE,
    ControlServer,
    LoopChannel,
    StageControl,
    SupervisorGoneError,
)
from pipeline.exitcodes import CommandError, ExitStatus
from pipeline.inprocess import ReplayCheck
from pipeline.replica import ReplicaThread
from pipeline.restart import plan_restart
from pipeline.topology import COMMANDS, Topology, gateway_endpoints
from ringbuffer import segment_name
from stages.engine import Engine
from stages.loop import StageResult
from stages.persistence.follower import JournalFollower
from stages.persistence.journal_errors import JournalError
from stages.persistence.journal_reader import JournalReader
from stages.persistence.journal_segments import list_segments
from stages.persistence.recovery import Snapshotter, replay_journal
from stages.persistence.snapshots import SnapshotError, SnapshotStore
from stages.records import EVENT_DTYPE
from stages.restart import RestartPoint

#: seconds for every stage to register (the first start imports numpy, numba, ... and may
#: compile the kernels, in the fork server)
REGISTER_TIMEOUT = 120.0
#: a registered stage silent this long (seconds) is treated as dead. Generous: a stage's
#: first batches may compile numba kernels, and it does not beat while compiling.
STALE_AFTER = 30.0
#: how often the supervisor looks at its stages (seconds): a death is noticed this fast
WATCH_EVERY = 0.1
#: seconds a stage has to exit once it reported, and the others after a failure
JOIN_TIMEOUT = 30.0
KILL_TIMEOUT = 5.0
REQUEST_TIMEOUT = 2.0
#: how long a stage's PeerDeadError waits for the peer's death to be seen (seconds)
PEER_GRACE = 1.0
#: restarts allowed within RESTART_WINDOW seconds; one more failure ends the run
MAX_RESTARTS = 3
RESTART_WINDOW = 60.0
#: the requests ingest sequences into the command stream
ADMIN_REQUESTS = (m.Halt, m.Resume, m.KillSwitch, m.Deposit)


class StageFailure(CommandError):
    """A stage died or went silent; the run was stopped and everything removed. ``what``:
    the short form (which stage, how) for the restart notes."""

    def __init__(self, message: str, stage: str, what: str = "") -> None:
        super().__init__(message, ExitStatus.FAILED)
        self.stage = stage
        self.what = what or message


@dataclass(frozen=True)
class StageReport:
    """What one stage process did."""

    stage: str
    pid: int
    core: int
    records: int
    batches: int
    busy_ns: int
    stopped_by: str
    cpu_seconds: float = 0.0  # user + system CPU time of the stage process


class _Reports:
    """What the stages report (warnings, their result, their error), one pipe per stage.

    A pipe of its own, not a shared queue: a stage whose supervisor is gone gets
    ``BrokenPipeError`` when it reports, and exits, instead of blocking on a queue that the
    other stages also hold open; and a stage killed mid-report damages only its own pipe.
    """

    def __init__(self) -> None:
        self.readers: dict[Any, str] = {}

    def add(self, context: Any, stage: str) -> Any:
        """A new pipe for ``stage``; returns the end the stage writes to."""
        reader, writer = context.Pipe(duplex=False)
        self.readers[reader] = stage
        return writer

    def get(self, timeout: float = 0.0) -> tuple[str, str, Any]:
        """The next report, waiting up to ``timeout`` seconds; ``queue.Empty`` if none."""
        deadline = time.monotonic() + timeout
        while self.readers:
            left = max(0.0, deadline - time.monotonic())
            ready = multiprocessing.connection.wait(list(self.readers), left)
            for reader in ready:
                try:
                    return reader.recv()
                except (EOFError, OSError):  # the stage is gone: its exit code says more
                    del self.readers[reader]
                    reader.close()
            if not ready:
                break
        raise queue.Empty

    def get_nowait(self) -> tuple[str, str, Any]:
        return self.get(0.0)

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        self.readers.clear()


class _Rows:
    """Output's outcome rows, with ``Outcomes.rows()``'s shape for the summary."""

    def __init__(self, rows: list[tuple[str, int]]) -> None:
        self._rows = [(str(label), int(count)) for label, count in rows]

    def rows(self) -> list[tuple[str, int]]:
        return list(self._rows)


@dataclass
class PipelineReport:
    """What a pipeline run did; the attributes ``print_summary`` reads are those of the
    in-process ``RunReport``, so both runs print the same summary."""

    commands: int = 0
    seconds: float = 0.0
    engine_seconds: float = 0.0  # the busier of risk and matching, busy
    journal_seconds: float = 0.0  # persistence, busy
    latency: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 60_000_000_000, 3))
    outcomes: _Rows = field(default_factory=lambda: _Rows([]))
    journal_bytes: int = 0
    durable_seq: int = 0
    snapshots: int = 0  # periodic and requested snapshots the run saved
    snapshot_failures: list[str] = field(default_factory=list)
    state_hash: str = ""  # the stages' state (throttle, risk, matching, open window)
    checks: dict[str, ReplayCheck] = field(default_factory=dict)
    stages: dict[str, StageReport] = field(default_factory=dict)
    answered: int = 0  # distinct commands output answered
    gaps: int = 0  # commands never answered, or answered out of order
    stopped: bool = False  # a stop (signal or verb) ended the load early
    warnings: list[str] = field(default_factory=list)  # pinning / priority not applied
    restarts: list[str] = field(default_factory=list)  # what died, where it started again
    #: per restart: seconds to rebuild the state, and from the failure seen to the new
    #: pipeline registered and processing (perf/bench_recovery.py reads these)
    rebuild_seconds: list[float] = field(default_factory=list)
    back_seconds: list[float] = field(default_factory=list)
    #: per hop (``"ingest→risk"``, ``"ingest→durable"``, ``"ingest→match"``,
    #: ``"ingest→ack"``) the latency histogram (ns) of the last pipeline
    hops: dict[str, HdrHistogram] = field(default_factory=dict)

    @property
    def recovered(self) -> bool:
        return bool(self.checks) and all(
            check.state_hash == self.state_hash for check in self.checks.values()
        )


def _stage_main(
    name: str,
    entry: Callable[..., StageResult],
    kwargs: dict[str, Any],
    endpoint: str,
    cpu_plan: affinity.CpuPlan,
    results: Any,
) -> None:
    """A stage process: pin, connect to the control plane, run the stage, report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which drains
    started = os.times()
    cpu_at_start = started.user + started.system  # a fork's own, but count from the stage's start
    try:
        warning = affinity.apply(cpu_plan, name)
        if warning is not None:
            results.send(("warning", name, warning))
        control = StageControl(endpoint, name)
        try:
            result = entry(**kwargs, control=LoopChannel(control, core=cpu_plan.core(name)))
        finally:
            control.close()
        times = os.times()
        result.details["cpu_seconds"] = times.user + times.system - cpu_at_start
        results.send(("result", name, result))
    except SupervisorGoneError as gone:  # nobody is left to report to: say it, and go
        print(f"tradepipe: {gone}", file=sys.stderr)
        raise SystemExit(1) from None
    except BaseException:
        with contextlib.suppress(OSError):  # BrokenPipeError: the supervisor is gone
            results.send(("error", name, traceback.format_exc()))
        raise SystemExit(1) from None


def stage_context() -> Any:
    """The ``multiprocessing`` context stage processes start from: a fork server that
    imported every stage and loaded the compiled kernels once (``pipeline.warm``), so a
    stage starts in milliseconds (a restart most of all) and the server, single-threaded,
    forks safely. The server lives as long as this process; started on first use."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pipeline.warm"])
    return context


def _state_digest(throttle: str, risk: str, matching: str, unsettled: bytes) -> str:
    """One digest of the state the stages hold; the open window's events without
    ``dt_match`` (a latency, not state)."""
    events = np.frombuffer(unsettled, dtype=EVENT_DTYPE).copy()
    events["dt_match"] = 0
    h = hashlib.blake2b(digest_size=32)
    for part in (throttle, risk, matching):
        h.update(part.encode())
    h.update(events.tobytes())
    return h.hexdigest()


def journal_end(directory: str | Path) -> int:
    """The last seq the journal in ``directory`` holds (0: none, or unreadable)."""
    directory = Path(directory).expanduser()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = JournalReader(directory)
            if not reader.segments:
                return 0
            for _ in reader.batches(reader.segments[-1].first_seq):
                pass
            return int(reader.last_seq or 0)
    except (JournalError, OSError):
        return 0


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "an error"


def _exit_text(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class Supervisor:
    """One pipeline run; ``run()`` once. ``request_stop()`` may be called from any thread
    or a signal handler; ``ready`` is set once every stage has registered."""

    def __init__(
        self,
        config: RunConfig,
        *,
        tag: str | None = None,
        stale_after: float = STALE_AFTER,
        register_timeout: float = REGISTER_TIMEOUT,
        on_warning: Callable[[str], None] | None = None,
        max_restarts: int = MAX_RESTARTS,
        restart_window: float = RESTART_WINDOW,
        release_log: Path | None = None,
    ) -> None:
        self.config = config
        self.release_log = release_log
        #: the stages, in start order (consumers first; the source, ingest or the gateway,
        #: last)
        self.stages = Topology(config).stage_names
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.tag = tag or f"tp{os.getpid()}"
        self.stale_after = stale_after
        self.register_timeout = register_timeout
        self.on_warning = on_warning
        self.ready = threading.Event()
        self._collected: dict[str, StageResult] = {}
        #: the pid of each stage of the pipeline running (or last run)
        self.pids: dict[str, int] = {}
        self._failed_at: float | None = None  # when the last failure was seen
        self._stop = threading.Event()
        self._stop_sent = False
        self._ready_ns = 0
        self.report = PipelineReport()

    def request_stop(self) -> None:
        """Drain and stop: ingest stops, the rest drain what was sequenced."""
        self._stop.set()

    # --- the run --------------------------------------------------------------------------
    def run(self) -> PipelineReport:
        config = self.config
        cpu_plan = Topology(config).cpu_plan()  # the same plan its stages' waits follow
        context = stage_context()
        snapshots = config.snapshots
        store = SnapshotStore(snapshots.directory, keep=snapshots.keep)
        if store.paths():
            raise CommandError(
                f"snapshot directory {store.directory} holds snapshots of another run "
                f"({store.paths()[-1].name}, ...): a restart would start from them; name an "
                "empty directory ([snapshots] directory) or start with tradepipe run --fresh",
                ExitStatus.USAGE,
            )
        rings = [segment_name(f"{self.tag}-{plan.role}") for plan in Topology(config).plans()]
        endpoints = gateway_endpoints(config)
        server = ControlServer(
            config.pipeline.run_dir,
            stale_after=self.stale_after,
            client_handler=self._client,
            rings=rings,
            gateway=endpoints.bind if endpoints else (),
            market_data=endpoints.market_data if endpoints else (),
        )
        self._server = server
        run_dir = server.run_dir
        progress = run_dir / PROGRESS_FILE
        made: list[Path] = [progress]  # the files this run creates in run_dir
        restart: RestartPoint | None = None
        failures: list[float] = []  # when each restart happened (monotonic)
        self._durable = 0  # the durable seq, as the watch loop last read it
        self._replica = ReplicaThread(
            JournalFollower(
                config.journal.directory,
                Engine(config.engine),
                Snapshotter(store, snapshots.every_records),
            ),
            lambda: self._durable,
            self._warn,
        )
        self._replica.start()
        try:
            while True:
                try:
                    return self._run_once(context, server, cpu_plan, restart, progress)
                except StageFailure as failure:
                    now = self._failed_at = time.monotonic()
                    failures = [t for t in failures if now - t < self.restart_window]
                    if self._stop.is_set() or len(failures) >= self.max_restarts:
                        raise self._giving_up(failure, len(failures)) from None
                    failures.append(now)
                    began = time.perf_counter()
                    state_file = run_dir / RESTART_STATE.format(
                        number=len(self.report.restarts) + 1
                    )
                    made.append(state_file)
                    restart = plan_restart(config, progress, restart, state_file, self.release_log)
                    self._note_restart(failure, restart, time.perf_counter() - began)
        finally:
            self._replica.stop()
            server.close()
            for path in made:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _run_once(
        self,
        context: Any,
        server: ControlServer,
        cpu_plan: affinity.CpuPlan,
        restart: RestartPoint | None,
        progress: Path,
    ) -> PipelineReport:
        """One pipeline from ``restart`` (None: the load's start) to its end or a failure."""
        topology = Topology(self.config, tag=self.tag)
        processes: dict[str, multiprocessing.process.BaseProcess] = {}
        results = _Reports()
        self._results = results
        self._processes = processes
        self._topology = topology
        self._first_seq = restart.state_seq + 1 if restart is not None else 1
        for stage in self.stages:
            server.forget(stage)  # a restarted stage registers again
        try:
            topology.create()
            log = str(self.release_log) if self.release_log is not None else ""
            calls = topology.stage_calls(restart, str(progress), log)
            for call in calls.values():
                writer = results.add(context, call.name)
                process = context.Process(
                    target=_stage_main,
                    args=(
                        call.name,
                        call.entry,
                        call.kwargs,
                        server.manifest.control,
                        cpu_plan,
                        writer,
                    ),
                    name=f"tradepipe-{call.name}",
                    daemon=True,
                )
                try:
                    process.start()
                finally:
                    writer.close()  # the stage holds the only writing end
                processes[call.name] = process
                self.pids[call.name] = process.pid
            collected = self._watch(processes, results, cpu_plan, server)
            wall_ns = time.perf_counter_ns() - self._ready_ns  # from all registered
            for name, process in processes.items():
                process.join(JOIN_TIMEOUT)
                if process.exitcode != 0:
                    self._fail(name, process.exitcode, "after reporting its result")
            self._build_report(collected, processes, cpu_plan, wall_ns, restart)
            return self.report
        finally:
            self._reap(processes)
            for process in processes.values():  # its sentinel and pipes (a test runs many)
                with contextlib.suppress(ValueError):  # still running: reaping failed, keep it
                    process.close()
            results.close()
            topology.unlink()

    def _durable_seq(self) -> int:
        """The last durable command, read from persistence's cursor on the commands ring
        (ring position 0 holds the first command this pipeline sequenced or sent again)."""
        ring = self._topology.rings.get(COMMANDS)
        if ring is None:
            return self._first_seq - 1
        return self._first_seq + ring.consumer_cursor("persistence")

    def _follow(self) -> None:
        """Tell the snapshot replica how far the journal is durable. Read here, in the
        watch loop's thread, which alone maps and unmaps the rings (a restart replaces
        them); the replica's thread only reads the number."""
        self._durable = max(self._durable, self._durable_seq())

    def _warn(self, text: str) -> None:
        self.report.warnings.append(text)
        if self.on_warning is not None:
            self.on_warning(text)

    def _note_restart(self, failure: StageFailure, restart: RestartPoint, seconds: float) -> None:
        """Say what died and where the pipeline starts again (report, warning callback)."""
        again = restart.journal_end - restart.state_seq
        note = (
            f"{failure.what}; restarted from seq {restart.state_seq:,} (state rebuilt from "
            f"the journal in {seconds:.2f} s; {again:,} journaled command(s) sent again"
            + (
                f", {restart.released_of_first} answer(s) of seq {restart.state_seq + 1:,} "
                "already out)"
                if restart.released_of_first
                else ")"
            )
        )
        self.report.restarts.append(note)
        self.report.rebuild_seconds.append(seconds)
        if self.on_warning is not None:
            self.on_warning(note)

    def _giving_up(self, failure: StageFailure, restarts: int) -> StageFailure:
        if self._stop.is_set():
            return failure
        return StageFailure(
            f"{failure.what}; it was the {restarts + 1}th failure within "
            f"{self.restart_window:g} s ({restarts} restart(s)): giving up; "
            f"{self._durable_text()}; tradepipe journal verify / replay read it",
            failure.stage,
        )

    def _watch(
        self,
        processes: dict[str, Any],
        results: Any,
        cpu_plan: affinity.CpuPlan,
        server: ControlServer,
    ) -> dict[str, StageResult]:
        """Until every stage reported its result: answer the control plane, collect what
        the stages put on ``results``, fail on a death or silence, pass a stop on."""
        collected: dict[str, StageResult] = {}
        self._collected = collected
        registered = False
        register_deadline = time.monotonic() + self.register_timeout
        last_beat = 0.0
        exited: dict[str, float] = {}  # stages gone with exit code 0, not yet reported
        stages = self.stages
        while len(collected) < len(stages):
            server.poll(WATCH_EVERY)
            self._follow()
            while True:
                try:
                    what, name, payload = results.get_nowait()
                except queue.Empty:
                    break
                if what == "warning":
                    self.report.warnings.append(payload)
                    if self.on_warning is not None:
                        self.on_warning(payload)
                elif what == "result":
                    collected[name] = payload
                else:  # an error: the traceback's last line says what
                    processes[name].join(KILL_TIMEOUT)
                    self._fail(name, processes[name].exitcode, _last_line(payload))
            for name, process in processes.items():
                if name in collected or process.exitcode is None:
                    continue
                if process.exitcode != 0:
                    self._fail(name, process.exitcode, self._error_of(name, results))
                exited.setdefault(name, time.monotonic())
                if time.monotonic() - exited[name] > KILL_TIMEOUT:
                    self._fail(name, 0, "it exited without reporting a result")
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_EVERY:  # also while stages are still starting:
                last_beat = now  # a registered stage counts silence from its registration
                server.send_heartbeats()
            if not registered:
                if all(stage in server.stages for stage in stages):
                    registered = True
                    if self._failed_at is not None:  # a restarted pipeline is running
                        back = time.monotonic() - self._failed_at
                        self._failed_at = None
                        self.report.restarts[-1] += f"; processing again {back:.2f} s after"
                        self.report.back_seconds.append(back)
                    if not self.ready.is_set():
                        self._ready_ns = time.perf_counter_ns()
                        self.ready.set()
                elif time.monotonic() > register_deadline:
                    missing = [s for s in stages if s not in server.stages]
                    self._reap(processes)
                    raise CommandError(
                        f"stage(s) {', '.join(missing)} did not register on the control "
                        f"plane within {self.register_timeout:.0f} s; " + self._durable_text(),
                        ExitStatus.FAILED,
                    )
                continue
            stale = [s for s in server.stale() if s not in collected]
            if stale:
                self._fail(stale[0], None, f"silent for more than {self.stale_after:g} s")
            first = stages[-1]  # the source: the gateway if it runs, else ingest
            if self._stop.is_set() and not self._stop_sent and first not in collected:
                self._stop_sent = True
                self.report.stopped = True
                with contextlib.suppress(CommandError):
                    server.request(first, m.Stop(), REQUEST_TIMEOUT)
        return collected

    @staticmethod
    def _error_of(stage: str, results: Any) -> str:
        """What ``stage`` reported before it died, if it did (waiting briefly for it)."""
        deadline = time.monotonic() + 1.0
        while (left := deadline - time.monotonic()) > 0:
            try:
                what, name, payload = results.get(timeout=left)
            except queue.Empty:
                break
            if what == "error" and name == stage:
                return _last_line(payload)
        return ""

    def _durable_text(self) -> str:
        directory = Path(self.config.journal.directory).expanduser()
        last = journal_end(directory)
        if not last:
            return f"the journal {directory} holds no records"
        fsync = self.config.journal.fsync
        held = "written, not fsynced (fsync never)" if fsync == "never" else f"durable ({fsync})"
        return f"the journal {directory} holds records up to seq {last:,}, {held}"

    def _fail(self, stage: str, exitcode: int | None, why: str) -> None:
        if not why or "PeerDeadError" in why:
            # a stage that saw a dead peer is the consequence: name the one that died
            stage, exitcode, why = self._first_dead(stage, exitcode, why)
        self._reap(self._processes)
        how = _exit_text(exitcode) if exitcode is not None or not why else ""
        what = "; ".join(part for part in (how, why) if part)
        raise StageFailure(
            f"stage {stage} died ({what}); the others were stopped; {self._durable_text()}",
            stage,
            what=f"stage {stage} died ({what})",
        )

    def _first_dead(
        self, stage: str, exitcode: int | None, why: str
    ) -> tuple[str, int | None, str]:
        """The stage killed by a signal, or the one that reported an error of its own (not
        a dead peer), if one did (looking for up to ``PEER_GRACE`` seconds: a peer noticed
        its death, so it is gone or going), else the one given."""
        deadline = time.monotonic() + PEER_GRACE
        while True:
            for name, process in self._processes.items():
                if name != stage and process.exitcode is not None and process.exitcode < 0:
                    return name, process.exitcode, ""
            with contextlib.suppress(queue.Empty):
                while True:
                    what, name, payload = self._results.get_nowait()
                    if what == "error" and name != stage and "PeerDeadError" not in payload:
                        self._processes[name].join(KILL_TIMEOUT)
                        return name, self._processes[name].exitcode, _last_line(payload)
            if time.monotonic() >= deadline:
                return stage, exitcode, why
            for process in self._processes.values():
                process.join(0.01)

    @staticmethod
    def _reap(processes: dict[str, Any]) -> None:
        """Terminate whatever still runs, kill what ignores it, join everything."""
        alive = [p for p in processes.values() if p.is_alive()]
        for process in alive:
            process.terminate()
        for process in alive:
            process.join(KILL_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join(KILL_TIMEOUT)

    # --- the verbs ------------------------------------------------------------------------
    def _client(self, message: m.Message) -> m.Message:
        if isinstance(message, m.Status):
            replies = self._server.broadcast(m.Status(), REQUEST_TIMEOUT)
            stages = [r for r in replies.values() if isinstance(r, m.StatusReply)]
            return m.PipelineStatus(os.getpid(), stages)
        if isinstance(message, m.Stop):
            self.request_stop()
            return m.Ack(
                f"draining: {self.stages[-1]} stops, the other stages finish what was sequenced"
            )
        if isinstance(message, ADMIN_REQUESTS):
            return self._sequence(message)
        if isinstance(message, m.Snapshot):
            try:
                self._follow()
                seq, path = self._replica.snapshot_now()
            except (SnapshotError, JournalError) as error:
                return m.Refused(f"no snapshot taken: {error}")
            return m.Ack(f"snapshot of the state after seq {seq:,} saved as {path}")
        return m.Refused(f"the supervisor does not handle {message.kind!r} yet")

    def _sequence(self, message: m.Message) -> m.Message:
        """An admin command goes to ingest, which sequences it with the orders (journaled,
        replayed like them); the reply names its seq."""
        if "ingest" in self._collected:
            return m.Refused("the load has ended: ingest no longer sequences commands")
        if "ingest" not in self._server.stages or self._stop.is_set():
            return m.Refused(
                "the pipeline is not taking commands now (starting, restarting or draining)"
            )
        try:
            reply = self._server.request("ingest", message, REQUEST_TIMEOUT)
        except CommandError as error:
            return m.Refused(f"ingest did not take it: {error}")
        if isinstance(reply, m.Ack) and reply.detail.startswith("seq="):
            seq = int(reply.detail.removeprefix("seq="))
            return m.Ack(
                f"{message.kind} sequenced as seq {seq:,}: journaled, then applied in order"
            )
        return reply

    # --- the report -----------------------------------------------------------------------
    def _build_report(
        self,
        results: dict[str, StageResult],
        processes: dict[str, Any],
        cpu_plan: affinity.CpuPlan,
        wall_ns: int,
        restart: RestartPoint | None,
    ) -> None:
        config, report = self.config, self.report
        ingest, persistence = results["ingest"], results["persistence"]
        risk, matching, output = results["risk"], results["matching"], results["output"]
        report.seconds = wall_ns / 1e9
        report.commands = int(ingest.details["last_seq"])
        report.engine_seconds = max(risk.counters.busy_ns, matching.counters.busy_ns) / 1e9
        report.journal_seconds = persistence.counters.busy_ns / 1e9
        report.latency = HdrHistogram.decode(output.details["latency_hdr"])
        report.outcomes = _Rows(output.details["outcomes"])
        report.durable_seq = int(persistence.details["durable_seq"])
        # the commands up to a restart's state_seq were answered by the pipelines before
        report.answered = int(output.details["answered"]) + (restart.state_seq if restart else 0)
        for result in (risk, persistence, output):
            for hop, encoded in result.details.get("hops", {}).items():
                report.hops[hop] = HdrHistogram.decode(encoded)
        report.gaps = int(output.details["gaps"]) + int(output.details["out_of_order"])
        journal_dir = Path(config.journal.directory).expanduser()
        report.journal_bytes = sum(p.stat().st_size for p in list_segments(journal_dir))
        for name in self.stages:
            result = results[name]
            report.stages[name] = StageReport(
                name,
                processes[name].pid,
                cpu_plan.core(name),
                result.counters.records,
                result.counters.batches,
                result.counters.busy_ns,
                result.stopped_by,
                float(result.details.get("cpu_seconds", 0.0)),
            )
        report.state_hash = _state_digest(
            ingest.details["throttle_hash"],
            risk.details["risk_hash"],
            matching.details["matching_hash"],
            risk.details["unsettled"],
        )
        self._replica.stop()  # the checks below replay the journal: no replica beside them
        report.snapshots = len(self._replica.snapshots)
        snapshots = Path(config.snapshots.directory).expanduser()
        for label, directory in (
            ("newest snapshot + journal", snapshots if snapshots.is_dir() else None),
            ("journal from the start (audit)", None),
        ):
            began = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                replay = replay_journal(journal_dir, directory, lambda: Engine(config.engine))
            engine = replay.state
            replayed = _state_digest(
                engine.throttle.state_hash(),
                engine.risk.state_hash(),
                engine.matching.state_hash(),
                engine.open_window_events().tobytes(),
            )
            report.checks[label] = ReplayCheck(
                replay.snapshot_seq or 0, replay.replayed, time.perf_counter() - began, replayed
            )


def run_pipeline(config: RunConfig, **options: Any) -> PipelineReport:
    """Run ``config`` through the stage processes (see ``Supervisor``); in the main thread
    SIGINT and SIGTERM drain and stop the run instead of killing it."""
    supervisor = Supervisor(config, **options)
    if threading.current_thread() is not threading.main_thread():
        return supervisor.run()
    handlers = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handlers[signum] = signal.signal(signum, lambda *_: supervisor.request_stop())
    try:
        return supervisor.run()
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
