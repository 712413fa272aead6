"""A run's directories: ``--fresh`` removes only tradepipe's files and never a live run's.

Also: a second run on the same directories gets one clear refusal, a failed start leaves
nothing behind, ``~`` is expanded, and a full disk while snapshotting costs the snapshot,
not the run.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.config import JournalConfig, LoadConfig, RunConfig, SnapshotConfig
from pipeline.inprocess import RunInterrupted, prepare_directories, run_in_process
from stages.persistence.journal_errors import JournalBusyError
from stages.persistence.journal_verify import verify_journal
from stages.persistence.journal_writer import JournalWriter
from stages.persistence.run_files import RunDirectoryError, remove_run_files
from stages.persistence.snapshots import SnapshotFailedWarning, SnapshotWriteError
from stages.records import COMMAND_DTYPE
from tests.builders import commands

ROOT = Path(__file__).resolve().parents[1]


def config_for(journal: Path | str, snapshots: Path | str, orders: int = 2000) -> RunConfig:
    return RunConfig(
        load=LoadConfig(orders=orders, batch=250, accounts=20),
        journal=JournalConfig(directory=str(journal), segment_bytes=1 << 16),
        snapshots=SnapshotConfig(directory=str(snapshots), every_records=500, keep=2),
    )


def previous_run(tmp_path: Path) -> tuple[Path, Path]:
    """Directories as a finished run leaves them (segments, lock, mark, snapshots, a temp)."""
    journal, snapshots = tmp_path / "journal", tmp_path / "snapshots"
    run_in_process(config_for(journal, snapshots))
    (snapshots / f".snapshot-{9:020d}.tps.99999999-1.tmp").write_bytes(b"cut off")
    return journal, snapshots


def test_fresh_removes_only_tradepipe_files_and_keeps_the_directories(tmp_path: Path) -> None:
    journal, snapshots = previous_run(tmp_path)
    names = {p.name for p in journal.iterdir()}
    assert {"writer.lock", "durable.mark", "initial-state.tps"} <= names
    assert len(list(snapshots.iterdir())) >= 3
    removed = prepare_directories(config_for(journal, snapshots), fresh=True)
    assert len(removed) >= 6
    assert [p.name for p in journal.iterdir()] == ["writer.lock"]  # held while clearing
    assert list(snapshots.iterdir()) == []
    assert journal.is_dir() and snapshots.is_dir()
    prepare_directories(config_for(journal, snapshots), fresh=False)  # nothing left to mix


def test_fresh_removes_the_gateways_order_id_log_too(tmp_path: Path) -> None:
    """A gateway run leaves its order-id log (and maybe a compaction's temp) beside the
    journal: tradepipe's files, so --fresh removes them like the segments."""
    journal, snapshots = previous_run(tmp_path)
    (journal / "gateway-orders.tpg").write_bytes(b"log")
    (journal / ".gateway-orders.tpg.4242.tmp").write_bytes(b"cut off")
    prepare_directories(config_for(journal, snapshots), fresh=True)
    assert [p.name for p in journal.iterdir()] == ["writer.lock"]


@pytest.mark.parametrize("where", ["journal", "snapshots", "cwd"])
def test_fresh_refuses_a_directory_holding_other_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    journal, snapshots = previous_run(tmp_path / "run")
    if where == "cwd":  # directory = "." in a working directory full of someone's work
        monkeypatch.chdir(tmp_path)
        journal = Path(".")
        (tmp_path / "thesis.tex").write_text("years of work")
    else:
        target = journal if where == "journal" else snapshots
        (target / "notes.txt").write_text("mine")
        (target / "data").mkdir()
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(RunDirectoryError, match="not tradepipe's") as info:
        prepare_directories(config_for(journal, snapshots), fresh=True)
    assert not info.value.busy
    message = str(info.value)
    assert ("thesis.tex" in message) if where == "cwd" else ("data/" in message)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing removed


def test_fresh_names_a_few_foreign_entries_and_counts_the_rest(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    journal.mkdir()
    for i in range(8):
        (journal / f"file{i}").write_text("x")
    with pytest.raises(RunDirectoryError, match=r"file0, .*file4 and 3 more"):
        remove_run_files(journal, tmp_path / "s")


def test_fresh_refuses_a_symbolic_link_and_a_file(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(RunDirectoryError, match=r"link is a symbolic link \(to .*real\)"):
        remove_run_files(tmp_path / "link", tmp_path / "s")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirectoryError, match="afile is a file, not a directory"):
        remove_run_files(tmp_path / "j", tmp_path / "afile")
    assert (tmp_path / "afile").read_text() == "x"


def test_without_fresh_a_previous_run_is_refused_with_the_ways_on(tmp_path: Path) -> None:
    journal, snapshots = previous_run(tmp_path)
    with pytest.raises(RunDirectoryError, match="already holds a run; pass --fresh") as info:
        prepare_directories(config_for(journal, snapshots), fresh=False)
    message = str(info.value)
    assert info.value.previous_run and not info.value.busy
    assert f"tradepipe journal verify {journal}" in message
    assert f"tradepipe replay --journal {journal} --snapshots {snapshots}" in message
    assert "move" in message


def test_the_ways_on_name_no_snapshot_directory_a_run_did_not_write(tmp_path: Path) -> None:
    # a pipeline run (tradepipe run --pipeline) keeps its initial state beside the journal
    # and writes no snapshots: replay --snapshots of a missing directory would be refused
    journal, snapshots = previous_run(tmp_path)
    for path in snapshots.iterdir():
        path.unlink()
    with pytest.raises(RunDirectoryError, match="already holds a run") as info:
        prepare_directories(config_for(journal, snapshots), fresh=False)
    assert f"tradepipe replay --journal {journal};" in str(info.value)


WRITER = """
import sys
from stages.persistence.journal_errors import JournalBusyError
from stages.persistence.journal_verify import verify_journal
from stages.persistence.journal_writer import JournalWriter
from stages.records import COMMAND_DTYPE
writer = JournalWriter(sys.argv[1], COMMAND_DTYPE)
print("ready", flush=True)
sys.stdin.read()  # hold the journal until the test closes our stdin
"""


@contextmanager
def live_writer(directory: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process holding ``directory``'s journal open; always stopped and reaped."""
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        yield child
    finally:
        child.kill()
        child.communicate()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fresh", [True, False])
def test_a_live_run_is_never_touched(tmp_path: Path, fresh: bool) -> None:
    journal, snapshots = tmp_path / "journal", tmp_path / "snapshots"
    with live_writer(journal) as child:
        before = sorted(p.name for p in journal.iterdir())
        with pytest.raises(
            RunDirectoryError, match=f"is open for writing by pid {child.pid}"
        ) as info:
            prepare_directories(config_for(journal, snapshots), fresh=fresh)
        assert info.value.busy
        assert sorted(p.name for p in journal.iterdir()) == before


@pytest.mark.timeout(60)
def test_a_second_run_started_at_once_gets_one_clear_error(tmp_path: Path) -> None:
    # both passed the directory check before either opened its journal: the lock decides
    journal, snapshots = tmp_path / "journal", tmp_path / "snapshots"
    prepare_directories(config_for(journal, snapshots), fresh=False)
    with (
        live_writer(journal) as child,
        pytest.raises(JournalBusyError, match=f"open for writing by pid {child.pid}") as info,
    ):
        run_in_process(config_for(journal, snapshots))
    assert info.value.busy
    assert not snapshots.exists()  # the second run wrote nothing


def test_a_failed_start_leaves_nothing_behind(tmp_path: Path) -> None:
    journal, snapshots = tmp_path / "journal", tmp_path / "snapshots"
    snapshots.write_text("a file in the way")
    with pytest.raises(SnapshotWriteError, match="snapshots is a file, not a directory"):
        run_in_process(config_for(journal, snapshots))
    assert [p.name for p in journal.iterdir()] == ["writer.lock"]
    snapshots.unlink()
    prepare_directories(config_for(journal, snapshots), fresh=False)  # not "holds a run"
    assert run_in_process(config_for(journal, snapshots)).recovered


def test_a_tilde_is_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    config = config_for("~/run/journal", "~/run/snapshots", orders=500)
    prepare_directories(config, fresh=False)
    assert run_in_process(config).recovered
    assert (tmp_path / "home" / "run" / "journal").is_dir()
    assert not (tmp_path / "~").exists()
    assert len(prepare_directories(config, fresh=True)) > 0


def test_a_full_disk_while_snapshotting_costs_the_snapshot_not_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write

    def write(fd: int, data: bytes) -> int:  # ENOSPC for periodic snapshots only
        name = os.readlink(f"/proc/self/fd/{fd}")
        if ".snapshot-" in name and f".snapshot-{0:020d}" not in name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    journal, snapshots = tmp_path / "journal", tmp_path / "snapshots"
    with pytest.warns(SnapshotFailedWarning, match="not saved, the run goes on"):
        report = run_in_process(config_for(journal, snapshots))
    assert report.recovered and report.commands == 2000
    assert len(report.snapshot_failures) == 2000 // 500
    assert "No space left on device" in report.snapshot_failures[0]
    assert [p.name for p in snapshots.iterdir()] == [f"snapshot-{0:020d}.tps"]  # no temp left


def test_the_lock_file_records_the_holder_pid(tmp_path: Path) -> None:
    with JournalWriter(tmp_path, COMMAND_DTYPE) as writer:
        writer.append(commands(1, 2))
        assert (tmp_path / "writer.lock").read_text() == f"{os.getpid()}\n"


def test_ctrl_c_during_a_run_says_how_far_the_journal_is_durable(tmp_path: Path) -> None:
    journal, snapshots = tmp_path / "journal", tmp_path / "snapshots"

    def interrupt(done: int, total: int) -> None:
        if done >= 1000:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted) as info:
        run_in_process(config_for(journal, snapshots), progress=interrupt)
    assert isinstance(info.value, KeyboardInterrupt)  # still an interrupt for the CLI
    report = verify_journal(journal)
    assert info.value.durable_seq == report.last_seq >= 1000
    assert f"durable up to seq {report.last_seq}" in str(info.value)
    assert report.missing == [] and report.torn == []
