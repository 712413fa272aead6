"""``tradepipe run --fresh``: the CLI's statuses for what the run directories refuse, the
same for both runs (the refusals come before either starts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.exitcodes import ExitStatus
from stages.persistence.journal_lock import lock_journal
from stages.persistence.journal_segments import list_segments


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(
        f'[journal]\ndirectory = "{tmp_path / "journal"}"\n'
        f'[snapshots]\ndirectory = "{tmp_path / "snapshots"}"\n'
        f'[pipeline]\nrun_dir = "{tmp_path / "rd"}"\n{body}'
    )
    return path


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", [[], ["--inprocess"]], ids=["pipeline", "inprocess"])
def test_fresh_refuses_a_live_journal_and_foreign_files(tmp_path, capsys, mode):
    config = write_config(tmp_path, "[load]\norders = 1000\n")
    assert main(["run", str(config), "--inprocess"]) == 0  # a previous run, with snapshots
    capsys.readouterr()
    lock = lock_journal(tmp_path / "journal", "a live run (this test)")
    try:
        assert main(["run", str(config), "--fresh", *mode]) == ExitStatus.REFUSED
    finally:
        os.close(lock)
    assert "is open for writing by" in capsys.readouterr().err
    assert list_segments(tmp_path / "journal")  # nothing was removed

    (tmp_path / "snapshots" / "notes.txt").write_text("mine\n")
    assert main(["run", str(config), "--fresh", *mode]) == ExitStatus.USAGE
    assert "notes.txt" in capsys.readouterr().err
    assert list_segments(tmp_path / "journal")
    assert (tmp_path / "snapshots" / "notes.txt").exists()


@pytest.mark.timeout(60)
def test_a_bad_run_dir_is_refused_before_fresh_deletes_anything(tmp_path, capsys):
    config = write_config(tmp_path, "[load]\norders = 1000\n")
    assert main(["run", str(config), "--inprocess"]) == 0
    segments = list_segments(tmp_path / "journal")
    capsys.readouterr()
    (tmp_path / "rd").write_text("")  # the run directory is a file
    assert main(["run", str(config), "--fresh"]) == ExitStatus.USAGE
    assert "rd is not a directory" in capsys.readouterr().err
    assert list_segments(tmp_path / "journal") == segments
