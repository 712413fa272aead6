"""The five stage processes over real rings: every command answered once, nothing lost, and
the state of risk + matching equal to an in-process ``Engine`` replay of the journal the
persistence stage wrote, for several batch sizes and settlement windows.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
import traceback
from pathlib import Path

import msgspec
import numpy as np
import pytest

from pipeline.config import JournalConfig, LoadConfig, RunConfig, default_engine
from pipeline.topology import STAGES, Topology
from ringbuffer import Ring
from stages.engine import Engine
from stages.ingest.throttle import BucketConfig, ThrottleConfig
from stages.persistence.recovery import replay_journal
from stages.records import EVENT_DTYPE

RESULT_TIMEOUT = 150  # seconds for all five stages to report (spawned children compile)
KILL_NOTICE_TIMEOUT = 20  # seconds for the stages to stop after one of them was killed


def _stage_main(name, entry, kwargs, results) -> None:
    """A stage process: run the entry point, report its result or its error."""
    try:
        results.put((name, entry(**kwargs), None))
    except BaseException:  # reported to the test, which fails with it
        results.put((name, None, traceback.format_exc()))


def _config(
    tmp_path: Path,
    orders: int,
    batch: int,
    settle_every: int,
    fsync: str,
    throttle: ThrottleConfig | None = None,
) -> RunConfig:
    engine = msgspec.structs.replace(
        default_engine(), settle_every=settle_every, throttle=throttle or ThrottleConfig()
    )
    return RunConfig(
        engine=engine,
        load=LoadConfig(orders=orders, batch=batch, accounts=40, seed=11),
        journal=JournalConfig(directory=str(tmp_path / "journal"), fsync=fsync),
    )


def _spawn_stages(context, topology: Topology, results, started: dict) -> None:
    """Start one process per stage of ``topology`` (each reports on ``results``) into
    ``started`` by name, as each starts: the caller reaps them even if this raises half-way."""
    for call in topology.stage_calls().values():
        process = context.Process(
            target=_stage_main,
            args=(call.name, call.entry, call.kwargs, results),
            name=f"tradepipe-{call.name}",
            daemon=True,
        )
        process.start()
        started[call.name] = process


def run_pipeline(config: RunConfig, tag: str) -> dict:
    """Create the rings, spawn the five stages, collect their results, reap, unlink."""
    context = multiprocessing.get_context("spawn")
    topology = Topology(config, tag=tag)
    processes = {}
    try:
        topology.create()
        results = context.Queue()
        _spawn_stages(context, topology, results, processes)
        collected = {}
        errors = {}
        for _ in STAGES:
            try:
                name, result, error = results.get(timeout=RESULT_TIMEOUT)
            except queue.Empty:
                missing = sorted(set(STAGES) - set(collected) - set(errors))
                pytest.fail(f"stages {missing} did not finish; errors so far: {errors}")
            if error is not None:
                errors[name] = error
            else:
                collected[name] = result
        assert not errors, "\n".join(f"{name}:\n{text}" for name, text in errors.items())
        for process in processes.values():
            process.join(timeout=30)
            assert process.exitcode == 0, f"{process.name} exited with {process.exitcode}"
        return collected
    finally:
        for process in processes.values():
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        topology.unlink()


def _without_latency(raw: bytes) -> bytes:
    events = np.frombuffer(raw, dtype=EVENT_DTYPE).copy()
    events["dt_match"] = 0  # a latency, not state
    return events.tobytes()


def check_against_engine(config: RunConfig, results: dict) -> None:
    ingest, persistence = results["ingest"], results["persistence"]
    risk, matching, output = results["risk"], results["matching"], results["output"]
    last_seq = ingest.details["last_seq"]
    funding = config.load.accounts * len(config.engine.risk.assets)
    assert last_seq == config.load.orders + funding
    assert {r.stopped_by for r in results.values()} == {"end_of_stream"}
    # nothing lost: every command journaled, durable, checked, answered exactly once in order
    assert persistence.details["appended"] == persistence.details["durable_seq"] == last_seq
    assert risk.details["last_seq"] == last_seq
    assert risk.counters.records == matching.counters.records == last_seq
    assert output.details["answered"] == output.details["last_seq"] == last_seq
    assert output.details["gaps"] == output.details["out_of_order"] == 0
    assert output.details["events"] == matching.details["events"]
    assert output.details["durable_seq"] == last_seq

    replay = replay_journal(config.journal.directory, None, lambda: Engine(config.engine))
    engine = replay.state
    assert replay.last_seq == engine.last_seq == last_seq
    assert engine.throttle.state_hash() == ingest.details["throttle_hash"]
    assert engine.risk.state_hash() == risk.details["risk_hash"]
    assert engine.matching.state_hash() == matching.details["matching_hash"]
    unsettled = msgspec.msgpack.decode(engine.snapshot())["unsettled"]
    assert _without_latency(unsettled) == _without_latency(risk.details["unsettled"])
    assert engine.unsettled_events == len(risk.details["unsettled"]) // EVENT_DTYPE.itemsize


@pytest.mark.timeout(300)
def test_five_stages_equal_the_engine_replay_of_their_journal(tmp_path):
    config = _config(tmp_path, orders=3000, batch=256, settle_every=1024, fsync="batch")
    results = run_pipeline(config, tag="stp-a")
    check_against_engine(config, results)
    assert results["risk"].details["settled_windows"] >= 2
    assert results["output"].details["latency_p50_ns"] > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("orders", "batch", "settle_every", "fsync"),
    [
        (4000, 1, 1024, "never"),  # one command per batch: windows span many batches
        (4000, 1000, 7, "batch"),  # many windows per batch, cut mid-batch
        (5000, 333, 250, "interval"),  # the last window left open at the end
        (2000, 64, 2120, "never"),  # the last seq (2000 + 120 deposits) closes the window
    ],
)
def test_batch_sizes_and_settlement_windows(tmp_path, orders, batch, settle_every, fsync):
    config = _config(tmp_path, orders, batch, settle_every, fsync)
    results = run_pipeline(config, tag=f"stp-{batch}-{settle_every}")
    check_against_engine(config, results)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ingest_throttles_like_the_engine(tmp_path):
    """Throttles run at ingest on the stamped batch; the replay re-runs them on the journal
    (skipping what ingest refused) and must end in the same buckets and the same state."""
    throttle = ThrottleConfig(
        orders=BucketConfig(rate=200, burst=4),
        cancels=BucketConfig(rate=100, burst=2),
        symbol=BucketConfig(rate=5_000, burst=200),
    )
    config = _config(tmp_path, 3000, 128, 100, "never", throttle)
    results = run_pipeline(config, tag="stp-throttle")
    assert results["ingest"].details["refused"] > 0
    check_against_engine(config, results)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("batch", [1, 512])
def test_a_stage_killed_under_load_stops_the_others_and_leaves_a_replayable_journal(
    tmp_path, batch
):
    """kill -9 of matching mid-stream: no stage hangs (each notices its dead peer, or the
    end of its stream), and the journal persistence wrote is a clean, replayable prefix.
    (Restarting from it is the supervisor's job.)"""
    config = _config(tmp_path, 400_000, batch, 1024, "batch")
    context = multiprocessing.get_context("spawn")
    topology = Topology(config, tag=f"stp-kill-{batch}")
    processes = {}
    try:
        names = topology.create()
        results = context.Queue()
        _spawn_stages(context, topology, results, processes)
        events = Ring.attach(names["events"], EVENT_DTYPE)
        try:
            deadline = time.monotonic() + RESULT_TIMEOUT
            while events.status()["published"] < 20_000:  # matching is well under way
                assert time.monotonic() < deadline, "matching never got going"
                assert processes["matching"].is_alive()
                os.sched_yield()
        finally:
            events.close()
        os.kill(processes["matching"].pid, signal.SIGKILL)
        reports = {}
        for _ in range(len(STAGES) - 1):  # a dead peer is noticed within ~0.1 s
            name, _result, error = results.get(timeout=KILL_NOTICE_TIMEOUT)
            reports[name] = error
        for name in ("risk", "output"):
            assert reports[name] is not None and "PeerDeadError" in reports[name], name
        for process in processes.values():
            process.join(timeout=30)
            assert not process.is_alive(), f"{process.name} still running"
        assert processes["matching"].exitcode == -signal.SIGKILL
    finally:
        for process in processes.values():
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        topology.unlink()
    replay = replay_journal(config.journal.directory, None, lambda: Engine(config.engine))
    assert 0 < replay.last_seq == replay.replayed
