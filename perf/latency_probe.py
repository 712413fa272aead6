"""Latency, idle CPU and throughput of the real pipeline (``pipeline.supervisor``), per stage.

Issue 12's targets, measured the way the issue states them:

* ``latency``: a paced load (``load.rate``, default 100 k commands/s) under fsync
  ``never``: ingest→ack p50 / p99 and every hop's (``ingest→risk``, ``ingest→durable``,
  ``ingest→match``, ``ingest→ack``), with each stage's batches, records per batch,
  busy µs per batch (the per-batch fixed cost that is the latency floor at light load)
  and CPU seconds;
* ``idle``: a pipeline with nothing to do (one command per 100 s offered): the CPU its
  five stage processes and the supervisor use over ``--idle-seconds``, in % of one core,
  sampled from ``/proc/<pid>/task/*/schedstat`` after the start-up has settled;
* ``throughput``: an unpaced load under fsync ``batch``: commands per second.

Every figure is the median of ``--runs`` runs (at least 3 for a figure to quote)::

    .venv/bin/python perf/latency_probe.py latency --runs 3
    .venv/bin/python perf/latency_probe.py idle --runs 3
    .venv/bin/python perf/latency_probe.py throughput --runs 3 --orders 1000000

It is a probe for tuning (one mode at a time, figures on stdout, ``--json`` to keep them),
not a benchmark with peers: ``bench_pipeline.py`` is that.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from pipeline.config import (
    JournalConfig,
    LoadConfig,
    PipelineConfig,
    RunConfig,
    SnapshotConfig,
    default_engine,
)
from pipeline.supervisor import PipelineReport, Supervisor

HOPS = ("ingest→risk", "ingest→durable", "ingest→match", "ingest→ack")
STAGE_NAMES = ("ingest", "persistence", "risk", "matching", "output")


def make_config(
    root: Path, *, orders: int, rate: float, fsync: str, batch: int, accounts: int
) -> RunConfig:
    """A run config like ``tests/test_supervisor.py``'s, everything under ``root``."""
    engine = msgspec.structs.replace(default_engine(), settle_every=1024)
    return RunConfig(
        engine=engine,
        load=LoadConfig(orders=orders, batch=batch, accounts=accounts, seed=11, rate=rate),
        journal=JournalConfig(directory=str(root / "journal"), fsync=fsync),
        snapshots=SnapshotConfig(directory=str(root / "snapshots")),
        pipeline=PipelineConfig(run_dir=str(root / "run")),
    )


def run_once(config: RunConfig) -> PipelineReport:
    return Supervisor(config, tag=f"probe{os.getpid()}").run()


def latency_figures(report: PipelineReport) -> dict[str, Any]:
    """p50 / p99 (µs) of every hop and each stage's per-batch figures."""
    figures: dict[str, Any] = {"seconds": report.seconds, "commands": report.commands}
    for hop in HOPS:
        histogram = report.hops.get(hop)
        if histogram is None or histogram.get_total_count() == 0:
            continue
        for pct in (50, 99):
            figures[f"{hop} p{pct} us"] = histogram.get_value_at_percentile(pct) / 1e3
    for name in STAGE_NAMES:
        stage = report.stages[name]
        batches = max(1, stage.batches)
        figures[f"{name} batches"] = stage.batches
        figures[f"{name} rec/batch"] = stage.records / batches
        figures[f"{name} busy us/batch"] = stage.busy_ns / batches / 1e3
        figures[f"{name} cpu s"] = stage.cpu_seconds
    return figures


def _cpu_ns(pid: int) -> int:
    """Time ``pid``'s threads have run on a CPU (ns, ``/proc/<pid>/schedstat``): exact,
    where ``/proc/<pid>/stat``'s clock ticks (10 ms) are too coarse for an idle stage."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total


def idle_figures(root: Path, seconds: float, settle: float) -> dict[str, Any]:
    """CPU % of one core each stage and the supervisor's process use while idle."""
    config = make_config(root, orders=10, rate=0.01, fsync="never", batch=256, accounts=1)
    supervisor = Supervisor(config, tag=f"probe{os.getpid()}")
    outcome: dict[str, Any] = {}

    def drive() -> None:
        try:
            outcome["report"] = supervisor.run()
        except BaseException as error:  # reported below
            outcome["error"] = error

    thread = threading.Thread(target=drive)
    thread.start()
    try:
        if not supervisor.ready.wait(120):
            raise RuntimeError("the stages never registered")
        time.sleep(settle)
        pids = dict(supervisor.pids)
        before = {name: _cpu_ns(pid) for name, pid in pids.items()}
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        began = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - began
        after = {name: _cpu_ns(pid) for name, pid in pids.items()}
        self_after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        supervisor.request_stop()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    figures: dict[str, Any] = {}
    for name in pids:
        figures[f"{name} cpu %"] = 100 * (after[name] - before[name]) / 1e9 / wall
    figures["stages cpu %"] = sum(figures[f"{name} cpu %"] for name in pids)
    own = (self_after.ru_utime + self_after.ru_stime) - (
        self_before.ru_utime + self_before.ru_stime
    )
    figures["supervisor cpu %"] = 100 * own / wall
    figures["total cpu %"] = figures["stages cpu %"] + figures["supervisor cpu %"]
    return figures


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [key for key in runs[0] if all(key in run for run in runs)]
    return {key: statistics.median(run[key] for run in runs) for key in keys}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("latency", "idle", "throughput"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orders", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=100_000.0)
    parser.add_argument("--fsync", default=None, help="default: never (latency), batch (else)")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--each", action="store_true", help="print every run, not only medians")
    args = parser.parse_args(argv)
    runs: list[dict[str, Any]] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="tp-probe-") as tmp:
            root = Path(tmp)
            if args.mode == "idle":
                figures = idle_figures(root, args.idle_seconds, args.settle)
            else:
                rate = args.rate if args.mode == "latency" else 0.0
                fsync = args.fsync or ("never" if args.mode == "latency" else "batch")
                config = make_config(
                    root,
                    orders=args.orders,
                    rate=rate,
                    fsync=fsync,
                    batch=args.batch,
                    accounts=args.accounts,
                )
                report = run_once(config)
                figures = latency_figures(report)
                figures["commands/s"] = report.commands / report.seconds
        runs.append(figures)
        if args.each:
            print(json.dumps({k: round(v, 2) for k, v in figures.items()}))
    result = medians(runs)
    width = max(map(len, result))
    print(f"{args.mode}: median of {len(runs)} runs")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value:,.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"mode": args.mode, "median": result, "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
