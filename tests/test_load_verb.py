"""``tradepipe order``, ``md watch --once`` and ``tradepipe load`` against the fake gateway
(``tests/fake_gateway.py``): what they print and their exit statuses. The load's client
processes are real (spawned); its figures are not checked, only that every order was
answered and the table is there."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from tests.fake_gateway import FakeGateway

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    path = Path(tempfile.mkdtemp(prefix="tpl-"))
    try:
        with FakeGateway(f"ipc://{path}/gw.sock", f"ipc://{path}/md.sock") as server:
            yield server
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_order_prints_reports_until_done_or_resting(fake, capsys):
    e = ["--endpoint", fake.endpoint]
    assert main(["order", "sell", "BTC-USD", "5", "--price", "100", *e]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("accepted ") and out[-1].endswith("is open in the book")
    argv = ["order", "buy", "BTC-USD", "3", "--price", "101", "--account", "2", "--json", *e]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:]] == ["accepted", "trade", "done"]
    assert "liquidity=taker" in out[2]


def test_order_reject_and_cancel(fake, capsys):
    e = ["--endpoint", fake.endpoint]
    assert main(["order", "buy", "BTC-USD", "1", "--price", "100", "--account", "4", *e]) == 4
    captured = capsys.readouterr()
    assert "reason=INSUFFICIENT_FUNDS" in captured.out
    assert captured.err.strip() == "tradepipe order buy: rejected (new): INSUFFICIENT_FUNDS (40)"
    argv = ["order", "buy", "BTC-USD", "1", "--price", "90", "--client-order-id", "k1", *e]
    assert main(argv) == 0
    assert main(["order", "cancel", "k1", *e]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[-2:]] == [
        "cancelled",
        "done",
    ]
    assert main(["order", "cancel", "k1", *e]) == 2
    assert "no open order of account 1 has this client order id" in capsys.readouterr().err
    assert main(["order", "buy", "NOPE", "1", "--price", "9", *e]) == 2
    assert "the gateway refused it: SYMBOL: unknown symbol" in capsys.readouterr().err


def test_md_watch_once_prints_the_ladder(fake, capsys):
    assert (
        main(["order", "sell", "BTC-USD", "7", "--price", "105", "--endpoint", fake.endpoint]) == 0
    )
    capsys.readouterr()
    assert main(["md", "watch", "BTC-USD", "--once", "--endpoint", fake.md_endpoint]) == 0
    out = capsys.readouterr().out
    assert "BTC-USD (symbol 1)" in out and "in sync" in out
    assert re.search(r"105 .* 7 .* 1", out)


def test_load_runs_client_processes_and_prints_percentiles(fake, capsys):
    argv = ["load", "--clients", "2", "--rate", "400", "--duration", "0.5"]
    assert main([*argv, "--endpoint", fake.endpoint]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(line for line in out if line.lstrip().startswith("client"))
    assert header.split()[-3:] == ["µs", "p99.9", "µs"]
    total = next(line.split() for line in out if line.lstrip().startswith("all"))
    orders, acked, unanswered = total[1], total[2], total[6]
    assert orders == acked and unanswered == "0"
    assert int(orders.replace(",", "")) > 0


@given(
    st.lists(st.integers(0, 10**12), min_size=1, max_size=300),
    st.integers(1, 64),
)
@settings(max_examples=50, deadline=None)
def test_load_records_round_trips_in_batches_as_one_by_one(values, batch):
    """The load client keeps its round trips and records them in batches (one numpy pass);
    the histogram is the one recording them one by one, clamped, would make."""
    from pipeline.commands.load import RTT_HIGH, RTT_LOW, _record, new_histogram
    from stages.latency import HopLatency

    one_by_one = new_histogram()
    for value in values:
        one_by_one.record_value(min(max(value, RTT_LOW), RTT_HIGH))
    batched = HopLatency("round trip", histogram=new_histogram())
    for start in range(0, len(values), batch):
        kept = values[start : start + batch]
        _record(batched, kept)
        assert kept == []  # recorded, and the list emptied for the next ones
    h = batched.histogram
    assert h.get_total_count() == one_by_one.get_total_count()
    assert (h.get_min_value(), h.get_max_value()) == (
        one_by_one.get_min_value(),
        one_by_one.get_max_value(),
    )
    for p in (0.1, 50, 90, 99, 99.9, 100):
        assert h.get_value_at_percentile(p) == one_by_one.get_value_at_percentile(p)
