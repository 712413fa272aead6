"""``tradepipe replay --format ...``: options that were ignored are refused; --book-out fails
cleanly (one line, the partial file removed); warnings and a closed stdout are one line.

The one-line messages and exit statuses of every refused input are rows of
``tests/test_cli_bad_input.py``; this file holds what a row cannot check.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import build_parser, main
from pipeline.exitcodes import ExitStatus
from pipeline.replay import feeds
from stages import feed_replay
from tests.feedwriters import itch_stream, lobster_message_rows, simulate_itch, simulate_lobster

ROOT = Path(__file__).resolve().parents[1]


def _lobster_file(tmp_path: Path, steps: int = 2000) -> Path:
    messages, _ = simulate_lobster(np.random.default_rng(1), steps=steps, levels=10)
    path = tmp_path / "m.csv"
    path.write_text(lobster_message_rows(messages))
    return path


class _DiskFullAfter(io.FileIO):
    """A file that takes ``limit`` bytes, then fails every write with ENOSPC."""

    limit = 4096

    def write(self, data) -> int:
        room = self.limit - self.tell()
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(bytes(data)[:room])


def test_disk_full_removes_the_partial_book_out_file(tmp_path, capsys, monkeypatch) -> None:
    path = _lobster_file(tmp_path)
    out = tmp_path / "book.csv"

    def open_on_a_small_disk(name, mode="r", *args, **kwargs):
        assert mode == "wb"
        return io.BufferedWriter(_DiskFullAfter(name, "w"))

    monkeypatch.setattr(feeds, "open", open_on_a_small_disk, raising=False)
    status = main(["replay", "--format", "lobster", str(path), "--book-out", str(out)])
    err = capsys.readouterr().err
    assert status == ExitStatus.REFUSED
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"--book-out {out}: disk full after 4096 bytes; the partial file was removed" in err
    assert not out.exists()


def test_interrupted_replay_removes_the_partial_book_out_file(tmp_path, monkeypatch) -> None:
    path = _lobster_file(tmp_path, steps=50)
    out = tmp_path / "book.csv"

    def interrupted(messages, levels, seed_row, book_out):
        book_out.write(b"1,2,3,4\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(feed_replay, "replay_lobster", interrupted)
    status = main(["replay", "--format", "lobster", str(path), "--book-out", str(out)])
    assert status == ExitStatus.INTERRUPTED
    assert not out.exists()


def test_book_out_is_written_whole_when_nothing_fails(tmp_path, capsys) -> None:
    path = _lobster_file(tmp_path, steps=200)
    out = tmp_path / "book.csv"
    argv = ["replay", "--format", "lobster", str(path), "--levels", "3", "--book-out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert len(out.read_bytes().splitlines()) == len(path.read_bytes().splitlines())


def test_python_warnings_are_warning_lines_without_source_paths(tmp_path, capsys, monkeypatch):
    path = _lobster_file(tmp_path, steps=20)
    real = feed_replay.replay_lobster

    def warns(*args, **kwargs):
        warnings.warn("something odd in the feed", RuntimeWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(feed_replay, "replay_lobster", warns)
    assert main(["replay", "--format", "lobster", str(path)]) == 0
    err = capsys.readouterr().err
    assert err == "warning: something odd in the feed\n"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", ["itch50", "lobster"])
def test_replay_into_a_closed_pipe_ends_quietly(tmp_path, fmt) -> None:
    """``replay ... | head`` where head has gone: no traceback, SIGPIPE's status."""
    if fmt == "lobster":
        path = _lobster_file(tmp_path, steps=50)
    else:
        messages, _, _ = simulate_itch(np.random.default_rng(2), steps=100)
        path = tmp_path / "day.itch"
        path.write_bytes(itch_stream(messages))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "replay", "--format", fmt, str(path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            check=False,
        )
    finally:
        os.close(write_end)
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    assert done.returncode == 128 + 13, done.stderr.decode()


def test_help_states_the_levels_bound(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "1..1000" in text and "- for standard input" in text
