"""Every command's bad inputs, one table: each case gets one clear stderr line and its status.

A case names the command line (built from a fresh ``tmp_path``), an optional setup that
makes the damaged or odd input, the exit status it must end with (``pipeline.exitcodes``)
and a pattern the stderr message must contain. Every case must also end without a
traceback and print exactly one error line (``warning:`` lines may precede it). Grow the
table with every new command and every bad input found.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.exitcodes import ExitStatus


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Path], list[str]]
    status: ExitStatus
    message: str  # a regular expression searched for in the error line
    setup: Callable[[Path], None] | None = None


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
JOURNAL_CASES: list[Case] = []

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
    status = main(case.argv(tmp_path))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line and not line.startswith("warning:")]
    assert len(errors) == 1, f"expected one error line, got: {err!r}"
    assert re.search(case.message, errors[0]), errors[0]
    assert status == case.status, f"exit {status}, expected {case.status}: {errors[0]}"
