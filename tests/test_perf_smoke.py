"""Every benchmark still runs: each ``perf/bench_*.py`` in its smallest mode (``--smoke``).

A bench is a script nothing else imports, so a change to the package it measures can break
it unnoticed until someone wants figures. Each runs here as ``make bench`` runs it, in a
subprocess, and must exit 0 and write JSON with the keys ``perf/README.md`` documents. The
figures of a smoke run mean nothing and are not checked beyond being numbers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parent.parent / "perf"

#: Seconds one smoke run may take: most of it is numba compiling on an empty cache.
TIMEOUT = 540


def positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def check_ring(data: dict) -> None:
    rows = data["results"]
    for row in rows:
        assert set(row) == {
            "transport",
            "mode",
            "records_per_s",
            "p50_us",
            "p99_us",
            "p999_us",
            "idle_cpu_pct",
            "runs",
            "records",
        }
    ours = {row["mode"]: row for row in rows if row["transport"] == "tradepipe"}
    assert set(ours) == {"single", "batch256", "latency_default", "latency_spin"}
    for row in rows:
        if row["mode"] in ("single", "batch256"):
            assert positive(row["records_per_s"])
        else:
            assert all(positive(row[k]) for k in ("p50_us", "p99_us", "p999_us"))
    assert ours["latency_default"]["idle_cpu_pct"] >= 0
    peers = {row["transport"] for row in rows} - {"tradepipe"}
    assert {"mp_queue", "mp_pipe", "zmq_ipc"} <= peers


def check_matching(data: dict) -> None:
    rows = data["results"]
    assert {(r["engine"], r["symbols"]) for r in rows} == {
        (engine, symbols) for engine in ("tradepipe", "reference") for symbols in (1, 100)
    }
    for row in rows:
        assert set(row) == {
            "engine",
            "symbols",
            "orders_per_s",
            "orders",
            "rejected",
            "seconds_median",
            "x_reference",
        }
        assert positive(row["orders_per_s"]) and positive(row["x_reference"])
    assert data["first_call_s"]["cold"] is None  # --smoke skips the empty-cache compile
    assert positive(data["first_call_s"]["cached"])


def check_risk(data: dict) -> None:
    rows = data["results"]
    assert [r["what"] for r in rows] == [
        "risk pre-trade checks",
        "risk pre + post-trade",
        "matching alone",
        "Engine (whole chain)",
    ]
    for row in rows:
        assert set(row) == {"what", "orders_per_s", "seconds_median", "x_matching", "orders"}
        assert positive(row["orders_per_s"])
    assert positive(data["engine_over_matching"])
    assert isinstance(data["rejected"], int)


def check_journal(data: dict) -> None:
    rows = data["results"]
    assert {(r["fsync"], r["batch"]) for r in rows} == {
        (policy, batch) for policy in ("batch", "interval", "never") for batch in (64, 1024, 16384)
    }
    for row in rows:
        assert set(row) == {"fsync", "batch", "records_per_s", "mb_per_s", "records"}
        assert positive(row["records_per_s"]) and positive(row["mb_per_s"])
    peers = data["peers"]
    assert [p["peer"] for p in peers[:2]] == ["raw", "raw+fsync"]
    assert all(positive(p["mb_per_s"]) for p in peers[:2])
    assert [p["batch"] for p in peers[2:]] == [64, 1024, 16384]
    assert all(p["peer"] == "raw per-batch fsync" for p in peers[2:])
    assert all(positive(p["records_per_s"]) for p in peers[2:])


def check_feeds(data: dict) -> None:
    figures = {
        "itch_frame",
        "itch_parse",
        "itch_parse_file",
        "python_struct_parse",
        "itch_replay",
        "lobster_replay",
        "lobster_replay_no_output",
    }
    assert set(data) == figures | {"itch_messages", "lobster_messages", "run_info"}
    assert all(positive(data[key]) for key in figures)
    assert positive(data["itch_messages"]) and positive(data["lobster_messages"])


def check_pipeline(data: dict) -> None:
    rows = data["results"]
    wirings = ("tradepipe", "zmq", "mp_queue", "inprocess")
    cases = {
        ("throughput", "batch"),
        ("throughput", "never"),
        ("latency", "never"),
        ("latency", "batch"),
    }
    assert {(r["wiring"], r["mode"], r["fsync"]) for r in rows} == {
        (wiring, mode, fsync) for wiring in wirings for mode, fsync in cases
    }
    for row in rows:
        assert set(row) == {
            "wiring", "mode", "fsync", "orders_per_s", "p50_us", "p99_us", "p999_us", "cpu_pct",
        }  # fmt: skip
        assert all(positive(row[k]) for k in ("orders_per_s", "p50_us", "p99_us", "p999_us"))
        cpu = row["cpu_pct"]  # CPU times are clock ticks: a smoke run may use none
        assert cpu is None or (isinstance(cpu, int | float) and math.isfinite(cpu) and cpu >= 0)
    assert set(data["ratios"]) == {f"{mode}_{fsync}" for mode, fsync in cases}
    assert data["idle_cpu_pct"] >= 0


def check_market_data(data: dict) -> None:
    rows = data["results"]
    assert {(r["case"], r["symbols"]) for r in rows} == {
        (case, symbols) for case in ("build", "build+encode", "matching") for symbols in (1, 100)
    }
    for row in rows:
        assert set(row) == {
            "case", "symbols", "levels", "commands", "events", "messages", "events_per_s",
            "us_per_event", "seconds_median", "x_matching_time",
        }  # fmt: skip
        assert positive(row["events_per_s"]) and positive(row["us_per_event"])
    assert all(r["messages"] > 0 for r in rows if r["case"] != "matching")


def check_recovery(data: dict) -> None:
    (row,) = data["results"]
    assert set(row) == {"stage", "orders", "answered_at_kill", "rebuild_s", "back_s"}
    assert all(positive(row[k]) for k in ("orders", "answered_at_kill", "rebuild_s", "back_s"))


def check_gateway(data: dict) -> None:
    rows = data["results"]
    assert [(r["case"], r["clients"]) for r in rows] == [
        ("throughput", 1), ("throughput", 2), ("throughput", 4), ("rtt_10k", 1), ("rtt_50k", 2),
        ("echo_rtt_10k", 1), ("echo_throughput", 1), ("md_after_ack", 1),
    ]  # fmt: skip
    rtt_fields = {"case", "clients", "orders_per_s", "rtt_p50_us", "rtt_p99_us", "rtt_p999_us"}
    cpu_fields = {"cpu_gateway_us", "cpu_stages_us", "cpu_clients_us", "cpu_total_us"}
    *loads, md = rows
    for row in loads:
        through_pipeline = not row["case"].startswith("echo")
        assert set(row) == rtt_fields | (cpu_fields if through_pipeline else set())
        assert all(positive(row[k]) for k in ("orders_per_s", "rtt_p50_us", "rtt_p99_us"))
        assert positive(row["rtt_p999_us"])
        if through_pipeline:  # CPU per order by role, and their sum
            assert all(positive(row[k]) for k in cpu_fields)
            parts = ("cpu_gateway_us", "cpu_stages_us", "cpu_clients_us")
            assert row["cpu_total_us"] == pytest.approx(sum(row[k] for k in parts))
    md_fields = {"md_after_ack_p50_us", "md_after_ack_p99_us", "md_after_ack_p999_us",
                 "send_to_ack_p50_us", "send_to_md_p50_us", "ingest_to_md_p50_us", "probes"}  # fmt: skip
    assert set(md) == rtt_fields | md_fields
    assert all(md[k] is None for k in ("orders_per_s", "rtt_p50_us", "rtt_p99_us", "rtt_p999_us"))
    # md after the ack may be negative (md first); the rest are spans of time and a count
    assert md["md_after_ack_p50_us"] <= md["md_after_ack_p99_us"] <= md["md_after_ack_p999_us"]
    assert all(positive(md[k]) for k in md_fields - {"md_after_ack_p50_us",
               "md_after_ack_p99_us", "md_after_ack_p999_us"})  # fmt: skip
    assert set(data["ratios"]) == {"rtt_10k_p50_over_echo", "throughput_2_over_echo"}
    assert all(positive(v) for v in data["ratios"].values())
    assert data["fsync"] == "batch"


def check_gateway_core(data: dict) -> None:
    (row,) = data["results"]
    parts = {"take_in_us", "reports_us", "market_data_us", "encode_us"}
    assert set(row) == parts | {"total_us", "requests"}
    assert all(positive(row[k]) for k in parts | {"total_us", "requests"})
    assert row["total_us"] == pytest.approx(sum(row[k] for k in parts))


CHECKS = {
    "ring": check_ring,
    "matching": check_matching,
    "risk": check_risk,
    "journal": check_journal,
    "feeds": check_feeds,
    "pipeline": check_pipeline,
    "recovery": check_recovery,
    "market_data": check_market_data,
    "gateway": check_gateway,
    "gateway_core": check_gateway_core,
}


def test_every_bench_is_checked():
    assert {p.stem.removeprefix("bench_") for p in PERF.glob("bench_*.py")} == set(CHECKS)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 60)
@pytest.mark.parametrize("bench", list(CHECKS))
def test_bench_smoke(bench, tmp_path):
    out = tmp_path / f"{bench}.json"
    extra = ["--dir", str(tmp_path)] if bench == "journal" else []
    done = subprocess.run(
        [sys.executable, str(PERF / f"bench_{bench}.py"), "--smoke", "--json", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"bench_{bench}.py --smoke failed:\n{done.stderr[-4000:]}"
    data = json.loads(out.read_text(), parse_constant=pytest.fail)
    info = data["run_info"]
    assert (info["bench"], info["mode"], info["runs"]) == (bench, "smoke", 1)
    CHECKS[bench](data)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("cpus", "says"),
    [
        ("nope=0", "unknown stage 'nope'"),
        ("gateway=4096", "no core 4096"),
        ("gateway", "'gateway' is not STAGE=CORE"),
        ("gateway=x", "'gateway=x' is not STAGE=CORE"),
    ],
)
def test_bench_gateway_refuses_a_bad_cpus_before_starting_anything(cpus, says):
    """``--cpus`` is checked as ``[pipeline] cpus`` is: a usage error (exit 2) naming what
    is wrong, one line after argparse's usage, no traceback, no pipeline started."""
    done = subprocess.run(
        [sys.executable, str(PERF / "bench_gateway.py"), "--smoke", "--cpus", cpus],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("bench_gateway.py: error: argument --cpus:") and says in last
    assert "Traceback" not in done.stderr and not done.stdout
