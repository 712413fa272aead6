"""``tradepipe replay --journal``: the state hash of the run that wrote the journal, or an error.

Never the embedded default engine in silence: replay starts from a snapshot, the initial
state the run kept beside its journal, or ``--config``.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from pipeline.cli import main
from pipeline.config import JournalConfig, LoadConfig, RunConfig, SnapshotConfig, default_engine
from pipeline.inprocess import RunReport, run_in_process
from stages.persistence.journal_durability import DurableMark
from stages.persistence.journal_segments import list_segments


def as_a_crash_leaves_it(journal: Path) -> None:
    """The durable mark as the writer left it at its last rotation, not at a clean close
    (after which a torn tail would be a loss of acknowledged records, not a torn tail)."""
    newest = int(list_segments(journal)[-1].name[:20])
    DurableMark(newest - 1, newest, "batch").write(journal, sync=False)


def small_run(tmp_path: Path) -> tuple[Path, Path, RunReport]:
    """A run that is not on the embedded defaults (one instrument), keep=1 snapshots."""
    defaults = default_engine()
    one_instrument = msgspec.structs.replace(
        defaults.risk, instruments=defaults.risk.instruments[:1]
    )
    engine = msgspec.structs.replace(defaults, risk=one_instrument)
    journal, snapshots = tmp_path / "journal", tmp_path / "snapshots"
    config = RunConfig(
        engine=engine,
        load=LoadConfig(orders=3000, batch=200, accounts=20),
        journal=JournalConfig(directory=str(journal), segment_bytes=1 << 16),
        snapshots=SnapshotConfig(directory=str(snapshots), every_records=1000, keep=1),
    )
    report = run_in_process(config)
    assert report.recovered
    return journal, snapshots, report


def replay(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["replay", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_replay_without_snapshots_uses_the_initial_state_kept_with_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, snapshots, report = small_run(tmp_path)
    status, out, err = replay(["--journal", str(journal)], capsys)
    assert (status, err) == (0, "")
    assert "from the initial state kept with the journal" in out
    assert f"state hash {report.state_hash}" in out
    status, out, _ = replay(["--journal", str(journal), "--snapshots", str(snapshots)], capsys)
    assert status == 0 and "from snapshot @ seq 3060 up to seq 3060" in out  # 60 fundings first
    assert f"state hash {report.state_hash}" in out


def test_replay_to_a_seq_before_the_first_snapshot_starts_from_snapshot_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, snapshots, _ = small_run(tmp_path)
    argv = ["--journal", str(journal), "--snapshots", str(snapshots), "--to-seq", "100"]
    status, out, _ = replay(argv, capsys)
    assert status == 0
    assert "from snapshot @ seq 0 up to seq 100" in out


def test_replay_without_any_known_configuration_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, snapshots, _ = small_run(tmp_path)
    (journal / "initial-state.tps").unlink()
    for path in snapshots.iterdir():
        path.unlink()
    status, out, err = replay(["--journal", str(journal), "--snapshots", str(snapshots)], capsys)
    assert status == 2 and out == ""
    assert "--config" in err and len(err.splitlines()) == 1


def test_a_torn_tail_is_one_warning_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, _, _ = small_run(tmp_path)
    last = list_segments(journal)[-1]
    as_a_crash_leaves_it(journal)
    os.truncate(last, last.stat().st_size - 3)
    status, out, err = replay(["--journal", str(journal)], capsys)
    assert status == 0
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: torn tail in journal segment")
    assert "Warning:" not in err and ".py:" not in err  # no raw Python warning
    assert "torn" not in out
