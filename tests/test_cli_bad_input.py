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
from stages.engine import Engine
from stages.persistence.journal_reader import JournalReader
from stages.persistence.journal_segments import list_segments
from stages.persistence.journal_writer import JournalWriter
from stages.persistence.snapshots import write_initial_state
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
def _config(body: str | bytes) -> Callable[[Path], None]:
    """Write ``tmp/run.toml``: ``body`` after journal and snapshot directories inside tmp."""

    def setup(tmp: Path) -> None:
        dirs = f'[journal]\ndirectory = "{tmp / "journal"}"\n'
        dirs += f'[snapshots]\ndirectory = "{tmp / "snapshots"}"\n'
        raw = body if isinstance(body, bytes) else body.encode()
        (tmp / "run.toml").write_bytes(dirs.encode() + raw)

    return setup


def _run_config(tmp: Path) -> list[str]:
    return ["run", str(tmp / "run.toml")]


def _bad_config(id: str, body: str | bytes, message: str) -> Case:
    return Case(id, _run_config, ExitStatus.USAGE, message, _config(body))


def _deny_access(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """``os.access`` says no for ``denied`` (tests may run as root, whom modes do not stop)."""
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: Path(path) != denied and real(path, mode, **kw)
    )


def _journal_disk_full(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every append to a journal segment fails: ENOSPC."""
    from stages.persistence import journal_writer as journal

    real = journal._writev

    def writev(fd: int, buffers: list[bytes]) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tpj"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, buffers)

    monkeypatch.setattr(journal, "_writev", writev)


RUN_CASES: list[Case] = [
    Case(
        "run-missing-config",
        lambda tmp: ["run", str(tmp / "nope.toml")],
        ExitStatus.USAGE,
        r"config file .*nope\.toml does not exist",
    ),
    _bad_config(
        "run-config-not-utf8",
        b"# caf\xe9\n",
        r"config file .*run\.toml is not UTF-8 text \(byte 0xe9 on line 5\): .*save it as UTF-8",
    ),
    Case(
        "run-config-is-a-directory",
        lambda tmp: ["run", str(tmp)],
        ExitStatus.USAGE,
        r"config file .* is a directory: name a TOML file",
    ),
    Case(
        "run-orders-zero",
        lambda tmp: ["run", "--orders", "0"],
        ExitStatus.USAGE,
        r"--orders 0 is invalid: expected 1\.\.4_611_686_018_427_387_904",
    ),
    Case(
        "run-orders-beyond-int64",
        lambda tmp: ["run", "--orders", str(2**64)],
        ExitStatus.USAGE,
        r"--orders 18446744073709551616 is invalid",
    ),
    _bad_config(
        "run-accounts-beyond-max-accounts",
        "[load]\naccounts = 5000\n",
        r"load\.accounts = 5000 does not fit engine\.risk\.max_accounts = 1024 .* "
        r"- at `\$\.load\.accounts`",
    ),
    _bad_config(
        "run-max-accounts-2",
        "[engine.risk]\nmax_accounts = 2\n",
        r"load\.accounts = 1000 does not fit engine\.risk\.max_accounts = 2 .*"
        r"- at `\$\.load\.accounts`",
    ),
    _bad_config(
        "run-funding-beyond-deposit-limit",
        "[load]\nfunding = 4611686018427387904\n",
        r"<= 2305843009213693952 - at `\$\.load\.funding`",
    ),
    _bad_config(
        "run-funding-times-accounts-beyond-what-risk-holds",
        "[load]\naccounts = 1000\nfunding = 2305843009213694\n",
        r"lower funding to at most 2305843009213693 - at `\$\.load\.funding`",
    ),
    _bad_config(
        "run-orders-beyond-int64-in-config",
        "[load]\norders = 18446744073709551616\n",
        r"- at `\$\.load\.orders`",
    ),
    _bad_config("run-seed-negative", "[load]\nseed = -1\n", r">= 0 - at `\$\.load\.seed`"),
    _bad_config(
        "run-no-instruments",
        "[engine.risk]\ninstruments = []\n",
        r"instruments is empty: .* - at `\$\.engine\.risk\.instruments`",
    ),
    _bad_config(
        "run-inverted-price-band",
        "[[engine.risk.instruments]]\nsymbol = 1\nbase = 1\nquote = 0\n"
        "price_band_low = 10\nprice_band_high = 5\n",
        r"price_band_high = 5 is invalid: expected >= price_band_low \(10\) "
        r"- at `\$\.engine\.risk\.instruments\[0\]\.price_band_high`",
    ),
    Case(
        "run-fsync-interval-inf",
        _run_config,
        ExitStatus.USAGE,
        r"<= 60000\.0 - at `\$\.journal\.fsync_interval_ms`",
        lambda tmp: (tmp / "run.toml").write_text("[journal]\nfsync_interval_ms = inf\n"),
    ),
    _bad_config("run-misspelt-key", "[engine]\nsettle_evry = 5\n", r"unknown field `settle_evry`"),
    _bad_config(
        "run-pipeline-core-beyond-the-host",
        "[pipeline]\ncpus = { ingest = 0, risk = 4096 }\n",
        r"pipeline\.cpus\.risk = 4096: this host has no core 4096 \(it has \d+: .*\); name one "
        r"of .* - at `\$\.pipeline\.cpus\.risk`",
    ),
    Case(
        "run-pipeline-core-not-allowed",
        _run_config,
        ExitStatus.USAGE,
        r"pipeline\.cpus\.matching = 2: this process may not run on core 2 \(its affinity "
        r"allows 0-1, .*\); name one of those - at `\$\.pipeline\.cpus\.matching`",
        _config("[pipeline]\ncpus = { matching = 2 }\n"),
        lambda tmp, monkeypatch: (
            monkeypatch.setattr("pipeline.affinity.allowed_cores", lambda: {0, 1}),
            monkeypatch.setattr("os.cpu_count", lambda: 4),
        ),
    ),
    _bad_config(
        "run-pipeline-unknown-stage",
        "[pipeline]\ncpus = { rsik = 0 }\n",
        r"pipeline\.cpus names an unknown stage 'rsik': the stages are ingest, risk, matching, "
        r"persistence, output, gateway - at `\$\.pipeline\.cpus\.rsik`",
    ),
    _bad_config(
        "run-gateway-tcp-without-curve",
        '[load]\nsource = "gateway"\n[gateway]\nbind = ["tcp://127.0.0.1:5555"]\n',
        r"gateway\.bind endpoint 'tcp://127\.0\.0\.1:5555': a tcp:// endpoint needs ZeroMQ "
        r"CURVE .* - at `\$\.gateway\.bind\[0\]`",
    ),
    _bad_config(
        "run-gateway-endpoint-scheme",
        '[gateway]\nmarket_data = ["http://x"]\n',
        r"gateway\.market_data endpoint 'http://x': use ipc:// or tcp:// - at "
        r"`\$\.gateway\.market_data\[0\]`",
    ),
    _bad_config(
        "run-gateway-ipc-missing-directory",
        '[gateway]\nbind = ["ipc:///no/such/dir/g.sock"]\n',
        r"directory /no/such/dir does not exist - at `\$\.gateway\.bind\[0\]`",
    ),
    _bad_config(
        "run-gateway-curve-missing-key",
        '[gateway]\nbind = ["tcp://127.0.0.1:5555"]\n'
        '[gateway.curve]\nserver_key = "no.key_secret"\nclients = "."\n',
        r"gateway\.curve\.server_key: key file no\.key_secret: cannot read it: .* - at "
        r"`\$\.gateway\.curve\.server_key`",
    ),
    Case(
        "run-gateway-inprocess",
        lambda tmp: ["run", str(tmp / "run.toml"), "--inprocess"],
        ExitStatus.USAGE,
        r'load\.source = "gateway" needs the stage processes: leave out --inprocess',
        _config('[load]\nsource = "gateway"\n'),
    ),
    _bad_config(
        "run-pipeline-negative-core",
        "[pipeline]\ncpus = { risk = -1 }\n",
        r">= 0 - at `\$\.pipeline\.cpus\[\.\.\.\]`",
    ),
    _bad_config(
        "run-pipeline-nice-beyond-19", "[pipeline]\nnice = 40\n", r"<= 19 - at `\$\.pipeline\.nice`"
    ),
    _bad_config(
        "run-pipeline-empty-run-dir",
        '[pipeline]\nrun_dir = ""\n',
        r"pipeline\.run_dir is empty: name a directory - at `\$\.pipeline\.run_dir`",
    ),
    _bad_config("run-pipeline-misspelt-key", "[pipeline]\ncpu = {}\n", r"unknown field `cpu`"),
    _bad_config(
        "run-pipeline-core-999",
        "[pipeline]\ncpus = { ingest = 999 }\n",
        r"pipeline\.cpus\.ingest = 999: this host has no core 999 \(it has \d+: .*\); name "
        r"one of .* - at `\$\.pipeline\.cpus\.ingest`",
    ),
    Case(
        "run-pipeline-more-stages-pinned-than-cores",
        _run_config,
        ExitStatus.USAGE,
        r"pipeline\.cpus\.matching = 2: this host has no core 2 \(it has 2: 0-1\); name one "
        r"of 0-1 - at `\$\.pipeline\.cpus\.matching`",
        _config(
            "[pipeline]\ncpus = { ingest = 0, risk = 1, matching = 2, persistence = 3, "
            "output = 4 }\n"
        ),
        lambda tmp, monkeypatch: (
            monkeypatch.setattr("pipeline.affinity.allowed_cores", lambda: {0, 1}),
            monkeypatch.setattr("os.cpu_count", lambda: 2),
        ),
    ),
    _bad_config(
        "run-pipeline-unknown-key",
        '[pipeline]\nrun_directory = "rd"\n',
        r"unknown field `run_directory` - at `\$\.pipeline`",
    ),
    Case(
        "run-inprocess-and-pipeline",
        lambda tmp: ["run", "--inprocess", "--pipeline"],
        ExitStatus.USAGE,
        r"argument --pipeline: not allowed with argument --inprocess",
    ),
    Case(
        "run-pipeline-run-dir-open-to-others",
        _run_config,
        ExitStatus.REFUSED,
        r"run directory .*rd is mode 0755: others may reach its control sockets; it must be 0700",
        lambda tmp: (
            _config('[pipeline]\nrun_dir = "rd"\n')(tmp),
            (tmp / "rd").mkdir(),
            (tmp / "rd").chmod(0o755),
        ),
    ),
    Case(
        "run-gateway-doorbell-path-taken",
        _run_config,
        ExitStatus.FAILED,
        r"rd/answers\.bell: File exists: a doorbell pipe cannot be made there",
        lambda tmp: (
            _config('[load]\nsource = "gateway"\n[pipeline]\nrun_dir = "rd"\n')(tmp),
            (tmp / "rd").mkdir(mode=0o700),
            (tmp / "rd" / "answers.bell").mkdir(),  # not ours: kept, and the run refused
        ),
    ),
    Case(
        "run-pipeline-run-dir-is-a-file",
        lambda tmp: [*_run_config(tmp), "--pipeline"],  # the flag: still accepted
        ExitStatus.USAGE,
        r"run directory .*rd is not a directory: remove it or name another",
        lambda tmp: (_config('[pipeline]\nrun_dir = "rd"\n')(tmp), (tmp / "rd").write_text("")),
    ),
    Case(
        "run-pipeline-run-dir-under-a-file",
        lambda tmp: [*_run_config(tmp), "--fresh"],
        ExitStatus.USAGE,
        r"cannot create the run directory .*afile/rd: .*afile is not a directory; set "
        r"\[pipeline\] run_dir to a path under a directory",
        lambda tmp: (
            _config('[pipeline]\nrun_dir = "afile/rd"\n')(tmp),
            (tmp / "afile").write_text(""),
            _journal(tmp),  # a previous run: the run dir is refused first
        ),
    ),
    Case(
        "run-pipeline-run-dir-under-a-read-only-directory",
        _run_config,
        ExitStatus.REFUSED,
        r"cannot create the run directory .*ro/rd: no permission to write in .*ro; set "
        r"\[pipeline\] run_dir to a directory you may write",
        lambda tmp: (_config('[pipeline]\nrun_dir = "ro/rd"\n')(tmp), (tmp / "ro").mkdir()),
        lambda tmp, monkeypatch: _deny_access(monkeypatch, tmp / "ro"),
    ),
    Case(
        "run-pipeline-run-dir-on-a-read-only-file-system",
        _run_config,
        ExitStatus.REFUSED,
        r"cannot create the run directory .*rd: [Rr]ead-only file system; set \[pipeline\] "
        r"run_dir to a directory you may write",
        _config('[pipeline]\nrun_dir = "rd"\n'),
        lambda tmp, monkeypatch: _fail_os_call("mkdir", "rd", errno.EROFS)(tmp, monkeypatch),
    ),
    Case(
        "run-pipeline-socket-path-too-long",
        _run_config,
        ExitStatus.REFUSED,
        r"socket path .* is \d+ bytes, more than the 107 a Unix socket allows: set "
        r"\[pipeline\] run_dir to a shorter path",
        _config(f'[pipeline]\nrun_dir = "{"r" * 120}"\n'),
    ),
    Case(
        "run-previous-run-without-fresh",
        _run_config,
        ExitStatus.USAGE,
        r"journal already holds a run; pass --fresh only to delete it",
        lambda tmp: (_config("")(tmp), _journal(tmp)),
    ),
    Case(
        "run-fresh-foreign-files",
        lambda tmp: ["run", str(tmp / "run.toml"), "--fresh"],
        ExitStatus.USAGE,
        r"journal holds entries that are not tradepipe's \(notes\.txt\)",
        lambda tmp: (
            _config("")(tmp),
            (tmp / "journal").mkdir(),
            (tmp / "journal" / "notes.txt").write_text("mine\n"),
        ),
    ),
    Case(
        "run-fresh-symlinked-directory",
        lambda tmp: ["run", str(tmp / "run.toml"), "--fresh"],
        ExitStatus.USAGE,
        r"journal directory .*journal is a symbolic link",
        lambda tmp: (
            _config("")(tmp),
            (tmp / "elsewhere").mkdir(),
            (tmp / "journal").symlink_to(tmp / "elsewhere"),
        ),
    ),
    Case(
        "run-empty-journal-directory",
        _run_config,
        ExitStatus.USAGE,
        r"the journal directory is empty: name a directory",
        lambda tmp: (tmp / "run.toml").write_text('[journal]\ndirectory = ""\n'),
    ),
    Case(
        "run-fresh-working-directory",  # it once deleted everything in "."
        lambda tmp: ["run", str(tmp / "run.toml"), "--fresh"],
        ExitStatus.USAGE,
        r"\. holds entries that are not tradepipe's \(run\.toml\)",
        lambda tmp: (tmp / "run.toml").write_text('[journal]\ndirectory = "."\n'),
    ),
    Case(
        "run-journal-disk-full",
        lambda tmp: [*_run_config(tmp), "--inprocess"],  # the patch reaches this process only
        ExitStatus.REFUSED,
        r"journal .*journal: disk full \(ENOSPC\)",
        _config("[load]\norders = 1000\n"),
        _journal_disk_full,
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


def _journal_without_its_newest_segment(tmp: Path) -> None:
    """``_journal`` with its newest segment deleted afterwards, and an empty config."""
    _journal(tmp)
    list_segments(tmp / "journal")[-1].unlink()
    (tmp / "e.toml").write_text("")


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
        r"journal .*journal.*[Rr]ead-only file system.*(writable|read-write)",
        lambda tmp: _journal(tmp, torn=True),
        _fail_os_call("open", ".lock", errno.EROFS),
    ),
]


# --- feed inputs (tradepipe replay --format ..., tradepipe feed stats) -----------------------
def _feed_file(name: str, data: bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / name).write_bytes(data)

    return setup


_LOBSTER_ROWS = b"34200.1,1,1,100,1000000,1\n34200.2,1,2,50,1010000,-1\n"
_lobster_ok = _feed_file("m.csv", _LOBSTER_ROWS)


def _itch_ok(tmp: Path) -> None:
    from tests.feedwriters import itch_message, itch_stream

    (tmp / "day.itch").write_bytes(itch_stream([itch_message("R", locate=1, stock="AAPL")]))


def _damaged_gzip(tmp: Path) -> None:
    """A gzip ITCH file cut in the middle of its compressed stream."""
    import gzip

    from tests.feedwriters import itch_message, itch_stream

    day = [itch_message("R", locate=i, stock=f"S{i:05d}") for i in range(1, 3000)]
    packed = gzip.compress(itch_stream(day))
    (tmp / "day.itch.gz").write_bytes(packed[: len(packed) // 2])


def _replay(*args: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["replay", *args]


def _stats(*args: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["feed", "stats", *args]


def _other_format_option(fmt: str, file: str, setup, *option: str) -> Case:
    other = "lobster" if fmt == "itch50" else "itch50"
    return Case(
        f"replay-{fmt}-refuses-{option[0].lstrip('-')}",
        _replay("--format", fmt, file, *option),
        ExitStatus.USAGE,
        rf"{option[0]} is an option of --format {other} replays, not of --format {fmt}",
        setup,
    )


# --- tradepipe replay ------------------------------------------------------------------------
def _corrupt_snapshots(tmp: Path) -> None:
    """A journal without a kept initial state, and a snapshot directory whose only one is bad."""
    _journal(tmp)
    (tmp / "snapshots").mkdir()
    (tmp / "snapshots" / f"snapshot-{0:020d}.tps").write_bytes(b"TPSNAPSH" + bytes(80))


def _corrupt_journal(tmp: Path) -> None:
    """A journal (with its initial state kept) whose first append has a flipped record bit."""
    _journal(tmp)
    write_initial_state(tmp / "journal", Engine().snapshot())
    first = list_segments(tmp / "journal")[0]
    data = bytearray(first.read_bytes())
    data[JournalReader(tmp / "journal").segments[0].header_size + 40] ^= 1
    first.write_bytes(bytes(data))


REPLAY_CASES: list[Case] = [
    Case(
        "replay-journal-negative-to-seq",
        lambda tmp: ["replay", "--journal", str(tmp / "journal"), "--to-seq", "-5"],
        ExitStatus.USAGE,
        r"--to-seq -5 is invalid: expected a seq >= 0",
        _journal,
    ),
    Case(
        "replay-journal-and-a-feed-file",
        lambda tmp: ["replay", "--journal", str(tmp / "journal"), "feed.csv"],
        ExitStatus.USAGE,
        r"--journal replays a journal; FILE .*give one or the other",
        _journal,
    ),
    Case(
        "replay-journal-missing-snapshot-dir",
        lambda tmp: ["replay", "--journal", str(tmp / "journal"), "--snapshots", str(tmp / "nope")],
        ExitStatus.USAGE,
        r"snapshot directory .*nope does not exist",
        _journal,
    ),
    Case(
        "replay-journal-configuration-unknown",
        lambda tmp: ["replay", "--journal", str(tmp / "journal")],
        ExitStatus.USAGE,
        r"cannot tell which engine configuration .* pass the run's config \(--config\)",
        _journal,
    ),
    Case(
        "replay-journal-all-snapshots-corrupt",
        lambda tmp: [
            "replay",
            "--journal",
            str(tmp / "journal"),
            "--snapshots",
            str(tmp / "snapshots"),
        ],
        ExitStatus.USAGE,
        r"no valid snapshot in .*snapshots.*--config",
        _corrupt_snapshots,
    ),
    Case(
        "replay-journal-torn-tail-and-configuration-unknown",
        lambda tmp: ["replay", "--journal", str(tmp / "journal")],
        ExitStatus.USAGE,
        r"cannot tell which engine configuration",
        lambda tmp: _journal(tmp, torn=True),
    ),
    Case(
        "replay-journal-newest-segment-deleted",
        lambda tmp: ["replay", "--journal", str(tmp / "journal"), "--config", str(tmp / "e.toml")],
        ExitStatus.FAILED,
        r"ends at seq \d+, but seqs \d+\.\.40 \(\d+ records\) are missing .*durable\.mark",
        _journal_without_its_newest_segment,
    ),
    Case(
        "replay-journal-missing",
        lambda tmp: ["replay", "--journal", str(tmp / "nope")],
        ExitStatus.USAGE,
        r"journal directory .*nope does not exist",
    ),
    Case(
        "replay-journal-is-a-file",
        lambda tmp: ["replay", "--journal", str(tmp / "afile")],
        ExitStatus.USAGE,
        r"afile is a file, not a journal directory",
        lambda tmp: (tmp / "afile").write_text("x") and None,
    ),
    Case(
        "replay-journal-corrupt",
        lambda tmp: ["replay", "--journal", str(tmp / "journal"), "--from-start"],
        ExitStatus.FAILED,
        r"records checksum mismatch",
        _corrupt_journal,
    ),
    # feed mode (--format): options of the other format, or without effect, are refused
    _other_format_option("itch50", "day.itch", _itch_ok, "--book-out", "out.csv"),
    _other_format_option("itch50", "day.itch", _itch_ok, "--seed-book", "b.csv"),
    _other_format_option("itch50", "day.itch", _itch_ok, "--levels", "5"),
    _other_format_option("lobster", "m.csv", _lobster_ok, "--depth", "3"),
    _other_format_option("lobster", "m.csv", _lobster_ok, "--symbol", "AAPL"),
    Case(
        "replay-itch50-unknown-symbol",
        _replay("--format", "itch50", "day.itch", "--symbol", "NOPE"),
        ExitStatus.USAGE,
        r"--symbol NOPE: no stock directory \(R\) message of day.itch names it \(it lists 1: AAPL",
        _itch_ok,
    ),
    Case(
        "replay-lobster-levels-too-many",
        _replay("--format", "lobster", "m.csv", "--levels", "100000", "--book-out", "o.csv"),
        ExitStatus.USAGE,
        r"--levels 100000 is out of range: expected 1\.\.1000",
        _lobster_ok,
    ),
    Case(
        "replay-lobster-levels-without-book-out",
        _replay("--format", "lobster", "m.csv", "--levels", "5"),
        ExitStatus.USAGE,
        r"--levels sets the rows --book-out writes: give --book-out too",
        _lobster_ok,
    ),
    Case(
        "replay-itch50-depth-too-many",
        _replay("--format", "itch50", "day.itch", "--depth", "5000"),
        ExitStatus.USAGE,
        r"--depth 5000 is out of range: expected 0\.\.1000",
        _itch_ok,
    ),
    Case(
        "replay-format-without-file",
        _replay("--format", "lobster"),
        ExitStatus.USAGE,
        r"--format lobster needs FILE \(a LOBSTER message file, or - for stdin\)",
    ),
    Case(
        "replay-file-without-format",
        _replay("m.csv"),
        ExitStatus.USAGE,
        r"FILE m.csv given without --format: say --format lobster or --format itch50",
        _lobster_ok,
    ),
    Case(
        "replay-feed-option-without-format",
        _replay("--levels", "5"),
        ExitStatus.USAGE,
        r"--levels is an option of --format lobster replays: give --format lobster FILE",
    ),
    Case(
        "replay-journal-and-a-feed-option",
        _replay("--journal", "journal", "--depth", "3"),
        ExitStatus.USAGE,
        r"--journal replays a journal; --depth belongs to a market-data replay",
    ),
    Case(
        "replay-lobster-stdin-twice",
        _replay("--format", "lobster", "-", "--seed-book", "-"),
        ExitStatus.USAGE,
        r"FILE and --seed-book cannot both be - \(stdin is read once\)",
    ),
    # feed mode: inputs that are not feeds, damaged feeds
    Case(
        "replay-itch50-dev-zero",
        _replay("--format", "itch50", "/dev/zero"),
        ExitStatus.USAGE,
        r"/dev/zero: is a character device, not a feed file or pipe",
    ),
    Case(
        "replay-lobster-directory",
        _replay("--format", "lobster", "."),
        ExitStatus.USAGE,
        r"\.: is a directory; expected a feed file",
    ),
    Case(
        "replay-lobster-missing-file",
        _replay("--format", "lobster", "nope.csv"),
        ExitStatus.USAGE,
        r"nope\.csv: no such file",
    ),
    Case(
        "replay-lobster-seed-book-missing",
        _replay("--format", "lobster", "m.csv", "--seed-book", "nope.csv"),
        ExitStatus.USAGE,
        r"nope\.csv: no such file",
        _lobster_ok,
    ),
    Case(
        "replay-lobster-size-beyond-int64",
        _replay("--format", "lobster", "m.csv"),
        ExitStatus.FAILED,
        r"m\.csv: line 2 \(byte offset 38\): Size '99999999999999999999' is out of range; "
        r"expected Size in 0\.\.34359738367 \(the matching engine's largest order quantity",
        _feed_file("m.csv", b"34200.1,1,1,100,1000000,1\n34200.2,1,2,99999999999999999999,1,1\n"),
    ),
    Case(
        "replay-lobster-price-beyond-int64",
        _replay("--format", "lobster", "m.csv"),
        ExitStatus.FAILED,
        r"line 1 \(byte offset 16\): Price '99999999999999999999' is out of range",
        _feed_file("m.csv", b"34200.1,1,1,100,99999999999999999999,1\n"),
    ),
    Case(
        "replay-lobster-direction-0",
        _replay("--format", "lobster", "m.csv"),
        ExitStatus.FAILED,
        r"line 1 \(byte offset 24\): Direction '0' is not a direction; "
        r"expected Direction 1 \(buy\) or -1 \(sell\)",
        _feed_file("m.csv", b"34200.1,1,1,100,1000000,0\n"),
    ),
    Case(
        "replay-lobster-direction-7",
        _replay("--format", "lobster", "m.csv"),
        ExitStatus.FAILED,
        r"Direction '7' is not a direction",
        _feed_file("m.csv", b"34200.1,1,1,100,1000000,7\n"),
    ),
    Case(
        "replay-lobster-header-row",
        _replay("--format", "lobster", "m.csv"),
        ExitStatus.FAILED,
        r"line 1 \(byte offset 0\): not a number: 'Time' \(Time\), a header row\? "
        r"LOBSTER files have none",
        _feed_file("m.csv", b"Time,Type,OrderID,Size,Price,Direction\n" + _LOBSTER_ROWS),
    ),
    Case(
        "replay-lobster-abc",
        _replay("--format", "lobster", "m.csv"),
        ExitStatus.FAILED,
        r"line 1 \(byte offset 10\): not a number: 'abc' \(OrderID\)",
        _feed_file("m.csv", b"34200.1,1,abc,100,1000000,1\n"),
    ),
    Case(
        "replay-itch50-damaged-gzip",
        _replay("--format", "itch50", "day.itch.gz"),
        ExitStatus.FAILED,
        r"invalid at byte offset \d+: damaged gzip data",
        _damaged_gzip,
    ),
    # feed mode: --book-out
    Case(
        "replay-lobster-book-out-missing-directory",
        _replay("--format", "lobster", "m.csv", "--book-out", "nodir/o.csv"),
        ExitStatus.USAGE,
        r"--book-out nodir/o\.csv: directory nodir does not exist",
        _lobster_ok,
    ),
    Case(
        "replay-lobster-book-out-is-a-directory",
        _replay("--format", "lobster", "m.csv", "--book-out", "."),
        ExitStatus.USAGE,
        r"--book-out \. is a directory; expected a file to write",
        _lobster_ok,
    ),
    Case(
        "replay-lobster-book-out-is-the-input",
        _replay("--format", "lobster", "m.csv", "--book-out", "./m.csv"),
        ExitStatus.USAGE,
        r"--book-out \./m\.csv is the input file m\.csv: it would be destroyed",
        _lobster_ok,
    ),
    Case(
        "replay-lobster-book-out-disk-full",
        _replay("--format", "lobster", "m.csv", "--book-out", "/dev/full"),
        ExitStatus.REFUSED,
        r"--book-out /dev/full: disk full after 0 bytes; free space or write elsewhere",
        _lobster_ok,
    ),
]

# --- tradepipe feed --------------------------------------------------------------------------
FEED_CASES: list[Case] = [
    Case(
        "feed-stats-dev-zero",
        _stats("--format", "itch50", "/dev/zero"),
        ExitStatus.USAGE,
        r"/dev/zero: is a character device, not a feed file or pipe",
    ),
    Case(
        "feed-stats-directory",
        _stats("--format", "lobster", "."),
        ExitStatus.USAGE,
        r"\.: is a directory; expected a feed file",
    ),
    Case(
        "feed-stats-missing-file",
        _stats("--format", "itch50", "nope.itch"),
        ExitStatus.USAGE,
        r"nope\.itch: no such file",
    ),
    Case(
        "feed-stats-itch50-corrupt",
        _stats("--format", "itch50", "bad.itch"),
        ExitStatus.FAILED,
        r"bad\.itch: stopped at byte offset 0: unknown message type 0x3f",
        _feed_file("bad.itch", b"\x00\x0c?" + bytes(11)),
    ),
    Case(
        "feed-stats-itch50-damaged-gzip",
        _stats("--format", "itch50", "day.itch.gz"),
        ExitStatus.FAILED,
        r"day\.itch\.gz: stopped at byte offset \d+: damaged gzip data",
        _damaged_gzip,
    ),
    Case(
        "feed-stats-lobster-size-beyond-int64",
        _stats("--format", "lobster", "m.csv"),
        ExitStatus.FAILED,
        r"line 1 \(byte offset 12\): Size '99999999999999999999' is out of range",
        _feed_file("m.csv", b"34200.1,1,1,99999999999999999999,1000000,1\n"),
    ),
    Case(
        "feed-stats-lobster-direction-0",
        _stats("--format", "lobster", "m.csv"),
        ExitStatus.FAILED,
        r"Direction '0' is not a direction",
        _feed_file("m.csv", b"34200.1,1,1,100,1000000,0\n"),
    ),
    Case(
        "feed-stats-lobster-header-row",
        _stats("--format", "lobster", "m.csv"),
        ExitStatus.FAILED,
        r"not a number: 'Time' \(Time\), a header row\?",
        _feed_file("m.csv", b"Time,Type,OrderID,Size,Price,Direction\n" + _LOBSTER_ROWS),
    ),
    Case(
        "feed-stats-chunk-mb-with-lobster",
        _stats("--format", "lobster", "m.csv", "--chunk-mb", "8"),
        ExitStatus.USAGE,
        r"--chunk-mb is an option of --format itch50",
        _lobster_ok,
    ),
    Case(
        "feed-stats-chunk-mb-zero",
        _stats("--format", "itch50", "day.itch", "--chunk-mb", "0"),
        ExitStatus.USAGE,
        r"--chunk-mb 0 is out of range: expected 1\.\.4096",
        _itch_ok,
    ),
]

# --- tradepipe clean -------------------------------------------------------------------------
CLEAN_CASES: list[Case] = [
    Case(
        "clean-unexpected-argument",
        lambda tmp: ["clean", str(tmp)],
        ExitStatus.USAGE,
        r"unrecognized arguments: ",
    ),
    Case(
        "clean-unknown-option",
        lambda tmp: ["clean", "--stale"],
        ExitStatus.USAGE,
        r"unrecognized arguments: --stale",
    ),
]

# --- tradepipe status / stop: the verbs of a running pipeline --------------------------------
VERB_CASES: list[Case] = [
    Case(
        f"{verb}-no-pipeline-running",
        lambda tmp, verb=verb: [verb, "--run-dir", str(tmp / "rd")],
        ExitStatus.FAILED,
        r"no pipeline running \(no run directory .*rd\)",
    )
    for verb in ("status", "stop")
] + [
    Case(
        "status-stale-run-dir",
        lambda tmp: ["status", "--run-dir", str(tmp / "rd")],
        ExitStatus.FAILED,
        r"no pipeline running \(stale run directory from pid \d+; tradepipe clean removes it\)",
        lambda tmp: _stale_manifest(tmp / "rd"),
    ),
]


def _stale_manifest(run_dir: Path) -> None:
    """A manifest whose supervisor (pid 2**22 + 1, beyond pid_max) cannot be running."""
    from pipeline.control import PipelineManifest, prepare_run_dir, write_manifest

    prepare_run_dir(run_dir)
    endpoint = f"ipc://{run_dir}/control.sock"
    write_manifest(run_dir, PipelineManifest(2**22 + 1, 1, endpoint, endpoint))


# --- tradepipe top / snapshot / halt / resume / kill-switch / deposit ------------------------
def _admin_config(body: str) -> Callable[[Path], None]:
    """``tmp/venue.toml``: a run config naming its own instruments and assets."""
    return lambda tmp: (tmp / "venue.toml").write_text(body) and None


_SOL_VENUE = (
    '[engine.risk]\nassets = [{ asset = 0, name = "USD" }, { asset = 5, name = "SOL" }]\n'
    '[[engine.risk.instruments]]\nsymbol = 7\nbase = 5\nquote = 0\nname = "SOL-USD"\n'
)

ADMIN_CASES: list[Case] = [
    *(
        Case(
            f"{argv[0]}-no-pipeline-running",
            lambda tmp, argv=argv: [*argv, "--run-dir", str(tmp / "rd")],
            ExitStatus.FAILED,
            r"no pipeline running \(no run directory .*rd\)",
        )
        for argv in (
            ["top"],
            ["snapshot"],
            ["halt", "BTC-USD"],
            ["resume", "1"],
            ["kill-switch", "--all"],
            ["deposit", "3", "USD", "1000"],
        )
    ),
    Case(
        "halt-stale-run-dir",
        lambda tmp: ["halt", "1", "--run-dir", str(tmp / "rd")],
        ExitStatus.FAILED,
        r"no pipeline running \(stale run directory from pid \d+; tradepipe clean removes it\)",
        lambda tmp: _stale_manifest(tmp / "rd"),
    ),
    Case(
        "admin-run-dir-from-config",
        lambda tmp: ["snapshot", "--config", str(tmp / "venue.toml")],
        ExitStatus.FAILED,
        r"no pipeline running \(no run directory .*elsewhere\)",
        _admin_config('[pipeline]\nrun_dir = "elsewhere"\n'),
    ),
    Case(
        "halt-unknown-symbol-name",
        lambda tmp: ["halt", "DOGE-USD"],
        ExitStatus.USAGE,
        r"SYMBOL 'DOGE-USD' is neither a number nor the name of an instrument in the embedded "
        r"defaults \(see --config\); known: BTC-USD \(1\), ETH-USD \(2\)$",
    ),
    Case(
        "halt-name-of-another-config",
        lambda tmp: ["halt", "BTC-USD", "--config", str(tmp / "venue.toml")],
        ExitStatus.USAGE,
        r"SYMBOL 'BTC-USD' is neither .* in config .*venue\.toml; known: SOL-USD \(7\)$",
        _admin_config(_SOL_VENUE),
    ),
    Case(
        "halt-missing-config",
        lambda tmp: ["halt", "1", "--config", str(tmp / "nope.toml")],
        ExitStatus.USAGE,
        r"config file .*nope\.toml does not exist",
    ),
    Case(
        "halt-without-symbol",
        lambda tmp: ["halt"],
        ExitStatus.USAGE,
        r"the following arguments are required: SYMBOL",
    ),
    Case(
        "resume-negative-symbol",
        lambda tmp: ["resume", "-1"],
        ExitStatus.USAGE,
        r"symbol -1 is out of range: expected 0\.\.65535",
    ),
    Case(
        "resume-symbol-beyond-the-record-field",
        lambda tmp: ["resume", "65536"],
        ExitStatus.USAGE,
        r"symbol 65536 is out of range: expected 0\.\.65535",
    ),
    Case(
        "kill-switch-account-and-all",
        lambda tmp: ["kill-switch", "3", "--all"],
        ExitStatus.USAGE,
        r"both ACCOUNT and --all: give one account, or --all for every account",
    ),
    Case(
        "kill-switch-neither-account-nor-all",
        lambda tmp: ["kill-switch", "--release"],
        ExitStatus.USAGE,
        r"neither ACCOUNT nor --all: give one account, or --all for every account",
    ),
    Case(
        "kill-switch-fee-account",
        lambda tmp: ["kill-switch", "0"],
        ExitStatus.USAGE,
        r"ACCOUNT 0 is the fee account: expected 1\.\.4294967295 \(every account's kill "
        r"switch: --all\)",
    ),
    Case(
        "kill-switch-account-beyond-uint32",
        lambda tmp: ["kill-switch", str(2**32)],
        ExitStatus.USAGE,
        r"account 4294967296 is out of range: expected 1\.\.4294967295",
    ),
    Case(
        "kill-switch-account-not-a-number",
        lambda tmp: ["kill-switch", "alice"],
        ExitStatus.USAGE,
        r"ACCOUNT 'alice' is not an integer",
    ),
    Case(
        "deposit-unknown-asset-name",
        lambda tmp: ["deposit", "3", "XRP", "5", "--config", str(tmp / "venue.toml")],
        ExitStatus.USAGE,
        r"ASSET 'XRP' is neither a number nor the name of an asset in config .*venue\.toml; "
        r"known: USD \(0\), SOL \(5\)$",
        _admin_config(_SOL_VENUE),
    ),
    *(
        Case(
            f"deposit-amount-{name}",
            lambda tmp, amount=amount: ["deposit", "3", "USD", amount],
            ExitStatus.USAGE,
            rf"amount {amount} is out of range: expected 1\.\.2305843009213693952",
        )
        for name, amount in (
            ("zero", "0"),
            ("negative", "-5"),
            ("beyond-risk-limit", str(2**61 + 1)),
            ("beyond-int64", str(2**64)),
        )
    ),
    Case(
        "deposit-amount-not-an-integer",
        lambda tmp: ["deposit", "3", "USD", "1.5"],
        ExitStatus.USAGE,
        r"AMOUNT '1\.5' is not an integer",
    ),
    Case(
        "deposit-fee-account",
        lambda tmp: ["deposit", "0", "USD", "5"],
        ExitStatus.USAGE,
        r"ACCOUNT 0 is the fee account: expected 1\.\.4294967295$",
    ),
    Case(
        "deposit-missing-amount",
        lambda tmp: ["deposit", "3", "USD"],
        ExitStatus.USAGE,
        r"the following arguments are required: AMOUNT",
    ),
    *(
        Case(
            f"top-interval-{name}",
            lambda tmp, value=value: ["top", "--interval", value],
            ExitStatus.USAGE,
            rf"--interval {re.escape(value)} is invalid: expected 0\.1\.\.3600 seconds",
        )
        for name, value in (("zero", "0"), ("negative", "-1"), ("nan", "nan"), ("inf", "inf"))
    ),
    Case(
        "top-interval-not-a-number",
        lambda tmp: ["top", "--interval", "soon"],
        ExitStatus.USAGE,
        r"argument --interval: invalid float value: 'soon'",
    ),
]


# --- tradepipe order / md / load / keys: the gateway's verbs ---------------------------------
def _rd(tmp: Path) -> list[str]:
    return ["--run-dir", str(tmp / "rd")]


def _order(*argv: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["order", *argv, *_rd(tmp)]


def _load(*argv: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["load", *argv, *_rd(tmp)]


def _pipeline_without_gateway(tmp: Path) -> None:
    """A live manifest (this process as its supervisor) naming no gateway endpoint."""
    from pipeline.control import PipelineManifest, prepare_run_dir, write_manifest
    from ringbuffer.peers import process_start_ms

    run_dir = tmp / "rd"
    prepare_run_dir(run_dir)
    endpoint = f"ipc://{run_dir}/control.sock"
    me = os.getpid()
    write_manifest(run_dir, PipelineManifest(me, process_start_ms(me), endpoint, endpoint))


def _keys_made(tmp: Path) -> None:
    from pipeline.keys import new_keys

    new_keys("alice", tmp, (1,))


_NO_PIPELINE = r"no pipeline running \(no run directory .*rd\)"

GATEWAY_CASES: list[Case] = [
    *(
        Case(
            f"{name}-no-pipeline-running",
            argv,
            ExitStatus.FAILED,
            _NO_PIPELINE,
        )
        for name, argv in (
            ("order-buy", _order("buy", "BTC-USD", "1", "--price", "100")),
            ("order-cancel", _order("cancel", "c1")),
            ("md-watch", lambda tmp: ["md", "watch", "BTC-USD", "--once", *_rd(tmp)]),
            ("load", _load("--clients", "2", "--rate", "100", "--duration", "1")),
        )
    ),
    Case(
        "order-pipeline-without-gateway",
        _order("sell", "1", "1", "--price", "100"),
        ExitStatus.FAILED,
        r"the pipeline in .*rd runs no order-entry gateway \(start it with \[load\] source = "
        r'"gateway" or \[gateway\] enabled = true\), or name one with --endpoint',
        _pipeline_without_gateway,
    ),
    Case(
        "order-no-gateway-at-endpoint",
        lambda tmp: [
            "order",
            "buy",
            "1",
            "1",
            "--price",
            "5",
            "--wait",
            "0.2",
            "--endpoint",
            f"ipc://{tmp}/nobody.sock",
        ],
        ExitStatus.FAILED,
        r"no answer to the logon from the gateway at ipc://.*nobody\.sock within 0\.2 s: is a "
        r"pipeline with a gateway running there\?",
    ),
    *(
        Case(
            f"order-qty-{name}",
            _order("buy", "BTC-USD", qty, "--price", "100"),
            ExitStatus.USAGE,
            message,
        )
        for name, qty, message in (
            ("zero", "0", r"QTY 0 is invalid: Expected `int` >= 1$"),
            ("negative", "-5", r"QTY -5 is invalid: Expected `int` >= 1$"),
            (
                "beyond-int64",
                str(2**63),
                r"QTY 9223372036854775808 is out of range: expected "
                r"at most 9223372036854775807",
            ),
            ("huge", str(10**30), r"QTY 10+ is out of range"),
            ("not-a-number", "ten", r"QTY 'ten' is not an integer"),
        )
    ),
    Case(
        "order-price-zero",
        _order("buy", "BTC-USD", "1", "--price", "0"),
        ExitStatus.USAGE,
        r"--price 0 is invalid: a limit price is 1 or more",
    ),
    Case(
        "order-symbol-id-beyond-uint16",
        _order("buy", "70000", "1", "--price", "100"),
        ExitStatus.USAGE,
        r"SYMBOL '70000' is invalid: Expected `int` <= 65535",
    ),
    Case(
        "order-symbol-name-too-long",
        _order("buy", "X" * 40, "1", "--price", "100"),
        ExitStatus.USAGE,
        r"SYMBOL 'X+' is invalid: Expected `str` of length <= 32",
    ),
    Case(
        "order-bad-tif",
        _order("buy", "BTC-USD", "1", "--tif", "day"),
        ExitStatus.USAGE,
        r"argument --tif: invalid choice: 'day' \(choose from '?gtc'?, '?ioc'?, '?fok'?\)",
    ),
    Case(
        "order-account-not-a-number",
        _order("buy", "BTC-USD", "1", "--account", "alice"),
        ExitStatus.USAGE,
        r"--account 'alice' is not an integer",
    ),
    Case(
        "order-account-zero",
        _order("sell", "BTC-USD", "1", "--account", "0"),
        ExitStatus.USAGE,
        r"--account 0 is out of range: expected 1\.\.4294967295 \(0 is the fee account\)",
    ),
    Case(
        "order-client-order-id-with-a-space",
        _order("buy", "BTC-USD", "1", "--client-order-id", "my order"),
        ExitStatus.USAGE,
        r"CLORDID 'my order' is invalid: Expected `str` of printable ASCII characters without",
    ),
    Case(
        "order-cancel-client-order-id-not-ascii",
        _order("cancel", "caf\u00e9"),
        ExitStatus.USAGE,
        r"CLORDID 'caf\u00e9' is invalid: Expected `str` of printable ASCII characters without",
    ),
    Case(
        "order-cancel-client-order-id-too-long",
        _order("cancel", "c" * 65),
        ExitStatus.USAGE,
        r"CLORDID 'c+' is invalid: Expected `str` of length <= 64",
    ),
    Case(
        "order-wait-zero",
        _order("buy", "BTC-USD", "1", "--wait", "0"),
        ExitStatus.USAGE,
        r"--wait 0 is invalid: expected 0 < S <= 3600 seconds",
    ),
    Case(
        "order-key-without-server-key",
        _order("buy", "BTC-USD", "1", "--key", "alice.key_secret"),
        ExitStatus.USAGE,
        r"CURVE needs both --key and --server-key: --key given, --server-key not",
        _keys_made,
    ),
    Case(
        "order-key-file-missing",
        _order("buy", "BTC-USD", "1", "--key", "nope.key_secret", "--server-key", "alice.key"),
        ExitStatus.USAGE,
        r"key file nope\.key_secret: cannot read it: No such file or directory",
        _keys_made,
    ),
    Case(
        "order-endpoint-not-zmq",
        _order("buy", "BTC-USD", "1", "--endpoint", "http://x"),
        ExitStatus.USAGE,
        r"--endpoint 'http://x': use ipc://PATH or tcp://HOST:PORT",
    ),
    Case(
        "order-without-qty",
        lambda tmp: ["order", "buy", "BTC-USD"],
        ExitStatus.USAGE,
        r"the following arguments are required: QTY",
    ),
    Case(
        "md-watch-symbol-with-a-dot",
        lambda tmp: ["md", "watch", "BTC.USD", *_rd(tmp)],
        ExitStatus.USAGE,
        r"SYMBOL 'BTC\.USD': symbol name 'BTC\.USD' must be printable, without dots or spaces",
    ),
    Case(
        "md-watch-levels-zero",
        lambda tmp: ["md", "watch", "BTC-USD", "--levels", "0", *_rd(tmp)],
        ExitStatus.USAGE,
        r"--levels 0 is invalid: expected 1\.\.1000",
    ),
    Case(
        "md-watch-pipeline-without-feed",
        lambda tmp: ["md", "watch", "1", "--once", *_rd(tmp)],
        ExitStatus.FAILED,
        r"the pipeline in .*rd runs no market-data feed",
        _pipeline_without_gateway,
    ),
    *(
        Case(f"load-{name}", _load(*argv), ExitStatus.USAGE, message)
        for name, argv, message in (
            (
                "zero-clients",
                ("--clients", "0", "--rate", "100", "--duration", "1"),
                r"--clients 0 is invalid: expected 1\.\.256",
            ),
            (
                "too-many-clients",
                ("--clients", "1000", "--rate", "100", "--duration", "1"),
                r"--clients 1000 is invalid: expected 1\.\.256",
            ),
            (
                "rate-zero",
                ("--clients", "1", "--rate", "0", "--duration", "1"),
                r"--rate 0 is invalid: expected 0\.001\.\.1e\+07",
            ),
            (
                "rate-nan",
                ("--clients", "1", "--rate", "nan", "--duration", "1"),
                r"--rate nan is invalid",
            ),
            (
                "duration-negative",
                ("--clients", "1", "--rate", "10", "--duration", "-1"),
                r"--duration -1 is invalid: expected 0\.001\.\.3600",
            ),
            (
                "fewer-accounts-than-clients",
                ("--clients", "3", "--rate", "10", "--duration", "1", "--accounts", "1,2"),
                r"--accounts names 2 account\(s\) for 3 clients: each client needs its own",
            ),
            (
                "accounts-not-numbers",
                ("--clients", "1", "--rate", "10", "--duration", "1", "--accounts", "1,bob"),
                r"--accounts '1,bob': 'bob' is not an account number",
            ),
        )
    ),
    Case(
        "load-without-rate",
        lambda tmp: ["load", "--clients", "1", "--duration", "1"],
        ExitStatus.USAGE,
        r"the following arguments are required: --rate",
    ),
    Case(
        "keys-new-over-existing-files",
        lambda tmp: ["keys", "new", "alice", "--accounts", "1", "--dir", str(tmp)],
        ExitStatus.USAGE,
        r"alice\.key already exists: keys are never overwritten",
        _keys_made,
    ),
    Case(
        "keys-new-client-without-accounts",
        lambda tmp: ["keys", "new", "bob", "--dir", str(tmp)],
        ExitStatus.USAGE,
        r"a client key needs the accounts it may trade \(--accounts 1,2\)",
    ),
    Case(
        "keys-new-server-with-accounts",
        lambda tmp: ["keys", "new", "gw", "--server", "--accounts", "1", "--dir", str(tmp)],
        ExitStatus.USAGE,
        r"a server key trades no account: leave out --accounts with --server",
    ),
    Case(
        "keys-new-bad-accounts",
        lambda tmp: ["keys", "new", "bob", "--accounts", "1,0", "--dir", str(tmp)],
        ExitStatus.USAGE,
        r"accounts '1,0': account 0 is out of range 1\.\.4294967295",
    ),
    Case(
        "keys-new-name-with-a-slash",
        lambda tmp: ["keys", "new", "../bob", "--accounts", "1", "--dir", str(tmp)],
        ExitStatus.USAGE,
        r"key name '\.\./bob': use 1\.\.64 letters",
    ),
    Case(
        "keys-new-missing-directory",
        lambda tmp: ["keys", "new", "bob", "--accounts", "1", "--dir", str(tmp / "nope")],
        ExitStatus.USAGE,
        r"key directory .*nope does not exist: create it first or name another --dir",
    ),
    Case(
        "keys-new-read-only-directory",
        lambda tmp: ["keys", "new", "bob", "--accounts", "1", "--dir", str(tmp)],
        ExitStatus.REFUSED,
        r"cannot write keys in .*: [Pp]ermission denied",
        None,
        lambda tmp, monkeypatch: _fail_os_call("link", "bob.key_secret", errno.EACCES)(
            tmp, monkeypatch
        ),
    ),
]


CASES = (
    RUN_CASES
    + JOURNAL_CASES
    + REPLAY_CASES
    + FEED_CASES
    + CLEAN_CASES
    + VERB_CASES
    + ADMIN_CASES
    + GATEWAY_CASES
)


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
