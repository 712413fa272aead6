"""``tradepipe top``'s frames from hand-built ``PipelineStatus`` messages (no pipeline):
rates between two samples, ring fill and backlog from the ring-position contract, latency
counters found by name, and what is shown when counters or whole stages are missing."""

from __future__ import annotations

import io
import os
import sys
import termios

import pytest
from rich.console import Console

from pipeline import control_messages as m
from pipeline.commands import top
from pipeline.top_view import NO_ANSWER, format_ns, format_rate, frame, render


def reply(stage: str, records: int | None = None, *, pid: int = 100, rings=None, **counters):
    if records is not None:
        counters["records"] = records
    return m.StatusReply(
        stage=stage,
        state="running",
        pid=pid,
        core=1,
        cpu_pct=87.4,
        counters=counters,
        rings=rings or {},
    )


def pipeline(*stages: m.StatusReply) -> m.PipelineStatus:
    return m.PipelineStatus(supervisor_pid=42, stages=list(stages))


def text(previous, current, elapsed, width: int = 160) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(render(previous, current, elapsed))
    return out.getvalue()


def row(frame_, stage: str):
    return next(r for r in frame_.stages if r.stage == stage)


# --- rates -----------------------------------------------------------------------------------
def test_records_per_second_is_the_counter_difference_over_the_elapsed_time() -> None:
    before = pipeline(reply("ingest", 1_000), reply("risk", 500))
    now = pipeline(reply("ingest", 3_001_000), reply("risk", 500))
    shown = frame(before, now, 2.0)
    assert row(shown, "ingest").rate == 1_500_000
    assert row(shown, "risk").rate == 0
    assert "1.50 M/s" in text(before, now, 2.0)


def test_no_rate_on_the_first_frame_after_a_restart_or_when_the_counter_went_back() -> None:
    now = pipeline(reply("ingest", 100), reply("risk", 10, pid=7), reply("matching", 5))
    assert all(r.rate is None for r in frame(None, now, 0.0).stages)
    before = pipeline(reply("ingest", 50), reply("risk", 5, pid=6), reply("matching", 9))
    shown = frame(before, now, 1.0)
    assert row(shown, "ingest").rate == 50
    assert row(shown, "risk").rate is None  # a new process under the name
    assert row(shown, "matching").rate is None  # went back: not a rate
    assert frame(before, now, 0.0).stages[0].rate is None  # no time passed


# --- rings -----------------------------------------------------------------------------------
COMMANDS_AT_INGEST = {"commands.published": 900, "commands.capacity": 1000}
COMMANDS_AT_RISK = {
    "commands.published": 1000,  # read a moment later than ingest's report: the larger wins
    "commands.capacity": 1000,
    "commands.persistence": 700,
    "commands.risk": 950,
    "commands.output": 600,
}


def test_ring_fill_is_published_minus_the_slowest_consumer_over_capacity() -> None:
    now = pipeline(
        reply("ingest", 1, rings=COMMANDS_AT_INGEST), reply("risk", 1, rings=COMMANDS_AT_RISK)
    )
    shown = frame(None, now, 0.0)
    [ring] = shown.rings
    assert (ring.ring, ring.capacity, ring.published) == ("commands", 1000, 1000)
    assert ring.lags == {"persistence": 300, "risk": 50, "output": 400}
    assert ring.fill == pytest.approx(0.4)
    # each stage's backlog: what of its input ring it has not released
    assert row(shown, "risk").backlog == ("commands", pytest.approx(0.05))
    assert row(shown, "output").backlog is None  # it did not answer
    assert row(shown, "ingest").backlog is None  # a producer only
    screen = text(None, now, 0.0)
    assert "40 %" in screen and "commands 5 %" in screen
    assert "persistence 300, risk 50, output 400" in screen


def test_a_stage_lists_its_fullest_input_ring_and_positions_never_give_negative_fill() -> None:
    rings = {
        "events.published": 10,
        "events.capacity": 100,
        "events.risk": 20,  # reported after a later publish than the one seen here
        "checked.published": 64,
        "checked.capacity": 128,
        "checked.risk": 0,
    }
    shown = frame(None, pipeline(reply("risk", 1, rings=rings)), 0.0)
    assert row(shown, "risk").backlog == ("checked", 0.5)
    fills = {r.ring: r.fill for r in shown.rings}
    assert fills == {"checked": 0.5, "events": 0.0}
    assert [r.ring for r in shown.rings] == ["checked", "events"]  # flow order


def test_the_gateways_rings_come_first_and_last_and_its_backlog_is_the_answers_ring() -> None:
    gateway_rings = {
        "orders.published": 40,
        "orders.capacity": 64,
        "answers.published": 96,
        "answers.capacity": 128,
        "answers.gateway": 32,
    }
    ingest_rings = {"orders.ingest": 40, "commands.published": 8, "commands.capacity": 16}
    shown = frame(
        None,
        pipeline(reply("gateway", 1, rings=gateway_rings), reply("ingest", 1, rings=ingest_rings)),
        0.0,
    )
    assert [r.ring for r in shown.rings] == ["orders", "commands", "answers"]  # flow order
    assert row(shown, "gateway").backlog == ("answers", 0.5)
    assert row(shown, "ingest").backlog == ("orders", 0.0)


def test_ring_positions_missing_parts_show_dashes_and_odd_keys_are_ignored() -> None:
    rings = {"events.risk": 5, "nodot": 3, ".capacity": 9}  # no published, no capacity
    shown = frame(None, pipeline(reply("risk", 1, rings=rings)), 0.0)
    [ring] = shown.rings
    assert (ring.ring, ring.published, ring.capacity, ring.fill, ring.lags) == (
        "events", None, None, None, {},
    )  # fmt: skip
    assert row(shown, "risk").backlog is None
    text(None, pipeline(reply("risk", 1, rings=rings)), 0.0)  # renders


def test_no_ring_positions_no_rings_table() -> None:
    screen = text(None, pipeline(reply("ingest", 1)), 0.0)
    assert "rings" not in screen and "latency" in screen


# --- latency ---------------------------------------------------------------------------------
def test_ingest_to_ack_latency_and_every_hop_counter_whatever_its_name() -> None:
    now = pipeline(
        reply("output", 1, latency_p50_ns=880_000, latency_p99_ns=1_815_000),
        reply("risk", 1, hop_ingest_risk_p50_ns=1_200, hop_ingest_risk_p99_ns=41_000),
        reply("matching", 1, hop_risk_matching_p50_ns=950, hop_matching_p99_only_p99_ns=7),
    )
    latencies = {(r.name, r.stage): (r.p50_ns, r.p99_ns) for r in frame(None, now, 0.0).latencies}
    assert latencies == {
        ("ingest → ack", "output"): (880_000, 1_815_000),
        ("ingest_risk", "risk"): (1_200, 41_000),
        ("risk_matching", "matching"): (950, None),
        ("matching_p99_only", "matching"): (None, 7),
    }
    screen = text(None, now, 0.0)
    for shown in ("880 µs", "1.81 ms", "1.20 µs", "41.0 µs", "950 ns", "ingest_risk"):
        assert shown in screen


def test_missing_latency_counters_and_empty_histograms_are_dashes() -> None:
    shown = frame(None, pipeline(reply("output", 1, latency_p50_ns=0, latency_p99_ns=0)), 0.0)
    assert [(r.name, r.p50_ns, r.p99_ns) for r in shown.latencies] == [("ingest → ack", None, None)]
    shown = frame(None, pipeline(reply("ingest", 1)), 0.0)
    assert [(r.name, r.stage) for r in shown.latencies] == [("ingest → ack", "-")]


# --- stages ----------------------------------------------------------------------------------
def test_stages_in_flow_order_an_absent_one_says_so_and_an_unknown_one_is_kept() -> None:
    now = pipeline(reply("output", 1), reply("gateway", 3), reply("ingest", 2))
    shown = frame(None, now, 0.0)
    assert [r.stage for r in shown.stages] == [
        "ingest", "risk", "matching", "persistence", "output", "gateway",
    ]  # fmt: skip
    assert row(shown, "risk").state == NO_ANSWER and row(shown, "risk").pid is None
    screen = text(None, now, 0.0)
    assert "no answer" in screen and "gateway" in screen
    assert "supervisor pid 42" in screen


def test_a_stage_without_a_records_counter_shows_dashes() -> None:
    screen = text(None, pipeline(reply("ingest")), 0.0)
    ingest = next(line for line in screen.splitlines() if "ingest" in line and "running" in line)
    assert ingest.count("-") >= 3  # records, records/s, backlog


def test_no_stage_answered_yet() -> None:
    shown = frame(None, pipeline(), 0.0)
    assert {r.state for r in shown.stages} == {NO_ANSWER}
    text(None, pipeline(), 0.0)  # renders


# --- units -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ns", "shown"),
    [
        (None, "-"),
        (850, "850 ns"),
        (1_000, "1.00 µs"),
        (12_345, "12.3 µs"),
        (999_999, "1000 µs"),
        (4_560_000, "4.56 ms"),
        (2_100_000_000, "2.10 s"),
    ],
)
def test_format_ns(ns: int | None, shown: str) -> None:
    assert format_ns(ns) == shown


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (None, "-"),
        (0, "0 /s"),
        (512.4, "512 /s"),
        (1_500, "1.5 k/s"),
        (830_000, "830 k/s"),
        (1_250_000, "1.25 M/s"),
    ],
)
def test_format_rate(rate: float | None, shown: str) -> None:
    assert format_rate(rate) == shown


# --- the keyboard ----------------------------------------------------------------------------
@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch):
    """A pseudo-terminal as standard input; yields (the fd that types into it, stdin's fd)."""
    master, slave = os.openpty()
    try:
        with open(slave, encoding="utf-8") as stdin:  # closes the slave end
            monkeypatch.setattr(sys, "stdin", stdin)
            yield master, slave
    finally:
        os.close(master)


def test_q_quits_at_once_in_cbreak_mode_and_the_terminal_mode_comes_back(terminal) -> None:
    master, slave = terminal
    before = termios.tcgetattr(slave)
    with top._keyboard() as quit_within:
        during = termios.tcgetattr(slave)
        assert not during[3] & termios.ICANON and not during[3] & termios.ECHO
        os.write(master, b"xq")  # another key first: ignored
        assert quit_within(60.0)  # returns as soon as q is read, long before the bound
    assert termios.tcgetattr(slave) == before


def test_the_terminal_mode_comes_back_when_the_view_fails(terminal) -> None:
    _, slave = terminal
    before = termios.tcgetattr(slave)
    with pytest.raises(KeyboardInterrupt), top._keyboard():
        raise KeyboardInterrupt  # Ctrl-C while drawing
    assert termios.tcgetattr(slave) == before


def test_standard_input_that_is_not_a_terminal_is_left_alone(monkeypatch) -> None:
    stdin = io.StringIO("q")
    monkeypatch.setattr(sys, "stdin", stdin)
    with top._keyboard() as quit_within:
        assert not quit_within(0.0)  # a "q" there is data, not a key
    assert stdin.read() == "q"


def test_the_stages_hop_names_read_as_arrows_and_ingest_to_ack_is_shown_once() -> None:
    now = pipeline(
        reply(
            "output",
            1,
            latency_p50_ns=900,
            latency_p99_ns=2_000,
            hop_ingest_to_ack_p50_ns=900,
            hop_ingest_to_ack_p99_ns=2_000,
            hop_ingest_to_match_p50_ns=300,
            hop_ingest_to_match_p99_ns=600,
        ),
        reply("persistence", 1, hop_ingest_to_durable_p50_ns=500, hop_ingest_to_durable_p99_ns=9),
    )
    rows = [(r.name, r.stage) for r in frame(None, now, 0.0).latencies]
    assert rows == [
        ("ingest → ack", "output"),
        ("ingest → durable", "persistence"),
        ("ingest → match", "output"),
    ]
