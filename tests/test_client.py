"""The client library (``pipeline.client``) against a gateway server in a thread
(``tests/fake_gateway.py``: the real ``Gateway`` in front of an in-process ``Engine``).

Order flows and their reports, an engine reject and a gateway reject, mass cancel,
reconnecting for missed reports, JSON; market-data books equal to ``MatchingEngine.depth``,
a lost message detected and repaired by the next snapshot; CURVE over tcp with keys from
``pipeline.keys``: an unknown key never gets a message through, a key cannot act for
another account. Nothing sleeps: every wait is on a socket, bounded by a timeout.
"""

from __future__ import annotations

import random
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import keys
from pipeline.client import (
    Client,
    InvalidRequest,
    LogonError,
    LogonTimeout,
    MarketData,
    curve_options,
)
from stages.gateway import protocol as P
from stages.marketdata import Applied, Snapshot
from tests.fake_gateway import FakeGateway

pytestmark = pytest.mark.timeout(60)
WAIT = 5.0  # seconds any one answer may take


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (a Unix socket path holds 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="tpc-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake(short_dir: Path) -> Iterator[FakeGateway]:
    with FakeGateway(f"ipc://{short_dir}/gw.sock", f"ipc://{short_dir}/md.sock") as server:
        yield server


def client(fake: FakeGateway, account: int, **options) -> Client:
    return Client(fake.endpoint, account, timeout=WAIT, **options)


def until(c: Client, cid: str, kinds: set[str]) -> list[P.Message]:
    """Reports until one of ``kinds`` about ``cid`` (or a reject of the request) came."""
    seen = []
    for message in c.reports(timeout=WAIT):
        seen.append(message)
        if getattr(message, "client_order_id", None) == cid and message.kind in kinds:
            return seen
        if isinstance(message, P.BusinessReject | P.Busy):
            return seen
    raise AssertionError(f"no {kinds} for {cid} within {WAIT} s; got {seen}")


def kinds(messages) -> list[str]:
    return [m.kind for m in messages]


# --- order flows -----------------------------------------------------------------------------
def test_a_resting_sell_and_a_crossing_buy_report_to_their_owners(fake):
    with client(fake, 1) as seller, client(fake, 2, codec="json") as buyer:
        sid = seller.sell("BTC-USD", 5, 100)
        assert kinds(until(seller, sid, {"accepted"})) == ["accepted"]
        bid = buyer.buy("BTC-USD", 3, price=101)
        got = until(buyer, bid, {"done"})
        assert kinds(got) == ["accepted", "trade", "done"]
        trade = got[1]
        assert (trade.price, trade.qty, trade.leaves_qty, trade.liquidity) == (100, 3, 0, "taker")
        assert trade.fee == 300 * 20 // 10_000
        (maker,) = until(seller, sid, {"trade"})
        assert (maker.liquidity, maker.leaves_qty, maker.fee) == ("maker", 2, 300 * 10 // 10_000)
        assert [o.leaves_qty for o in seller.open_orders()] == [2]
        assert buyer.open_orders() == []
        assert buyer.last_report_seq == 3


def test_a_batch_leaves_when_its_block_ends_and_each_request_is_answered(fake):
    with client(fake, 1) as c:
        with c.batch():
            cids = [c.buy("BTC-USD", 1, 80 + i) for i in range(20)]
            with c.batch():  # nested: the outer block sends
                c.cancel(cids[0])
            assert fake.call(lambda: fake.gateway.counters["orders"]) == 0  # nothing left yet
        accepted: list[str] = []
        for message in c.reports(timeout=WAIT):
            if message.kind == "accepted":
                accepted.append(message.client_order_id)
            if message.kind == "done":
                break
        assert accepted == cids  # in the order sent; then the cancel's done
        assert [o.client_order_id for o in c.open_orders()] == cids[1:]
        with pytest.raises(InvalidRequest), c.batch():  # what was made before a raise is sent
            kept = c.buy("BTC-USD", 1, 70)
            c.buy("BTC-USD", 0, 70)
        assert until(c, kept, {"accepted"})[-1].kind == "accepted"


def test_cancel_replace_reduce(fake):
    with client(fake, 1) as c:
        cid = c.buy("BTC-USD", 10, 90, client_order_id="mine-1")
        assert cid == "mine-1"
        until(c, cid, {"accepted"})
        c.replace(cid, price=95)
        (replaced,) = until(c, cid, {"replaced"})
        assert (replaced.price, replaced.leaves_qty) == (95, 10)
        c.replace(cid, qty=7)
        assert until(c, cid, {"replaced"})[0].leaves_qty == 7
        c.reduce(cid, 2)
        assert until(c, cid, {"replaced"})[0].leaves_qty == 5
        c.cancel(cid)
        got = until(c, cid, {"done"})
        assert kinds(got) == ["cancelled", "done"]
        assert (got[0].reason, got[0].qty) == ("USER_CANCEL", 5)
        assert c.open_orders() == []


def test_an_ioc_remainder_is_cancelled_and_a_market_order_has_no_price(fake):
    with client(fake, 1) as a, client(fake, 2) as b:
        sid = a.sell("BTC-USD", 2, 100)
        until(a, sid, {"accepted"})
        cid = b.buy("BTC-USD", 5, 100, tif="ioc")
        got = until(b, cid, {"done"})
        assert kinds(got) == ["accepted", "trade", "cancelled", "done"]
        assert got[2].reason == "IOC_REMAINDER"
        mid = b.sell("BTC-USD", 1)  # market, nothing to buy it: the engine says why
        assert until(b, mid, {"done", "rejected"})[-1].kind in ("done", "rejected")


def test_rejects_engine_gateway_and_client_side(fake):
    with client(fake, 4) as poor:  # unfunded
        cid = poor.buy("BTC-USD", 1, 100)
        (rejected,) = until(poor, cid, {"rejected"})
        assert (rejected.request, rejected.reason, rejected.code) == (
            "new",
            "INSUFFICIENT_FUNDS",
            40,
        )
        poor.buy("DOGE-USD", 1, 100, client_order_id="d1")
        (reject,) = until(poor, "d1", set())
        assert isinstance(reject, P.BusinessReject)
        assert (reject.field, reject.text, reject.client_order_id) == (
            "$.symbol",
            "unknown symbol",
            "d1",
        )
        poor.cancel("never-sent")
        (reject,) = until(poor, "never-sent", set())
        assert reject.field == "$.client_order_id"
        for bad, field in (
            (lambda: poor.buy("BTC-USD", 0, 100), "$.qty"),
            (lambda: poor.buy("BTC-USD", 2**63, 100), "$.qty"),
            (lambda: poor.buy("BTC-USD", 1, 100, tif="day"), "$.tif"),
            (lambda: poor.buy("BTC-USD", 1, 100, client_order_id="has space"), "$.client_order_id"),
            (lambda: poor.replace("x"), "$.price"),
        ):
            with pytest.raises(InvalidRequest) as error:
                bad()
            assert error.value.field == field
        assert poor.counters["sent"] == 3  # nothing invalid went out


def test_unchecked_requests_go_out_and_the_gateway_names_the_field(fake):
    """``check=False`` skips the client's own decode: the same bad request leaves, and the
    gateway's ``business_reject`` names the field the check would have named."""
    with client(fake, 1, check=False) as c:
        cid = c.buy("BTC-USD", 0, 100)
        (reject,) = until(c, cid, set())
        assert isinstance(reject, P.BusinessReject)
        assert (reject.field, reject.client_order_id) == ("$.qty", cid)
        assert c.counters["sent"] == 1


def test_mass_cancel_cancels_the_accounts_orders_only(fake):
    with client(fake, 1) as a, client(fake, 2) as b:
        ours = [a.buy("BTC-USD", 1, 90 + i) for i in range(3)] + [a.sell("ETH-USD", 1, 500)]
        theirs = b.buy("BTC-USD", 1, 80)
        until(a, ours[-1], {"accepted"})
        until(b, theirs, {"accepted"})
        a.mass_cancel("BTC-USD")
        got: list[P.Message] = []
        for message in a.reports(timeout=WAIT):
            got.append(message)
            if sum(m.kind == "done" for m in got) == 3:
                break
        assert got[0] == P.MassCancelAck(symbol=1, orders=3)
        assert {m.client_order_id for m in got if m.kind == "done"} == set(ours[:3])
        assert [o.client_order_id for o in a.open_orders()] == [ours[3]]
        assert [o.client_order_id for o in b.open_orders()] == [theirs]


def test_a_reconnecting_client_gets_the_reports_it_missed(fake):
    with client(fake, 1) as a:
        sid = a.sell("BTC-USD", 4, 100)
        until(a, sid, {"accepted"})
        seen = a.last_report_seq
    with client(fake, 2) as b:
        bid = b.buy("BTC-USD", 4, 100)
        until(b, bid, {"done"})
    with client(fake, 1) as again:
        assert again.ack.last_report_seq == seen + 2  # the trade and the done
        missed = again.reports_since(seen)
        assert [(r.kind, r.client_order_id) for r in missed.reports] == [
            ("trade", sid),
            ("done", sid),
        ]
        assert not missed.gap


def test_heartbeats_keep_a_quiet_session_alive(fake):
    """A session asking for 0.1 s heartbeats that waits a second in ``reports`` is not
    dropped (the gateway ends one silent for 0.2 s): the waiting sends them."""
    with client(fake, 1, heartbeat_interval=0.1, cancel_on_disconnect=True) as c:
        cid = c.buy("BTC-USD", 1, 90)
        until(c, cid, {"accepted"})
        assert list(c.reports(timeout=1.0)) == []  # no logged_out, no cancel
        assert [o.client_order_id for o in c.open_orders()] == [cid]


def test_a_session_taken_over_is_told_so(fake):
    first = client(fake, 1)
    with client(fake, 1) as second:
        message = first.next_report(WAIT)
        assert message == P.LoggedOut(why="superseded")
        assert first.ended is not None
        assert second.open_orders() == []
    first.close()


def test_no_gateway_is_a_logon_timeout_naming_the_endpoint(short_dir):
    endpoint = f"ipc://{short_dir}/nobody.sock"
    with pytest.raises(LogonTimeout, match=r"no answer to the logon from the gateway at .*"):
        Client(endpoint, 1, timeout=0.3)


def test_a_refused_logon_says_why(fake):
    with pytest.raises(LogonError, match=r"refused the logon as account 99: unknown account"):
        client(fake, 99)  # the fake's engine holds accounts 1..15


# --- market data -----------------------------------------------------------------------------
def sync(md: MarketData, fake: FakeGateway, symbols=(1, 2)) -> None:
    """Read the feed until every book equals the engine's depth (in sync, no snapshot
    pending), within WAIT seconds of silence."""
    expected = {s: fake.depth_of(s) for s in symbols}

    def done() -> bool:
        return all(
            (b := md.book(s)) is not None and not b.needs_snapshot and b.depth() == expected[s]
            for s in symbols
        )

    if done():
        return
    for _ in md.updates(timeout=WAIT):
        if done():
            return
    raise AssertionError(f"books never matched the engine: {md.books()}")


def random_flow(rng: random.Random, clients: list[Client], orders: int) -> None:
    """Random limit orders (some crossing), cancels and replaces; waits for every answer."""
    open_ids: dict[int, list[str]] = {i: [] for i in range(len(clients))}
    for _ in range(orders):
        i = rng.randrange(len(clients))
        c = clients[i]
        roll = rng.random()
        if roll < 0.2 and open_ids[i]:
            c.cancel(open_ids[i].pop(rng.randrange(len(open_ids[i]))))
        elif roll < 0.3 and open_ids[i]:
            c.replace(rng.choice(open_ids[i]), price=rng.randint(95, 105))
        else:
            symbol = rng.choice(("BTC-USD", "ETH-USD"))
            side = rng.choice(("buy", "sell"))
            cid = c.new_order(side, symbol, rng.randint(1, 9), rng.randint(95, 105))
            open_ids[i].append(cid)
        # every request is answered (a report, or a reject for a cancel that lost a race)
        message = c.next_report(WAIT)
        assert message is not None
        for extra in c.reports(timeout=0.0):
            del extra
        for j, other in enumerate(clients):
            for report in other.reports(timeout=0.0):
                if report.kind == "done" and report.client_order_id in open_ids[j]:
                    open_ids[j].remove(report.client_order_id)


def test_market_data_books_equal_the_engine_depth(fake):
    with MarketData(fake.md_endpoint).subscribe(["BTC-USD", "ETH-USD"]) as md:
        clients = [client(fake, a) for a in (1, 2, 3)]
        try:
            random_flow(random.Random(13), clients, 300)
        finally:
            for c in clients:
                c.close()
        sync(md, fake)
        assert md.book("BTC-USD") is md.book(1)
        assert md.counters["snapshots"] >= 2  # each book started from one


def test_a_lost_message_is_a_gap_repaired_by_the_next_snapshot(fake):
    with MarketData(fake.md_endpoint).subscribe(["BTC-USD"]) as md, client(fake, 1) as c:
        sync(md, fake, symbols=(1,))
        fake.drop_market_data = 1
        for price in (90, 91, 92):
            until(c, c.buy("BTC-USD", 1, price), {"accepted"})
        applied = []
        for update in md.updates(timeout=WAIT):
            applied.append(update.applied)
            if Applied.GAP in applied and update.applied is Applied.APPLIED:
                assert isinstance(update.message, Snapshot)  # the resync
                break
        assert Applied.GAP in applied
        assert md.book(1).gaps == 1
        sync(md, fake, symbols=(1,))
        assert md.book(1).depth()[0] == [(92, 1, 1), (91, 1, 1), (90, 1, 1)]


# --- CURVE over tcp --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def curve_fake(tmp_path: Path) -> Iterator[tuple[FakeGateway, Path]]:
    (tmp_path / "clients").mkdir()
    server = keys.new_keys("server", tmp_path, server=True)
    alice = keys.new_keys("alice", tmp_path, (1,))
    keys.new_keys("mallory", tmp_path, (2,))  # made, never authorised
    shutil.copy(alice.public_file, tmp_path / "clients")
    gw, md = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    with FakeGateway(
        gw,
        md,
        curve=keys.load_server_key(server.secret_file),
        clients=keys.load_clients(tmp_path / "clients"),
    ) as fake:
        yield fake, tmp_path


def test_curve_an_authorised_key_trades_its_account(curve_fake):
    fake, keydir = curve_fake
    options = {"keys": keydir / "alice.key_secret", "server_key": keydir / "server.key"}
    with client(fake, 1, **options) as alice:
        cid = alice.buy("BTC-USD", 1, 90)
        assert kinds(until(alice, cid, {"accepted"})) == ["accepted"]
    with MarketData(fake.md_endpoint, **options).subscribe() as md:
        sync(md, fake, symbols=(1,))


def test_curve_a_key_cannot_act_for_another_account(curve_fake):
    fake, keydir = curve_fake
    with pytest.raises(LogonError, match=r"may not trade account 2"):
        client(fake, 2, keys=keydir / "alice.key_secret", server_key=keydir / "server.key")


def test_curve_an_unknown_key_never_gets_a_message_through(curve_fake):
    fake, keydir = curve_fake
    frames_before = fake.call(lambda: fake.gateway.counters["frames"])
    with pytest.raises(LogonTimeout, match=r"is this key in the gateway's authorised clients"):
        Client(
            fake.endpoint,
            2,
            keys=keydir / "mallory.key_secret",
            server_key=keydir / "server.key",
            timeout=0.5,
        )
    assert fake.call(lambda: fake.gateway.counters["frames"]) == frames_before
    assert fake.zap_refused >= 1


def test_curve_without_keys_gets_nothing_through(curve_fake):
    fake, _ = curve_fake
    with pytest.raises(LogonTimeout):
        Client(fake.endpoint, 1, timeout=0.3)
    assert fake.call(lambda: fake.gateway.counters["frames"]) == 0


def test_curve_options_need_both_halves(tmp_path):
    pair = keys.new_keys("c", tmp_path, (1,))
    with pytest.raises(ValueError, match="CURVE needs both keys and server_key"):
        curve_options(pair.secret_file, None)
    with pytest.raises(ValueError, match="not a 40-character z85 key"):
        curve_options(("short", "short"), pair.public_key)
