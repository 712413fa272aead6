"""Benchmark the whole pipeline end to end: the same stage cores wired four ways, one run.

Every wiring runs the same domain cores on the same seeded load (``tradepipe run``'s
default engine and synthetic flow, batches of 1024): the ingest stage's input (stamp,
validate, throttle, pacing), the journal, risk with the Engine's settlement windows,
matching, and the output stage's releaser (an answer leaves only once its command is
durable; ingest→ack latency of every answer into an HdrHistogram).

* ``tradepipe``: the real pipeline, five pinned stage processes over the shared-memory
  rings under ``pipeline.supervisor.Supervisor`` (what ``tradepipe run`` runs);
* ``zmq``: the five stages as processes over pyzmq PUSH/PULL on ``ipc://``, one frame per
  batch (``pipeline_peers.py``), pinned as tradepipe pins them;
* ``mp_queue``: the same processes over ``multiprocessing.Queue``;
* ``inprocess``: ``Engine`` + ``JournalWriter`` in one process (``tradepipe run
  --inprocess``): journal, then answer, batch after batch.

Modes: ``throughput`` (the load as fast as ingest takes it; fsync ``batch`` and ``never``):
commands answered (the funding deposits included) per second from the start (every stage
ready) to the last answer; ``latency`` (paced at 100 k commands/s, ``load.rate``; fsync
``never`` and ``batch``): ingest→ack p50 / p99 / p99.9. ``cpu_pct``: CPU time of the
wiring's processes over the run, in % of one core. ``idle_cpu_pct``: a tradepipe pipeline
offered 10 commands/s, its five stage processes' CPU over a few seconds.

    python perf/bench_pipeline.py --quick --json perf/results/pipeline.json
"""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import harness
import pipeline_peers
import psutil
from hdrh.histogram import HdrHistogram

from pipeline.config import (
    JournalConfig,
    LoadConfig,
    PipelineConfig,
    RunConfig,
    SnapshotConfig,
)
from pipeline.supervisor import Supervisor
from ringbuffer import EndOfStreamError, WaitTimeoutError
from stages.engine import Engine
from stages.ingest.stage import IngestInput
from stages.output.stage import Releaser
from stages.persistence.journal_writer import JournalWriter
from stages.records import COMMAND_DTYPE

WIRINGS = ("tradepipe", "zmq", "mp_queue", "inprocess")
CASES = (
    ("throughput", "batch"),
    ("throughput", "never"),
    ("latency", "never"),
    ("latency", "batch"),
)
RATE = 100_000.0  # commands/s offered in the latency mode
IDLE_RATE = 10.0  # commands/s offered while idle CPU is measured
BATCH = 1024
READY_TIMEOUT = 150.0  # seconds for the supervisor's spawned stages to register
SETTLE = 1.0  # seconds after the start before idle CPU is sampled
FIELDS = ("orders_per_s", "p50_us", "p99_us", "p999_us", "cpu_pct")
#: what the supervisor restarted during a timed run (its figures then include the restart)
RESTARTS: list[str] = []


def run_config(directory: Path, orders: int, fsync: str, rate: float) -> RunConfig:
    """``tradepipe run``'s defaults with every file in ``directory``."""
    return RunConfig(
        load=LoadConfig(orders=orders, batch=BATCH, rate=rate),
        journal=JournalConfig(directory=str(directory / "journal"), fsync=fsync),
        snapshots=SnapshotConfig(directory=str(directory / "snapshots")),
        pipeline=PipelineConfig(run_dir=str(directory / "run")),
    )


def figures(commands: int, seconds: float, latency: HdrHistogram, cpu: float | None) -> dict:
    return {
        "orders_per_s": commands / seconds,
        "p50_us": latency.get_value_at_percentile(50) / 1e3,
        "p99_us": latency.get_value_at_percentile(99) / 1e3,
        "p999_us": latency.get_value_at_percentile(99.9) / 1e3,
        # CPU times come in clock ticks: a tiny run's difference may round below zero
        "cpu_pct": None if cpu is None else 100.0 * max(0.0, cpu) / seconds,
    }


def check_answers(wiring: str, commands: int, answered: int, gaps: int) -> None:
    """A wiring that lost or reordered answers has no figure to give."""
    if answered != commands or gaps:
        raise RuntimeError(f"{wiring}: {answered} of {commands} commands answered, {gaps} gaps")


# ---------------------------------------------------------------- tradepipe
def descendants() -> list[psutil.Process]:
    """Every process below this one: the supervisor's stages (however ``multiprocessing``
    starts them: spawned, or forked by a fork server) and its helpers; callers keep the
    stages' by the pids the report names."""
    return psutil.Process().children(recursive=True)


def cpu_of(processes: list[psutil.Process]) -> dict[int, float]:
    """User + system CPU seconds of each process still there, by pid."""
    seconds = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        seconds[process.pid] = times.user + times.system
    return seconds


class ReadySampler(threading.Thread):
    """The stage processes' CPU seconds at the moment the supervisor says all registered,
    so that their CPU over the run is what they report at the end less this (the start-up
    of a spawned stage, importing numpy and numba, is not the run's)."""

    def __init__(self, supervisor: Supervisor) -> None:
        super().__init__(daemon=True)
        self.supervisor = supervisor
        self.done = threading.Event()
        self.at_ready: dict[int, float] = {}

    def run(self) -> None:
        while not self.done.is_set():
            if self.supervisor.ready.wait(0.05):
                self.at_ready = cpu_of(descendants())
                return


def run_tradepipe(orders: int, fsync: str, rate: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="tp-bench-") as tmp:
        supervisor = Supervisor(run_config(Path(tmp), orders, fsync, rate), tag="benchpipe")
        sampler = ReadySampler(supervisor)
        sampler.start()
        try:
            report = supervisor.run()
        finally:
            sampler.done.set()
            sampler.join()
    check_answers("tradepipe", report.commands, report.answered, report.gaps)
    for restart in getattr(report, "restarts", []):
        harness.progress(f"warning: the supervisor restarted a stage during the run: {restart}")
        RESTARTS.append(restart)
    stages = report.stages.values()
    cpu = None
    if all(s.pid in sampler.at_ready and getattr(s, "cpu_seconds", 0) for s in stages):
        cpu = sum(s.cpu_seconds - sampler.at_ready[s.pid] for s in stages)
    return figures(report.commands, report.seconds, report.latency, cpu)


def measure_idle(seconds: float) -> float:
    """% of one core the five stage processes of a pipeline offered ``IDLE_RATE`` commands/s
    use, over ``seconds`` once the start-up has settled."""
    outcome: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tp-bench-") as tmp:
        config = run_config(Path(tmp), 1_000_000, "batch", IDLE_RATE)
        supervisor = Supervisor(config, tag="benchidle")

        def drive() -> None:
            try:
                outcome["report"] = supervisor.run()
            except BaseException as error:  # raised below, in the bench's thread
                outcome["error"] = error

        thread = threading.Thread(target=drive)
        thread.start()
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not supervisor.ready.wait(0.1):
                if not thread.is_alive() or time.monotonic() > deadline:  # failed to start
                    raise RuntimeError("the pipeline's stages never registered")
            time.sleep(SETTLE)
            watched = descendants()
            before, started = cpu_of(watched), time.monotonic()
            time.sleep(seconds)
            after, ended = cpu_of(watched), time.monotonic()
        finally:
            supervisor.request_stop()
            thread.join()
            if "error" in outcome:
                raise outcome["error"]
    pids = [stage.pid for stage in outcome["report"].stages.values()]
    if len(pids) != 5 or not all(pid in before and pid in after for pid in pids):
        raise RuntimeError("idle: the five stage processes did not run throughout")
    used = sum(after[pid] - before[pid] for pid in pids)
    return 100.0 * used / (ended - started)


# ---------------------------------------------------------------- the peers
def run_peer(transport: str, orders: int, fsync: str, rate: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="tp-bench-") as tmp:
        report = pipeline_peers.run(transport, run_config(Path(tmp), orders, fsync, rate))
    check_answers(transport, report.commands, report.answered, report.gaps)
    latency = HdrHistogram.decode(report.latency_hdr)
    return figures(report.commands, report.seconds, latency, report.cpu_seconds)


def run_inprocess(orders: int, fsync: str, rate: float) -> dict:
    """Ingest's input, then per batch: journal (durable under ``fsync``), the Engine, the
    output stage's releaser. (The Engine validates again what ingest validated: it is
    also the replay path; the throttles are off.)"""
    with tempfile.TemporaryDirectory(prefix="tp-bench-") as tmp:
        config = run_config(Path(tmp), orders, fsync, rate)
        source = IngestInput(pipeline_peers.ingest_config(config), None)
        engine = Engine(config.engine)
        releaser = Releaser(None)  # type: ignore[arg-type]  # durable_seq is set here
        journal = JournalWriter(config.journal.directory, COMMAND_DTYPE, fsync=fsync)
        with journal:
            cpu, started = time.process_time(), time.perf_counter_ns()
            while True:
                try:
                    (batch,) = source.wait(None, pipeline_peers.POLL_TIMEOUT)
                except WaitTimeoutError:  # paced: nothing due yet
                    continue
                except EndOfStreamError:
                    break
                journal.append(batch)
                events = engine.process(batch)
                releaser.durable_seq = journal.durable_seq
                releaser.handle((events,))
            seconds = (time.perf_counter_ns() - started) / 1e9
            cpu = time.process_time() - cpu
    details = releaser.details()
    commands = source.stamper.last_seq
    check_answers("inprocess", commands, details["answered"], details["gaps"])
    return figures(commands, seconds, releaser.ack.histogram, cpu)


def case(wiring: str, mode: str, fsync: str, sizes: dict[str, int]) -> dict:
    """One run of ``wiring`` in ``mode``: its figures."""
    rate = RATE if mode == "latency" else 0.0
    orders = sizes[mode]
    if wiring == "tradepipe":
        return run_tradepipe(orders, fsync, rate)
    if wiring == "inprocess":
        return run_inprocess(orders, fsync, rate)
    return run_peer(wiring, orders, fsync, rate)


# ---------------------------------------------------------------- the whole run
def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    # quick: 2 runs (each tradepipe run also starts, replays and stops a supervisor: < 90 s)
    parser = harness.parser("pipeline", __doc__, runs=2, full_runs=3)
    args = harness.parse(parser, argv)
    # SIGTERM unwinds like Ctrl-C: every run's finally reaps its processes, removes its files
    signal.signal(signal.SIGTERM, _interrupted)
    sizes = {
        "throughput": harness.by_mode(args, smoke=5_000, quick=300_000, full=2_000_000),
        "latency": harness.by_mode(args, smoke=2_000, quick=100_000, full=500_000),
    }
    idle_seconds = harness.by_mode(args, smoke=0.5, quick=1.5, full=5.0)
    if args.mode != "smoke":
        # numba's cache brought up to date if the kernels changed (a compile is not a run)
        harness.progress("warming up (numba's cache)")
        warm = {"throughput": 20_000, "latency": 2_000}
        for wiring in ("inprocess", "zmq", "tradepipe"):  # tradepipe: its stages' own kernels
            case(wiring, "throughput", "never", warm)

    cases = {
        (wiring, mode, fsync): partial(case, wiring, mode, fsync, sizes)
        for mode, fsync in CASES
        for wiring in WIRINGS
    }

    def logged(key: tuple[str, str, str], run: Any) -> dict:
        started = time.monotonic()
        result = run()
        harness.progress(
            f"{' '.join(key)}: {result['orders_per_s'] / 1e6:.3f} M/s, p50 "
            f"{result['p50_us']:.0f} µs ({time.monotonic() - started:.1f} s)"
        )
        return result

    samples = harness.round_robin(
        {key: partial(logged, key, run) for key, run in cases.items()}, args.runs
    )
    harness.progress("idle CPU of a pipeline offered 10 commands/s")
    idle_runs = harness.by_mode(args, smoke=1, quick=1, full=args.runs)  # quick: < 90 s
    idle = harness.median(measure_idle(idle_seconds) for _ in range(idle_runs))

    results = []
    for (wiring, mode, fsync), runs in samples.items():
        row = {"wiring": wiring, "mode": mode, "fsync": fsync}
        row.update(harness.median_fields(runs, FIELDS))
        results.append(row)
    by_key = {(r["wiring"], r["mode"], r["fsync"]): r for r in results}
    ratios: dict[str, dict[str, float | None]] = {}
    notes = []
    for mode, fsync in CASES:
        ours = by_key[("tradepipe", mode, fsync)]
        key = f"{mode}_{fsync}"
        if mode == "throughput":
            ratios[key] = {
                f"x_{peer}": ratio(ours["orders_per_s"], by_key[(peer, mode, fsync)]["orders_per_s"])
                for peer in ("inprocess", "zmq", "mp_queue")
            }  # fmt: skip
            text = ", ".join(f"{v:.2f}x {k[2:]}" for k, v in ratios[key].items() if v)
            notes.append(f"throughput, fsync {fsync}: tradepipe orders/s = {text}")
        else:
            ratios[key] = {
                f"p99_over_{peer}": ratio(ours["p99_us"], by_key[(peer, mode, fsync)]["p99_us"])
                for peer in ("inprocess", "zmq", "mp_queue")
            }  # fmt: skip
            text = ", ".join(f"{v:.2f}x {k[9:]}'s" for k, v in ratios[key].items() if v)
            notes.append(f"latency, fsync {fsync}: tradepipe p99 = {text}")
    if RESTARTS:
        notes.append(
            f"warning: {len(RESTARTS)} tradepipe run(s) restarted a stage, their figures "
            f"include it; the first: {RESTARTS[0]}"
        )
    notes += [
        f"idle: a tradepipe pipeline offered {IDLE_RATE:g} commands/s uses {idle:.1f} % of a "
        "core (its five stage processes)",
        "targets: tradepipe >= 0.6 M orders/s (fsync batch), >= 1.3x inprocess, >= 2x zmq; "
        "latency at 100 k/s, fsync never: p50 <= 50 µs, p99 <= 1000 µs",
    ]

    def cell(value: float | None, scale: float = 1.0, digits: int = 0) -> str:
        return "-" if value is None else f"{value / scale:,.{digits}f}"

    rows = [
        (
            r["wiring"], r["mode"], r["fsync"], cell(r["orders_per_s"], 1e6, 3),
            cell(r["p50_us"]), cell(r["p99_us"]), cell(r["p999_us"]), cell(r["cpu_pct"]),
        )
        for r in results
    ]  # fmt: skip

    harness.print_table(
        f"the pipeline end to end: throughput {sizes['throughput']:,} orders, latency "
        f"{sizes['latency']:,} orders at {RATE / 1e3:.0f} k/s; batches of {BATCH}, "
        f"median of {args.runs} run{'s' if args.runs != 1 else ''}",
        [
            harness.Column("wiring", "<"),
            harness.Column("mode", "<"),
            harness.Column("fsync", "<"),
            "M orders/s",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "CPU %",
        ],
        rows,
        notes,
    )
    return harness.finish(args, {"results": results, "ratios": ratios, "idle_cpu_pct": idle})


if __name__ == "__main__":
    sys.exit(main())
