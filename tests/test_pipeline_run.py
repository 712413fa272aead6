"""``tradepipe run`` and ``tradepipe replay --journal``: config, the main job, recovery checks."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from pipeline.cli import build_parser, main
from pipeline.commands import run as run_command
from pipeline.config import ConfigError, RunConfig, load_config
from pipeline.control import (
    CONTROL_SOCKET,
    MANIFEST,
    ControlServer,
    PipelineManifest,
    find_pipeline,
    prepare_run_dir,
    write_manifest,
)
from pipeline.exitcodes import ExitStatus
from pipeline.inprocess import ReplayCheck, RunReport
from ringbuffer.segments import SHM_DIR, create_segment, segment_name, unlink_segment
from stages.persistence.journal_segments import list_segments
from stages.persistence.journal_writer import JournalWriter
from stages.records import COMMAND_DTYPE
from tests.builders import commands


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "run.toml"
    journal, snapshots = tmp_path / "journal", tmp_path / "snapshots"
    path.write_text(
        f'[journal]\ndirectory = "{journal}"\n[snapshots]\ndirectory = "{snapshots}"\n'
        f"every_records = 3000\n{body}"
    )
    return path


def test_no_file_gives_the_embedded_defaults():
    config = load_config(None)
    assert config == RunConfig()
    assert config.journal.fsync == "batch"
    assert [i.name for i in config.engine.risk.instruments] == ["BTC-USD", "ETH-USD"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[load]\norders = 0\n", r"Expected `int` >= 1 - at `\$.load.orders`"),
        (
            '[journal]\nfsync = "sometimes"\n',
            r"Invalid enum value 'sometimes' - at `\$.journal.fsync`",
        ),
        ("[lod]\norders = 5\n", "unknown field `lod`"),
        ("[engine.risk]\nmax_accounts = 1\n", r"max_accounts = 1 is invalid: expected 2..2\*\*24"),
        ("[load\n", "is not valid TOML"),
        # values the engine would refuse later, out of sight (issue 10 item 6)
        (
            "[load]\naccounts = 5000\n",
            r"load.accounts = 5000 does not fit engine.risk.max_accounts = 1024 .* "
            r"raise max_accounts above 5000 or lower accounts - at `\$.load.accounts`",
        ),
        (
            "[engine.risk]\nmax_accounts = 2\n",
            r"load.accounts = 1000 does not fit engine.risk.max_accounts = 2 .*"
            r"- at `\$.load.accounts`",
        ),
        ("[load]\naccounts = 1024\n", r"load.accounts = 1024 does not fit"),
        (
            "[load]\nfunding = 4611686018427387904\n",
            r"<= 2305843009213693952 - at `\$.load.funding`",
        ),
        ("[load]\norders = 9223372036854775807\n", r"<= 4611686018427387904 - at `\$.load.orders`"),
        ("[load]\nbatch = 2000000\n", r"<= 1048576 - at `\$.load.batch`"),
        ("[load]\nseed = -1\n", r"Expected `int` >= 0 - at `\$.load.seed`"),
        (
            "[engine.risk]\ninstruments = []\n",
            r"instruments is empty: .* - at `\$.engine.risk.instruments`",
        ),
        (
            "[[engine.risk.instruments]]\nsymbol = 1\nbase = 1\nquote = 0\n"
            "price_band_low = 10\nprice_band_high = 5\n",
            r"price_band_high = 5 is invalid: expected >= price_band_low \(10\) - at "
            r"`\$.engine.risk.instruments\[0\].price_band_high`",
        ),
        (
            "[[engine.risk.instruments]]\nsymbol = 1\nbase = 1\nquote = 0\n"
            "max_qty = 4611686018427387905\n",
            r"- at `\$.engine.risk.instruments\[0\].max_qty`",
        ),
        ("[journal]\nfsync_interval_ms = inf\n", r"<= 60000.0 - at `\$.journal.fsync_interval_ms`"),
        ("[journal]\nfsync_interval_ms = nan\n", r"- at `\$.journal.fsync_interval_ms`"),
    ],
)
def test_bad_config_names_the_file_and_the_field(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.timeout(300)
def test_run_journals_snapshots_and_proves_recovery(tmp_path, capsys):
    config = write_config(tmp_path, "[load]\norders = 20000\nbatch = 500\naccounts = 50\n")
    assert main(["run", str(config), "--inprocess"]) == 0
    out = capsys.readouterr().out
    assert "orders processed" in out and "20,000" in out
    assert out.count("match") == 2, out  # restart and audit replays both match
    assert "DIFFERS" not in out
    assert list((tmp_path / "journal").iterdir())
    assert len(list((tmp_path / "snapshots").iterdir())) >= 2

    # the same journal replays to the same hash through the CLI
    hashes = []
    for extra in ([], ["--from-start"]):
        assert (
            main(
                [
                    "replay",
                    "--journal",
                    str(tmp_path / "journal"),
                    "--snapshots",
                    str(tmp_path / "snapshots"),
                    *extra,
                ]
            )
            == 0
        )
        hashes.append(capsys.readouterr().out.strip().splitlines()[-1])
    assert hashes[0] == hashes[1] and hashes[0].startswith("state hash ")

    # a flipped bit before the tail stops the replay with the file and offset, never skipped
    segment = sorted((tmp_path / "journal").iterdir())[0]
    data = bytearray(segment.read_bytes())
    data[len(data) // 3] ^= 0x10
    segment.write_bytes(bytes(data))
    assert main(["replay", "--journal", str(tmp_path / "journal"), "--from-start"]) == 1
    error = capsys.readouterr().err
    assert str(segment) in error and "offset" in error


@pytest.mark.timeout(300)
def test_run_refuses_to_mix_runs_without_fresh(tmp_path, capsys):
    config = write_config(tmp_path, "[load]\norders = 1000\n")
    assert main(["run", str(config), "--inprocess"]) == 0
    capsys.readouterr()
    assert main(["run", str(config), "--inprocess"]) == 2
    assert "already holds a run; pass --fresh" in capsys.readouterr().err
    assert main(["run", str(config), "--inprocess", "--fresh", "--orders", "500"]) == 0


def test_replay_of_a_missing_or_corrupt_journal_fails_clearly(tmp_path, capsys):
    # a path that is not a journal is a usage error (2), as for journal verify
    assert main(["replay", "--journal", str(tmp_path / "none")]) == 2
    assert "tradepipe replay:" in capsys.readouterr().err
    assert main(["replay"]) == 2
    assert "--journal DIR" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("[engine]\nsettle_evry = 5\n", "settle_evry"),
        ("[engine.risk]\nmax_acounts = 5\n", "max_acounts"),
        ("[[engine.risk.instruments]]\nsymbol = 1\nbase = 1\nquote = 0\ntick = 5\n", "tick"),
        ("[engine.throttle]\norders = { rate = 1, brust = 2 }\n", "brust"),
    ],
)
def test_a_misspelt_engine_key_is_refused_not_ignored(tmp_path, body, where):
    path = tmp_path / "typo.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=f"unknown field `{where}`"):
        load_config(path)


def test_a_partial_section_merges_into_the_defaults_key_by_key(tmp_path):
    path = tmp_path / "partial.toml"
    path.write_text(
        "[engine]\nsettle_every = 512\n[engine.risk]\n"
        "default_limits = { max_order_qty = 50 }\n[engine.throttle]\norders = { rate = 5 , burst = 9 }\n"
    )
    config = load_config(path)
    defaults = RunConfig()
    assert config.engine.settle_every == 512
    risk = config.engine.risk
    assert [i.name for i in risk.instruments] == ["BTC-USD", "ETH-USD"]
    assert risk.instruments == defaults.engine.risk.instruments  # fees included
    assert risk.assets == defaults.engine.risk.assets and len(risk.assets) == 3
    assert risk.order_capacity == defaults.engine.risk.order_capacity == 1 << 18
    assert config.engine.matching_order_capacity == 1 << 18
    assert risk.default_limits.max_order_qty == 50 and risk.default_limits.max_position == 0
    assert config.engine.throttle.orders.burst == 9
    assert config.engine.throttle.cancels == defaults.engine.throttle.cancels
    assert config.load == defaults.load and config.journal == defaults.journal


def test_the_largest_accepted_values_load(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text(
        "[load]\naccounts = 1023\nfunding = 2254000986523650\norders = 4611686018427387904\n"
        "seed = 0\n[journal]\nfsync_interval_ms = 60000.0\n"
    )
    config = load_config(path)
    assert config.load.accounts == config.engine.risk.max_accounts - 1


def test_unreadable_config_files_are_named(tmp_path):
    undecodable = tmp_path / "latin1.toml"
    undecodable.write_bytes(b"[load]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 0xe9 on line 2\)"):
        load_config(undecodable)
    with pytest.raises(ConfigError, match=r"config file .* is a directory: name a TOML file"):
        load_config(tmp_path)


@pytest.mark.timeout(300)
def test_ctrl_c_says_how_far_the_journal_is_durable(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path, "[load]\norders = 20000\nbatch = 500\naccounts = 50\n")
    real_run = run_command.run_in_process

    def interrupted_after_three_batches(config, progress):  # Ctrl-C, at a known point
        batches = 0

        def count(done, total):
            nonlocal batches
            progress(done, total)
            batches += 1
            if batches == 3:
                raise KeyboardInterrupt

        return real_run(config, count)

    monkeypatch.setattr(run_command, "run_in_process", interrupted_after_three_batches)
    assert main(["run", str(config), "--inprocess"]) == ExitStatus.INTERRUPTED
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 1, err
    funding = 50 * 3  # a deposit per account and asset, before the orders
    assert "interrupted after 1,500 of 20,000 orders" in err[0]
    assert f"holds records up to seq {funding + 1500:,}, durable (fsync batch)" in err[0]
    assert f"tradepipe journal verify {tmp_path / 'journal'}" in err[0]


def test_run_help_is_plain_text_and_says_what_fresh_removes(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = capsys.readouterr().out
    assert "``" not in text and "multiprocess" not in text
    flat = " ".join(text.split())
    assert "By default one pinned process per stage" in flat
    assert "With --inprocess the whole chain runs in this one process" in flat
    for removed in ("segments (*.tpj)", "writer.lock", "snapshots (snapshot-*.tps)"):
        assert removed in flat
    assert "No directory and no other file is ever deleted" in flat
    assert "refused (exit 2, naming what is there)" in flat
    assert "a journal a live run has open (exit 4)" in flat


@pytest.mark.timeout(300)
def test_snapshots_refused_by_a_full_disk_are_one_warning_line_each(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path, "[load]\norders = 10000\nbatch = 500\naccounts = 50\n")
    real_write = os.write

    def write(fd, data):  # the periodic snapshots (not the initial one) meet a full disk
        name = os.readlink(f"/proc/self/fd/{fd}")
        if "snapshot-" in name and "snapshot-00000000000000000000" not in name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    # the journal holds it all: recovery still proves
    assert main(["run", str(config), "--inprocess"]) == 0
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line]
    assert err and all(line.startswith("warning: snapshot at seq ") for line in err), err
    assert "not saved" in captured.out


def test_the_interrupt_note_reads_the_end_of_the_journal(tmp_path):
    config = load_config(write_config(tmp_path, ""))
    assert "nothing was journaled" in run_command.durable_note(config)
    with JournalWriter(tmp_path / "journal", COMMAND_DTYPE, segment_bytes=4096) as writer:
        writer.append(commands(1, 30))
        writer.append(commands(31, 40))
    assert "holds records up to seq 70, durable" in run_command.durable_note(config)
    last = list_segments(tmp_path / "journal")[-1]
    os.truncate(last, last.stat().st_size - 3)
    note = run_command.durable_note(config)
    assert "holds records up to seq 30, durable (fsync batch) and a torn last append" in note


def test_a_replay_that_differs_fails_with_one_line(tmp_path, capsys, monkeypatch):
    def differing_run(config, progress):
        report = RunReport(state_hash="live")
        report.checks["audit"] = ReplayCheck(0, 10, 0.1, "rebuilt")
        return report

    monkeypatch.setattr(run_command, "run_in_process", differing_run)
    assert main(["run", str(write_config(tmp_path, "")), "--inprocess"]) == ExitStatus.FAILED
    captured = capsys.readouterr()
    assert "DIFFERS" in captured.out
    err = [line for line in captured.err.splitlines() if line]
    assert len(err) == 1 and "rebuilt another state than the live one" in err[0], err


# --- the default run: the stage processes --------------------------------------------------
def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.timeout(300)
def test_the_default_run_is_the_pipeline_and_first_removes_what_a_dead_one_left(tmp_path, capsys):
    """``tradepipe run`` without a flag runs the stage processes; before it starts, the
    manifest, sockets and rings a killed supervisor left in its run directory go."""
    run_dir = prepare_run_dir(tmp_path / "rd")
    dead = _dead_pid()
    ring = segment_name(f"t{os.getpid()}-commands", dead)
    create_segment(ring, 4096).close()
    try:
        write_manifest(run_dir, PipelineManifest(dead, 0, "ipc://x/a", "ipc://x/b", (ring,)))
        (run_dir / CONTROL_SOCKET).write_bytes(b"")
        config = write_config(
            tmp_path, f'[load]\norders = 2000\naccounts = 40\n[pipeline]\nrun_dir = "{run_dir}"\n'
        )
        assert main(["run", str(config)]) == 0
    finally:
        unlink_segment(ring)
    out = capsys.readouterr().out
    flat = " ".join(out.split())  # long lines wrap
    assert "through five stage processes" in flat
    assert f"removed what a dead pipeline left: 3 file(s) and ring(s) ({ring}, " in flat
    assert not (SHM_DIR / ring).exists()
    for title in ("run summary", "stages", "recovery checks"):
        assert title in out
    checks = [line for line in out.splitlines() if line.startswith("│ replay (")]
    assert checks and all(line.rstrip(" │").endswith("match") for line in checks), checks
    assert "DIFFERS" not in out
    assert list(run_dir.iterdir()) == []  # the supervisor removed its own files too


@pytest.mark.timeout(60)
def test_the_default_run_refuses_a_live_pipelines_run_dir_before_deleting_anything(
    tmp_path, capsys
):
    run_dir = tmp_path / "rd"
    config = write_config(tmp_path, f'[load]\norders = 1000\n[pipeline]\nrun_dir = "{run_dir}"\n')
    assert main(["run", str(config), "--inprocess"]) == 0
    segments = list_segments(tmp_path / "journal")
    capsys.readouterr()
    with ControlServer(run_dir) as server:
        assert main(["run", str(config), "--fresh"]) == ExitStatus.REFUSED
        err = capsys.readouterr().err
        assert f"a pipeline is running in {run_dir} (supervisor pid {os.getpid()})" in err
        assert (run_dir / MANIFEST).exists() and find_pipeline(run_dir) == server.manifest
    assert list_segments(tmp_path / "journal") == segments  # --fresh deleted nothing


class _Hist:
    """An HdrHistogram's reading side, with fixed answers."""

    def __init__(self, count: int, p50: int, p99: int, p999: int, top: int) -> None:
        self.count, self.values, self.top = count, {50: p50, 99: p99, 99.9: p999}, top

    def get_total_count(self) -> int:
        return self.count

    def get_value_at_percentile(self, p: float) -> int:
        return self.values[p]

    def get_max_value(self) -> int:
        return self.top


def _pipeline_report(*, cpu: bool, hops: bool) -> object:
    from pipeline.supervisor import PipelineReport, StageReport

    report = PipelineReport(commands=1000, seconds=2.0, state_hash="ab" * 16)
    report.checks["journal, in-process Engine"] = ReplayCheck(0, 1000, 0.1, "ab" * 16)
    for core, name in enumerate(("ingest", "risk")):
        stage = StageReport(name, 100 + core, core, 1000, 4, 500_000_000, "end_of_stream")
        if cpu:
            object.__setattr__(stage, "cpu_seconds", 1.5)  # before StageReport has it
        report.stages[name] = stage
    if hops:
        report.hops = {  # type: ignore[attr-defined]
            "ingest→ack": _Hist(1000, 900_000, 1_800_000, 6_000_000, 25_000_000),
            "ingest→risk": _Hist(1000, 12_000, 40_000, 90_000, 120_000),
            "ingest→durable": _Hist(0, 0, 0, 0, 0),
        }
    return report


@pytest.mark.parametrize(("cpu", "hops"), [(True, True), (False, False)])
def test_the_pipeline_summary_shows_stages_hops_and_checks_with_what_it_has(
    cpu: bool, hops: bool
) -> None:
    from rich.console import Console

    from pipeline.summary import print_report

    console = Console(record=True, width=160)
    print_report(console, _pipeline_report(cpu=cpu, hops=hops))
    out = console.export_text()
    order = ["run summary", "stages", "recovery checks"]
    assert [out.index(title) for title in order] == sorted(out.index(t) for t in order)
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 2}
    assert "500" in rows["ingest"] and "25 %" in rows["ingest"]  # records/s, busy %
    assert ("75 %" in rows["ingest"]) == cpu and ("CPU %" in out.replace("CPU busy %", "")) == cpu
    assert ("latency by hop" in out) == hops
    if hops:
        assert out.index("ingest→risk") < out.index("ingest→durable") < out.index("ingest→ack")
        assert "12 µs" in rows["ingest→risk"] and "25 ms" in rows["ingest→ack"]
        assert "—" in rows["ingest→durable"]
    check = rows["replay (journal, in-process Engine)"]
    assert all(cell in check for cell in ("│        0 │", "1,000", "0.10 s", "match"))
