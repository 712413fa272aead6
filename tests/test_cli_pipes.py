"""``tradepipe ... | head``: a reader that goes away ends the command quietly with status 141.

Each test runs the real command line in a child process whose standard output is a pipe the
reader closes early: after reading a little of an output larger than any pipe buffer, or
before the command writes anything (then even output that fits ``stdout``'s buffer fails,
at the final flush). Never a traceback, never Python's "Exception ignored" noise, and no
summary line claiming every record was written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.exitcodes import ExitStatus
from stages.persistence.journal_writer import JournalWriter
from stages.records import COMMAND_DTYPE
from tests.builders import commands

RECORDS = 12_000  # > 1 MiB of dump or export output: more than a pipe can ever buffer


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pipes") / "journal"
    with JournalWriter(directory, COMMAND_DTYPE) as writer:
        writer.append(commands(1, RECORDS))
    return directory


def run_into_closing_reader(argv: list[str], read_first: int) -> tuple[int, str]:
    """Run ``tradepipe argv`` into a pipe whose reader reads ``read_first`` bytes, then
    closes it (0: closed before the command starts); return the status and stderr."""
    read_end, write_end = os.pipe()
    if read_first == 0:
        os.close(read_end)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as users run it
    child = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *argv],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    os.close(write_end)
    if read_first:
        with os.fdopen(read_end, "rb", buffering=0) as reader:
            got = b""
            while len(got) < read_first:
                chunk = reader.read(read_first - len(got))
                assert chunk, "the command ended before writing what the test reads"
                got += chunk
    _, err = child.communicate(timeout=120)
    return child.returncode, err


@pytest.mark.timeout(180)
@pytest.mark.parametrize("action", ["dump", "export"])
@pytest.mark.parametrize("read_first", [0, 4096])
def test_dump_and_export_into_a_reader_that_goes_away(
    journal: Path, action: str, read_first: int
) -> None:
    status, err = run_into_closing_reader(["journal", action, str(journal)], read_first)
    assert status == ExitStatus.PIPE_CLOSED, err
    assert err == "", err  # no traceback, no "Exception ignored", no "(N records)"


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "argv",
    [
        ["journal", "dump", "{journal}", "--limit", "3"],  # fits stdout's buffer: the flush fails
        ["journal", "verify", "{journal}"],
        ["run", "--help"],
        ["--help"],
    ],
    ids=["dump-small", "verify", "run-help", "help"],
)
def test_small_output_into_a_closed_pipe(journal: Path, argv: list[str]) -> None:
    argv = [arg.format(journal=journal) for arg in argv]
    status, err = run_into_closing_reader(argv, 0)
    assert status == ExitStatus.PIPE_CLOSED, err
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.timeout(300)
def test_run_printing_with_rich_into_a_closed_pipe(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        f'[journal]\ndirectory = "{tmp_path / "journal"}"\n'
        f'[snapshots]\ndirectory = "{tmp_path / "snapshots"}"\n[load]\norders = 2000\n'
    )
    status, err = run_into_closing_reader(["run", str(config), "--inprocess"], 0)
    assert status == ExitStatus.PIPE_CLOSED, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
