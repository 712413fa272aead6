"""Operator commands end to end, short of a real pipeline.

* ``stages.ingest.admin`` through the in-process Engine: each record is what the engine
  understands (its event, and its effect on the next order), and values that cannot be
  encoded are refused before anything is sequenced.
* The verbs of a running pipeline (``tradepipe halt`` ... ``deposit``, ``top``) against a
  fake supervisor: a ``ControlServer`` in a thread whose client handler records each
  request and answers as the supervisor would. (Bad inputs are in test_cli_bad_input.py.)
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline import control_messages as m
from pipeline.cli import main
from pipeline.control import ControlServer
from pipeline.exitcodes import ExitStatus
from stages.engine import Engine
from stages.ingest import admin
from stages.ingest.synthetic import Stamper
from stages.records import COMMAND_DTYPE, CommandType, EventType, Reason, Side
from tests.risk_builders import BTC, BTCUSD, USD, commands, deposit, new

ALICE, BOB = 1, 2


class Venue:
    """An Engine with Alice and Bob funded, fed through ingest's stamp like the pipeline."""

    def __init__(self) -> None:
        self.engine = Engine()
        self.stamper = Stamper()
        self.next_order_id = 1
        for account in (ALICE, BOB):
            self.process(commands(deposit(0, account, USD, 10**6), deposit(0, account, BTC, 100)))

    def process(self, records: np.ndarray) -> np.ndarray:
        """Stamp and process ``records``; a copy of the events (the engine's are a view)."""
        return self.engine.process(self.stamper.stamp(records)).copy()

    def order(self, account: int, side: Side = Side.BUY, price: int = 100) -> np.ndarray:
        """A one-lot limit order of ``account``; its events."""
        order_id, self.next_order_id = self.next_order_id, self.next_order_id + 1
        return self.process(commands(new(0, order_id, account, side, price, 1)))


def _only(events: np.ndarray, kind: EventType) -> np.ndarray:
    return events[events["kind"] == kind]


def _rejected_for(events: np.ndarray) -> Reason | None:
    rejected = _only(events, EventType.REJECTED)
    return Reason(int(rejected["reason"][0])) if len(rejected) else None


@pytest.mark.parametrize(
    "record",
    [
        admin.halt(1),
        admin.resume(1),
        admin.kill_switch(3),
        admin.kill_switch(None, release=True),
        admin.deposit(3, 1, 5),
    ],
    ids=["halt", "resume", "kill", "release-all", "deposit"],
)
def test_each_is_one_unsequenced_command_record(record: np.ndarray) -> None:
    assert record.dtype == COMMAND_DTYPE and record.shape == (1,)
    assert record["seq"][0] == 0 and record["ts_ingest"][0] == 0  # ingest stamps them


def test_halt_rejects_new_orders_of_the_symbol_until_resume() -> None:
    venue = Venue()
    events = venue.process(admin.halt(BTCUSD))
    [halted] = _only(events, EventType.HALTED)
    assert halted["symbol"] == BTCUSD
    assert _rejected_for(venue.order(ALICE)) == Reason.SYMBOL_HALTED

    events = venue.process(admin.resume(BTCUSD))
    [resumed] = _only(events, EventType.RESUMED)
    assert resumed["symbol"] == BTCUSD
    accepted = venue.order(ALICE)
    assert _rejected_for(accepted) is None
    assert len(_only(accepted, EventType.ACCEPTED)) == 1


def test_an_account_kill_switch_cancels_its_orders_and_rejects_its_new_ones_only() -> None:
    venue = Venue()
    resting = _only(venue.order(BOB, Side.SELL, price=200), EventType.ACCEPTED)["order_id"][0]
    venue.order(ALICE, Side.SELL, price=300)

    events = venue.process(admin.kill_switch(BOB))
    [killed] = _only(events, EventType.KILL_SWITCH)
    assert killed["account"] == BOB
    cancelled = _only(events, EventType.CANCELLED)
    assert list(cancelled["order_id"]) == [resting]  # Alice's order rests on
    assert cancelled["reason"][0] == Reason.KILL_SWITCH_CANCEL
    assert _rejected_for(venue.order(BOB)) == Reason.KILL_SWITCH
    assert _rejected_for(venue.order(ALICE)) is None

    events = venue.process(admin.kill_switch(BOB, release=True))
    [released] = _only(events, EventType.KILL_SWITCH_RELEASED)
    assert released["account"] == BOB
    assert _rejected_for(venue.order(BOB)) is None


def test_the_global_kill_switch_cancels_every_order_and_stops_every_account() -> None:
    venue = Venue()
    venue.order(ALICE, Side.SELL, price=200)
    venue.order(BOB, Side.SELL, price=300)

    events = venue.process(admin.kill_switch(None))
    [killed] = _only(events, EventType.KILL_SWITCH)
    assert killed["account"] == 0  # risk's global switch
    assert sorted(_only(events, EventType.CANCELLED)["account"]) == [ALICE, BOB]
    assert _rejected_for(venue.order(ALICE)) == Reason.KILL_SWITCH
    assert _rejected_for(venue.order(BOB)) == Reason.KILL_SWITCH

    events = venue.process(admin.kill_switch(None, release=True))
    assert len(_only(events, EventType.KILL_SWITCH_RELEASED)) == 1
    assert _rejected_for(venue.order(ALICE)) is None


def test_deposit_raises_the_free_balance_and_reports_it() -> None:
    venue = Venue()
    free_before, _ = venue.engine.risk.balance(BOB, BTC)
    events = venue.process(admin.deposit(BOB, BTC, 25))
    [balance] = _only(events, EventType.BALANCE)
    assert (balance["account"], balance["symbol"], balance["qty"]) == (BOB, BTC, 25)
    assert venue.engine.risk.balance(BOB, BTC)[0] == free_before + 25


def test_an_order_the_deposit_pays_for_is_accepted() -> None:
    venue = Venue()
    carol = 3
    assert _rejected_for(venue.order(carol)) == Reason.INSUFFICIENT_FUNDS
    venue.process(admin.deposit(carol, USD, 100))
    assert _rejected_for(venue.order(carol)) is None


def test_kinds_are_the_ones_the_engine_dispatches_on() -> None:
    assert admin.kill_switch(5)["kind"][0] == CommandType.KILL_SWITCH
    assert admin.kill_switch(5, release=True)["kind"][0] == CommandType.KILL_SWITCH_RELEASE
    record = admin.deposit(5, 2, 7)
    assert (record["kind"][0], record["symbol"][0], record["qty"][0]) == (CommandType.DEPOSIT, 2, 7)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: admin.kill_switch(0), r"account 0 is the fee account.*pass None"),
        (lambda: admin.kill_switch(2**32), r"account 4294967296 is out of range: expected 1\.\."),
        (lambda: admin.halt(-1), r"symbol -1 is out of range: expected 0\.\.65535"),
        (lambda: admin.resume(65536), r"symbol 65536 is out of range"),
        (lambda: admin.halt(True), r"symbol True is not an integer"),
        (lambda: admin.deposit(0, USD, 1), r"account 0 is out of range"),
        (lambda: admin.deposit(1, USD, 0), r"amount 0 is out of range: expected 1\.\."),
        (lambda: admin.deposit(1, USD, -5), r"amount -5 is out of range"),
        (lambda: admin.deposit(1, USD, 2**61 + 1), r"amount 2305843009213693953 is out of range"),
        (lambda: admin.deposit(1, 70_000, 1), r"asset 70000 is out of range"),
    ],
)
def test_values_that_do_not_fit_are_refused_before_sequencing(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# --- the verbs against a fake supervisor -----------------------------------------------------
WAIT = 10.0  # seconds: a bound for what must happen, never expected to elapse


class FakeSupervisor:
    """A ``ControlServer`` answering verbs from a thread of its own (its sockets stay in it):
    ``answer(message)`` makes each reply; every request is kept in ``received``. The
    handler may call ``end()``: the server closes (removing its manifest) after replying."""

    def __init__(self, run_dir: Path, answer: Callable[[m.Message], m.Message]) -> None:
        self.received: list[m.Message] = []
        self._ended = threading.Event()
        ready = threading.Event()

        def handler(message: m.Message) -> m.Message:
            self.received.append(message)
            return answer(message)

        def serve() -> None:
            with ControlServer(run_dir, client_handler=handler) as server:
                ready.set()
                while not self._ended.is_set():
                    server.poll(0.02)

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(WAIT), "the fake supervisor never started"

    def end(self) -> None:
        self._ended.set()

    def join(self) -> None:
        self.end()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Callable[..., FakeSupervisor]]:
    """Start a fake supervisor in ``tmp/rd`` with the given answer; joined at the end."""
    started: list[FakeSupervisor] = []

    def start(answer: Callable[[m.Message], m.Message]) -> FakeSupervisor:
        started.append(FakeSupervisor(tmp_path / "rd", answer))
        return started[-1]

    yield start
    for fake in started:
        fake.join()


def _acks(message: m.Message) -> m.Message:
    return m.Ack("seq=42") if not isinstance(message, m.Snapshot) else m.Ack()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("argv", "sent", "printed"),
    [
        (["halt", "BTC-USD"], m.Halt(1), "halt symbol=1: seq=42"),
        (["resume", "eth-usd"], m.Resume(2), "resume symbol=2: seq=42"),
        (["kill-switch", "7"], m.KillSwitch(account=7), "kill_switch account=7: seq=42"),
        (
            ["kill-switch", "--all", "--release"],
            m.KillSwitch(all_accounts=True, release=True),
            "kill_switch all_accounts=True release=True: seq=42",
        ),
        (
            ["deposit", "3", "ETH", "1_000"],
            m.Deposit(account=3, asset=2, amount=1000),
            "deposit account=3 asset=2 amount=1000: seq=42",
        ),
        (["snapshot"], m.Snapshot(), "snapshot: done"),
    ],
    ids=lambda x: " ".join(x) if isinstance(x, list) else "",
)
def test_a_verb_sends_its_message_and_prints_the_ack(
    supervisor, tmp_path: Path, capsys, argv: list[str], sent: m.Message, printed: str
) -> None:
    fake = supervisor(_acks)
    assert main([*argv, "--run-dir", str(tmp_path / "rd")]) == ExitStatus.OK
    out, err = capsys.readouterr()
    assert fake.received == [sent]
    assert out == printed + "\n" and err == ""


@pytest.mark.timeout(60)
def test_a_refusal_is_one_line_and_exit_4(supervisor, tmp_path: Path, capsys) -> None:
    """What the supervisor answers until it forwards the verbs."""
    supervisor(lambda message: m.Refused(f"the supervisor does not handle {message.kind!r} yet"))
    status = main(["halt", "1", "--run-dir", str(tmp_path / "rd")])
    out, err = capsys.readouterr()
    assert status == ExitStatus.REFUSED and out == ""
    assert err == (
        "tradepipe halt: the pipeline refused halt: the supervisor does not handle 'halt' yet\n"
    )


def _stage(name: str, records: int) -> m.StatusReply:
    return m.StatusReply(
        stage=name,
        state="running",
        pid=os.getpid(),
        counters={"records": records, "latency_p50_ns": 5_000, "latency_p99_ns": 90_000},
        rings={"commands.published": records, "commands.capacity": 4096, f"commands.{name}": 0},
    )


class _Counting:
    """Answers ``Status`` with records growing by 1000 a sample; ``end_after`` samples, the
    supervisor goes away (as at the end of a run)."""

    def __init__(self, end_after: int | None = None) -> None:
        self.samples = 0
        self.end_after = end_after
        self.fake: FakeSupervisor | None = None

    def __call__(self, message: m.Message) -> m.Message:
        self.samples += 1
        if self.samples == self.end_after and self.fake is not None:
            self.fake.end()
        return m.PipelineStatus(os.getpid(), [_stage("output", 1000 * self.samples)])


@pytest.mark.timeout(60)
def test_top_once_prints_one_frame_with_rates(
    supervisor, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    answer = _Counting()
    supervisor(answer)
    status = main(["top", "--run-dir", str(tmp_path / "rd"), "--once", "--interval", "0.1"])
    out, err = capsys.readouterr()
    assert status == ExitStatus.OK and err == ""
    assert answer.samples == 2
    assert out.count("pipeline (supervisor pid") == 1  # one frame
    # second sample: 2000 records published, none released, of 4096
    assert "/s" in out and "5.00 µs" in out and "90.0 µs" in out and "commands 49 %" in out
    assert "no answer" in out  # the four stages the fake does not have


@pytest.mark.timeout(60)
def test_top_says_so_when_the_pipeline_ends_and_exits_0(
    supervisor, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal: no keyboard
    answer = _Counting(end_after=3)
    answer.fake = supervisor(answer)
    status = main(["top", "--run-dir", str(tmp_path / "rd"), "--interval", "0.1"])
    out, err = capsys.readouterr()
    assert status == ExitStatus.OK and err == ""
    # not a terminal: each frame after the last (a 4th if a request beat the close)
    assert out.count("pipeline (supervisor pid") >= 3
    assert out.splitlines()[-1] == f"the pipeline ended (supervisor pid {os.getpid()})"
