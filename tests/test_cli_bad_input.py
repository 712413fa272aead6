"""Every command's bad inputs, one table: each case gets one clear stderr line and its status.

A case names the command line (built from a fresh ``tmp_path``), an optional setup that
makes the damaged or odd input, the exit status it must end with (``pipeline.exitcodes``)
and a pattern the stderr message must contain. Every case must also end without a
traceback and print exactly one error line (``warning:`` lines may precede it). Grow the
table with every new command and every bad input found.
"""

from __future__ import annotations

import errno
import io
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.exitcodes import ExitStatus
from stages.persistence.journal import JournalWriter, list_segments
from stages.records import COMMAND_DTYPE
from tests.builders import commands


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Path], list[str]]
    status: ExitStatus
    message: str  # a regular expression searched for in the error line
    setup: Callable[[Path], None] | None = None
    # faults a directory cannot hold (a full disk, a read-only file system), undone after
    patch: Callable[[Path, pytest.MonkeyPatch], None] | None = None


# --- tradepipe run ---------------------------------------------------------------------------
RUN_CASES: list[Case] = [
    Case(
        "run-missing-config",
        lambda tmp: ["run", str(tmp / "nope.toml")],
        ExitStatus.USAGE,
        r"config file .*nope\.toml does not exist",
    ),
]


# --- tradepipe journal dump|verify|export ----------------------------------------------------
def _journal(tmp: Path, torn: bool = False) -> None:
    """A small journal in ``tmp/journal`` (its last append torn if ``torn``)."""
    with JournalWriter(tmp / "journal", COMMAND_DTYPE, segment_bytes=4096) as writer:
        writer.append(commands(1, 30))
        writer.append(commands(31, 10))
    if torn:
        last = list_segments(tmp / "journal")[-1]
        os.truncate(last, last.stat().st_size - 3)


def _fail_os_call(name: str, matches: str, code: int) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """Make ``os.NAME`` fail with ``code`` for paths or fds whose name ends with ``matches``."""

    def patch(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        real = getattr(os, name)

        def fake(target, *args, **kwargs):
            path = os.readlink(f"/proc/self/fd/{target}") if isinstance(target, int) else target
            if str(path).endswith(matches):
                raise OSError(code, os.strerror(code), str(path))
            return real(target, *args, **kwargs)

        monkeypatch.setattr(os, name, fake)

    return patch


class _FullStdout(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _stdout_on_a_full_disk(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = _FullStdout()
    monkeypatch.setattr(full, "buffer", _FullStdout(), raising=False)
    monkeypatch.setattr(sys, "stdout", full)


JOURNAL_CASES: list[Case] = [
    Case(
        "journal-dump-negative-limit",
        lambda tmp: ["journal", "dump", str(tmp / "journal"), "--limit", "-1"],
        ExitStatus.USAGE,
        r"--limit -1 is invalid: expected >= 0",
        _journal,
    ),
    Case(
        "journal-dump-inverted-range",
        lambda tmp: ["journal", "dump", str(tmp / "journal"), "--from", "9", "--to", "3"],
        ExitStatus.USAGE,
        r"--to 3 is before --from 9",
        _journal,
    ),
    Case(
        "journal-verify-missing-directory",
        lambda tmp: ["journal", "verify", str(tmp / "nope")],
        ExitStatus.USAGE,
        r"journal directory .*nope does not exist",
    ),
    Case(
        "journal-verify-a-segment-file",
        lambda tmp: ["journal", "verify", str(list_segments(tmp / "journal")[0])],
        ExitStatus.USAGE,
        r"\.tpj is a journal segment file, not a journal directory: name the directory "
        r"that holds it \(.*journal\)",
        _journal,
    ),
    Case(
        "journal-dump-directory-is-a-file",
        lambda tmp: ["journal", "dump", str(tmp / "journal")],
        ExitStatus.USAGE,
        r"journal is a file, not a journal directory: name the directory that holds the "
        r"\*\.tpj segment files",
        lambda tmp: (tmp / "journal").write_text("not a journal\n"),
    ),
    Case(
        "journal-dump-segment-is-a-directory",
        lambda tmp: ["journal", "dump", str(tmp / "journal")],
        ExitStatus.FAILED,
        r"00000000000000000001\.tpj.*[Ii]s a directory",
        lambda tmp: (tmp / "journal" / "00000000000000000001.tpj").mkdir(parents=True),
    ),
    Case(
        "journal-export-output-in-a-missing-directory",
        lambda tmp: ["journal", "export", str(tmp / "journal"), "-o", str(tmp / "no" / "x")],
        ExitStatus.USAGE,
        r"--output .*no/x: directory .*no does not exist",
        _journal,
    ),
    Case(
        "journal-export-output-is-a-directory",
        lambda tmp: ["journal", "export", str(tmp / "journal"), "-o", str(tmp)],
        ExitStatus.USAGE,
        r"--output .* is a directory: name a file to write",
        _journal,
    ),
    Case(
        "journal-export-disk-full",
        lambda tmp: ["journal", "export", str(tmp / "journal"), "-o", str(tmp / "out.jsonl")],
        ExitStatus.REFUSED,
        r"writing .*out\.jsonl failed: No space left on device \(ENOSPC\); "
        r"the partial output was removed; free some space",
        _journal,
        _fail_os_call("write", ".partial", errno.ENOSPC),
    ),
    Case(
        "journal-dump-disk-full",
        lambda tmp: ["journal", "dump", str(tmp / "journal")],
        ExitStatus.REFUSED,
        r"writing standard output failed: No space left on device \(ENOSPC\)",
        _journal,
        _stdout_on_a_full_disk,
    ),
    Case(
        "journal-export-stdout-disk-full",
        lambda tmp: ["journal", "export", str(tmp / "journal")],
        ExitStatus.REFUSED,
        r"writing standard output failed: No space left on device \(ENOSPC\)",
        _journal,
        _stdout_on_a_full_disk,
    ),
    Case(
        "journal-verify-repair-read-only",
        lambda tmp: ["journal", "verify", str(tmp / "journal"), "--repair"],
        ExitStatus.REFUSED,
        r"journal .*journal.*[Rr]ead-only file system",
        lambda tmp: _journal(tmp, torn=True),
        _fail_os_call("open", ".lock", errno.EROFS),
    ),
]

# --- tradepipe replay ------------------------------------------------------------------------
REPLAY_CASES: list[Case] = []

# --- tradepipe feed --------------------------------------------------------------------------
FEED_CASES: list[Case] = []

# --- tradepipe clean -------------------------------------------------------------------------
CLEAN_CASES: list[Case] = []

CASES = RUN_CASES + JOURNAL_CASES + REPLAY_CASES + FEED_CASES + CLEAN_CASES


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_one_clear_line(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if case.setup is not None:
        case.setup(tmp_path)
    if case.patch is not None:
        case.patch(tmp_path, monkeypatch)
    status = main(case.argv(tmp_path))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line and not line.startswith("warning:")]
    assert len(errors) == 1, f"expected one error line, got: {err!r}"
    assert re.search(case.message, errors[0]), errors[0]
    assert status == case.status, f"exit {status}, expected {case.status}: {errors[0]}"
