"""A stage killed under load: the supervisor restarts the pipeline from the last command
whose answers all left, and the run ends as if nothing happened: every command of the load
sequenced once, the state equal to an Engine replay of the journal, and every answer
released exactly once (the release log equals the Engine's answers for the journal).
"""

from __future__ import annotations

import os
import signal
import time
import warnings
from pathlib import Path

import msgspec
import numpy as np
import pytest

from pipeline import control_messages as m
from pipeline.config import (
    JournalConfig,
    LoadConfig,
    PipelineConfig,
    RunConfig,
    SnapshotConfig,
    default_engine,
)
from pipeline.control import PipelineClient
from pipeline.supervisor import StageFailure, Supervisor
from pipeline.topology import STAGES
from stages.engine import Engine
from stages.persistence.journal_reader import JournalReader
from stages.persistence.recovery import replay_journal
from stages.records import EVENT_DTYPE, CommandOrigin, CommandType
from tests.supervised import running, segments

PROGRESS_TIMEOUT = 120  # seconds for the load to get going
STAMPS = ("ts_ingest", "dt_match")  # latencies, not answers


def _config(tmp_path: Path, orders: int) -> RunConfig:
    engine = msgspec.structs.replace(default_engine(), settle_every=700)
    return RunConfig(
        engine=engine,
        load=LoadConfig(orders=orders, batch=512, accounts=40, seed=5),
        journal=JournalConfig(directory=str(tmp_path / "journal"), fsync="batch"),
        snapshots=SnapshotConfig(directory=str(tmp_path / "snapshots"), every_records=50_000),
        pipeline=PipelineConfig(run_dir=str(tmp_path / "run")),
    )


def _answered(run_dir: Path) -> int:
    """How many commands output has answered, asked over the control plane (0: not yet)."""
    with PipelineClient(run_dir) as client:
        reply = client.request(m.Status(), 5.0)
    for stage in getattr(reply, "stages", []):
        if stage.stage == "output":
            return stage.counters.get("answered", 0)
    return 0


def _kill_when_answering(supervisor: Supervisor, run_dir: Path, stage: str, after: int) -> None:
    """SIGKILL ``stage`` once output has answered ``after`` commands (asked, not slept on)."""
    deadline = time.monotonic() + PROGRESS_TIMEOUT
    while _answered(run_dir) < after:
        assert time.monotonic() < deadline, "the load never got going"
    os.kill(supervisor.pids[stage], signal.SIGKILL)


def _engine_answers(config: RunConfig) -> np.ndarray:
    answers: list[np.ndarray] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        replay_journal(
            config.journal.directory,
            None,
            lambda: Engine(config.engine),
            on_events=lambda events: answers.append(events.copy()),
        )
    return np.concatenate(answers)


def _without_stamps(events: np.ndarray) -> np.ndarray:
    events = events.copy()
    for stamp in STAMPS:
        events[stamp] = 0
    return events


def _check_restarted_run(tmp_path: Path, config: RunConfig, report, log: Path, tag: str):
    funding = config.load.accounts * len(config.engine.risk.assets)
    total = config.load.orders + funding
    assert len(report.restarts) == 1, report.restarts
    assert report.commands == report.durable_seq == total  # nothing lost, nothing twice
    assert report.answered == total
    assert report.gaps == 0
    assert report.recovered, report.checks  # state = Engine replay of the journal
    released = np.fromfile(log, dtype=EVENT_DTYPE)
    expected = _engine_answers(config)
    assert len(released) == len(expected)
    assert np.array_equal(_without_stamps(released), _without_stamps(expected))
    assert segments(tag) == []
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []


@pytest.mark.timeout(600)
def test_output_killed_under_load_restarts_and_releases_every_answer_once(tmp_path):
    _killed_under_load(tmp_path, "output", "rs-output")


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("stage", [s for s in STAGES if s != "output"])
def test_each_stage_killed_under_load_restarts_exactly_once(tmp_path, stage):
    _killed_under_load(tmp_path, stage, f"rs-{stage}")


def _killed_under_load(tmp_path: Path, stage: str, tag: str) -> None:
    config = _config(tmp_path, orders=400_000)
    log = tmp_path / "released.events"
    supervisor = Supervisor(config, tag=tag, release_log=log)
    with running(supervisor) as outcome:
        _kill_when_answering(supervisor, tmp_path / "run", stage, after=30_000)
    assert "error" not in outcome, outcome.get("error")
    _check_restarted_run(tmp_path, config, outcome["report"], log, tag)
    note = outcome["report"].restarts[0]
    assert f"stage {stage} died (killed by SIGKILL" in note


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_too_many_failures_in_the_window_end_the_run_with_one_clear_error(tmp_path):
    config = _config(tmp_path, orders=2_000_000)
    supervisor = Supervisor(config, tag="rs-give-up", max_restarts=0)
    with running(supervisor) as outcome:
        _kill_when_answering(supervisor, tmp_path / "run", "matching", after=1)
    error = outcome.get("error")
    assert isinstance(error, StageFailure), error
    message = str(error)
    assert "\n" not in message
    assert "stage matching died (killed by SIGKILL" in message
    assert "giving up" in message
    assert segments("rs-give-up") == []


@pytest.mark.timeout(600)
def test_admin_commands_are_sequenced_and_survive_a_restart(tmp_path):
    """A halt and a deposit sent while the load runs get their seq, are journaled with origin
    CONTROL, and a restart after them neither repeats nor drops a source command; a
    snapshot asked for is saved (and the restart may start from it)."""
    config = _config(tmp_path, orders=600_000)
    log = tmp_path / "released.events"
    supervisor = Supervisor(config, tag="rs-admin", release_log=log)
    run_dir = tmp_path / "run"
    symbol = config.engine.risk.instruments[0].symbol
    asset = config.engine.risk.assets[0].asset
    with running(supervisor) as outcome:
        deadline = time.monotonic() + PROGRESS_TIMEOUT
        while _answered(run_dir) < 20_000:
            assert time.monotonic() < deadline, "the load never got going"
        with PipelineClient(run_dir) as client:
            halted = client.request(m.Halt(symbol), 10.0)
            deposited = client.request(m.Deposit(account=3, asset=asset, amount=5), 10.0)
            snapshot = client.request(m.Snapshot(), 60.0)
        assert isinstance(snapshot, m.Ack), snapshot
        saved = Path(snapshot.detail.split(" saved as ")[1])  # checked now: keep prunes
        assert saved.is_file() and saved.parent == tmp_path / "snapshots"
        _kill_when_answering(supervisor, run_dir, "risk", after=60_000)
    assert isinstance(halted, m.Ack) and "halt sequenced as seq" in halted.detail, halted
    assert isinstance(deposited, m.Ack) and "deposit sequenced as seq" in deposited.detail
    assert "snapshot of the state after seq" in snapshot.detail
    report = outcome["report"]
    funding = config.load.accounts * len(config.engine.risk.assets)
    assert report.commands == config.load.orders + funding + 2  # every source command once
    seqs = [
        int(reply.detail.split("seq ")[1].split(":")[0].replace(",", ""))
        for reply in (halted, deposited)
    ]
    with JournalReader(config.journal.directory) as reader:
        journal = np.concatenate(list(reader.batches()))
    control = journal[journal["origin"] == CommandOrigin.CONTROL]
    assert control["seq"].tolist() == seqs
    assert control["kind"].tolist() == [CommandType.HALT, CommandType.DEPOSIT]
    assert report.recovered, report.checks
    assert report.snapshots >= 2
    released = np.fromfile(log, dtype=EVENT_DTYPE)
    assert np.array_equal(_without_stamps(released), _without_stamps(_engine_answers(config)))
