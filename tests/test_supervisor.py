"""The supervisor runs the five stage processes to the end of a seeded load and checks their
state against an Engine replay of the journal; a stage killed mid-run ends the run with one
clear error, every process reaped, nothing left in /dev/shm or the run directory.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import msgspec
import psutil
import pytest

from pipeline.config import (
    JournalConfig,
    LoadConfig,
    PipelineConfig,
    RunConfig,
    SnapshotConfig,
    default_engine,
)
from pipeline.supervisor import StageFailure, Supervisor
from pipeline.topology import STAGES
from tests.supervised import running, segments


def _config(tmp_path: Path, orders: int, batch: int = 256) -> RunConfig:
    engine = msgspec.structs.replace(default_engine(), settle_every=1024)
    return RunConfig(
        engine=engine,
        load=LoadConfig(orders=orders, batch=batch, accounts=40, seed=11),
        journal=JournalConfig(directory=str(tmp_path / "journal"), fsync="batch"),
        snapshots=SnapshotConfig(directory=str(tmp_path / "snapshots"), every_records=50_000),
        pipeline=PipelineConfig(run_dir=str(tmp_path / "run")),
    )


def _assert_clean(tmp_path: Path, tag: str) -> None:
    assert segments(tag) == []
    run_dir = tmp_path / "run"
    assert list(run_dir.iterdir()) == []
    assert run_dir.stat().st_mode & 0o777 == 0o700


@pytest.mark.timeout(300)
def test_a_seeded_run_answers_every_command_once_and_matches_the_engine(tmp_path):
    config = _config(tmp_path, orders=3000)
    report = Supervisor(config, tag="sup-ok").run()
    funding = config.load.accounts * len(config.engine.risk.assets)
    last_seq = config.load.orders + funding
    assert report.commands == report.answered == report.durable_seq == last_seq
    assert report.gaps == 0
    assert not report.stopped
    assert report.recovered, report.checks
    assert set(report.stages) == set(STAGES)
    for stage in report.stages.values():
        assert stage.stopped_by == "end_of_stream"
        assert stage.pid > 0 and stage.pid != os.getpid()
        assert stage.batches > 0
    assert report.stages["persistence"].records == last_seq
    assert report.stages["matching"].records == last_seq
    assert sum(count for label, count in report.outcomes.rows() if ":" in label) > 0
    _assert_clean(tmp_path, "sup-ok")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_stage_killed_mid_run_ends_with_one_clear_error_and_nothing_left(tmp_path):
    config = _config(tmp_path, orders=3_000_000, batch=512)
    supervisor = Supervisor(config, tag="sup-kill", max_restarts=0)
    with running(supervisor) as outcome:
        os.kill(supervisor.pids["matching"], signal.SIGKILL)
    error = outcome.get("error")
    assert isinstance(error, StageFailure), error
    message = str(error)
    assert "\n" not in message
    assert "stage matching died (killed by SIGKILL" in message
    assert "giving up" in message
    assert "holds records up to seq" in message or "holds no records" in message
    for pid in supervisor.pids.values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    _assert_clean(tmp_path, "sup-kill")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_stop_drains_the_pipeline_and_the_state_still_matches(tmp_path):
    config = _config(tmp_path, orders=3_000_000, batch=512)
    supervisor = Supervisor(config, tag="sup-stop")
    with running(supervisor) as outcome:
        supervisor.request_stop()
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert report.stopped
    assert report.stages["ingest"].stopped_by == "stop"
    assert report.commands < config.load.orders
    assert report.answered == report.durable_seq == report.commands
    assert report.recovered
    _assert_clean(tmp_path, "sup-stop")


@pytest.mark.timeout(300)
def test_run_pipeline_prints_the_summary_and_the_stages(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text(
        '[load]\norders = 2000\naccounts = 40\n[journal]\ndirectory = "journal"\n'
        '[pipeline]\nrun_dir = "run"\n'
    )
    assert main(["run", "run.toml", "--pipeline"]) == 0
    out = capsys.readouterr().out
    assert "run summary" in out and "replay (journal from the start (audit))" in out
    assert "match" in out and "DIFFERS" not in out
    for column in ("stage", "pid", "core", "records/s", *STAGES):
        assert column in out
    _assert_clean(tmp_path, f"tp{os.getpid()}")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_status_and_stop_verbs_against_a_running_pipeline(tmp_path, capsys):
    import json

    from pipeline.cli import main

    config = _config(tmp_path, orders=3_000_000, batch=512)
    run_dir = str(tmp_path / "run")
    supervisor = Supervisor(config, tag="sup-verbs")
    with running(supervisor, stop_on_exit=True) as outcome:
        capsys.readouterr()
        assert main(["status", "--run-dir", run_dir, "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["kind"] == "pipeline_status"
        assert status["supervisor_pid"] == os.getpid()
        assert {stage["stage"] for stage in status["stages"]} == set(STAGES)
        pids = {stage["stage"]: stage["pid"] for stage in status["stages"]}
        assert pids == supervisor.pids
        assert main(["status", "--run-dir", run_dir]) == 0
        assert "ingest" in capsys.readouterr().out
        assert main(["stop", "--run-dir", run_dir]) == 0
        assert capsys.readouterr().out.rstrip().endswith("stopped")
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert report.stopped and report.recovered
    assert report.answered == report.durable_seq == report.commands
    _assert_clean(tmp_path, "sup-verbs")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("verb", ["status", "stop"])
def test_a_verb_with_no_pipeline_running_says_so(tmp_path, capsys, verb):
    from pipeline.cli import main

    assert main([verb, "--run-dir", str(tmp_path / "run")]) == 1
    assert "no pipeline running" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_relative_paths_mean_the_working_directory_of_each_run(tmp_path, monkeypatch):
    """Stages fork from a server started once, in whatever directory the first run had
    (multiprocessing moves each child to its parent's directory at start): each run's
    relative journal must still land in its own working directory."""
    for name in ("first", "second"):
        here = tmp_path / name
        here.mkdir()
        monkeypatch.chdir(here)
        config = RunConfig(
            engine=default_engine(),
            load=LoadConfig(orders=500, batch=128, accounts=20, seed=3),
            journal=JournalConfig(directory="journal"),
            snapshots=SnapshotConfig(directory="snapshots"),
            pipeline=PipelineConfig(run_dir="run"),
        )
        report = Supervisor(config, tag=f"sup-cwd-{name}").run()
        assert report.recovered, report.checks
        assert any((here / "journal").glob("*.tpj")), f"no journal in {here}"
