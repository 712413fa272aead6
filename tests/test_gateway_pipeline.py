"""The order gateway as a stage of the real pipeline: clients over ZeroMQ get the reports of
their own orders by client order id, the market-data feed rebuilds the engine's books, and
a full orders ring is answered BUSY at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import warnings
from pathlib import Path

import msgspec
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import keys
from pipeline.client import Client, LogonError, LogonTimeout
from pipeline.config import (
    CurveConfig,
    GatewayConfig,
    default_engine,
)
from pipeline.control import find_pipeline
from pipeline.supervisor import Supervisor
from ringbuffer import ConsumerSpec, Doorbell, Ring
from stages.engine import Engine
from stages.gateway import protocol as p
from stages.gateway.codec import sniff
from stages.gateway.stage import GatewayBindError, GatewayProcess, GatewayStageConfig
from stages.marketdata.local_book import LocalBook
from stages.marketdata.messages import decode as decode_market_data
from stages.persistence.recovery import replay_journal
from stages.records import COMMAND_DTYPE, EVENT_DTYPE, EventType, empty_events
from tests.gateway_helpers import CODEC, REPLY_MS, Session, gateway_config, order_of
from tests.ringhelpers import wait_until
from tests.supervised import running


@pytest.mark.timeout(300)
def test_clients_get_their_own_reports_and_the_market_data_book_is_the_engines(tmp_path):
    config = gateway_config(tmp_path)
    supervisor = Supervisor(config, tag="gw-e2e")
    context = zmq.Context()
    try:
        with running(supervisor, stop_on_exit=True) as outcome:
            manifest = find_pipeline(tmp_path / "run")
            (endpoint,), (feed,) = manifest.gateway, manifest.market_data
            md = context.socket(zmq.SUB)
            md.setsockopt(zmq.LINGER, 0)
            md.setsockopt(zmq.SUBSCRIBE, b"")
            md.connect(feed)
            alice, bob = Session(context, endpoint, 1), Session(context, endpoint, 2)
            rng = np.random.default_rng(4)
            for i in range(40):  # a book on both sides, from two accounts
                side = "buy" if i % 2 else "sell"
                price = 10_000 + (-1 if side == "buy" else 1) * int(rng.integers(1, 6))
                who = alice if i % 4 < 2 else bob
                reply = who.ask(p.NewOrder(f"o{i}", "BTC-USD", side, qty=3, price=price))
                assert isinstance(reply, p.Accepted) and reply.client_order_id == f"o{i}"
            cancelled = alice.ask(p.Cancel("o0"))
            assert isinstance(cancelled, p.Cancelled) and cancelled.client_order_id == "o0"
            foreign = bob.ask(p.Cancel("o1"))  # alice's: unknown to bob
            assert isinstance(foreign, p.BusinessReject), foreign
            assert foreign.field == "$.client_order_id"
            # bob sweeps every ask: his trades and done; alice's maker trades go to her only
            bob.send(p.NewOrder("take", "BTC-USD", "buy", qty=100, price=10_010, tif="ioc"))
            mine = bob.until(lambda r: isinstance(r, p.Done) and r.client_order_id == "take")
            assert {type(r) for r in mine} >= {p.Accepted, p.Trade, p.Done}
            bobs = {"take", *(f"o{i}" for i in range(40) if i % 4 >= 2)}
            assert {order_of(r) for r in mine + bob.others} - {None} <= bobs  # his own only
            assert any(isinstance(r, p.Trade) and r.liquidity == "maker" for r in mine)
            rejected = alice.ask(p.NewOrder("bad", "BTC-USD", "buy", qty=3, price=-5))
            assert isinstance(rejected, (p.Rejected, p.BusinessReject)), rejected
            # a marker: an order whose market data tells the feed has caught up
            alice.ask(p.NewOrder("last", "ETH-USD", "buy", qty=1, price=900))
            alices = {f"o{i}" for i in range(40) if i % 4 < 2}
            made = [r for r in alice.others if isinstance(r, p.Trade)]
            assert made and all(r.liquidity == "maker" for r in made)  # bob took from her
            assert {order_of(r) for r in alice.others} - {None} <= alices
            books = {1: LocalBook(1), 2: LocalBook(2)}
            while True:
                assert md.poll(REPLY_MS), "the market-data feed stopped"
                message = decode_market_data(md.recv_multipart()[1])
                books[message.symbol].apply(message)
                if books[2].bbo[0] == 900 and not books[1].needs_snapshot:
                    break
        assert "error" not in outcome, outcome.get("error")
        report = outcome["report"]
        assert report.recovered, report.checks
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            engine = replay_journal(
                config.journal.directory, None, lambda: Engine(config.engine)
            ).state
        for symbol, book in books.items():
            bids, asks = engine.matching.depth(symbol, 10)
            assert book.depth() == (
                [tuple(row) for row in bids.tolist()],
                [tuple(row) for row in asks.tolist()],
            )
    finally:
        context.destroy(linger=0)


def test_a_full_orders_ring_is_answered_busy_at_once_and_nothing_is_half_sent(tmp_path):
    ring = Ring.create(f"gw-busy-{tmp_path.name[-8:]}", COMMAND_DTYPE, 4, (ConsumerSpec("ingest"),))
    context = zmq.Context()
    process = None
    try:
        orders = ring.producer()
        config = GatewayStageConfig(
            engine=default_engine(),
            bind=[f"ipc://{tmp_path}/gw.sock"],
            market_data=[f"ipc://{tmp_path}/md.sock"],
        )
        process = GatewayProcess(config, orders, ring.capacity, None, context)
        client = context.socket(zmq.DEALER)
        client.setsockopt(zmq.LINGER, 0)
        client.connect(config.bind[0])

        def ask(message: p.Message) -> p.Message:
            client.send(CODEC.encode_request(message))
            while not client.poll(0):
                process.round(50)  # the gateway's loop, one round at a time
            return CODEC.decode_reply(client.recv())

        assert isinstance(ask(p.Logon(account=1)), p.LogonAck)
        for i in range(4):  # nobody consumes: four orders fill the ring
            client.send(CODEC.encode_request(p.NewOrder(f"o{i}", 1, "buy", qty=1, price=10)))
        while orders.published < 3:
            process.round(50)
        busy = ask(p.NewOrder("o4", 1, "buy", qty=1, price=10))
        assert isinstance(busy, p.Busy), busy
        assert orders.published == 3  # the refused order took no slot
        assert process.gateway.counters["busy"] == 1
        # the refused client order id was undone: it may be sent again once there is room
        consumer = ring.consumer("ingest")
        consumer.take()
        consumer.release()
        process.round(0)
        client.send(CODEC.encode_request(p.NewOrder("o4", 1, "buy", qty=1, price=10)))
        while orders.published < 4:
            process.round(50)
    finally:
        if process is not None:
            process.close()
        context.destroy(linger=0)
        ring.close()
        ring.unlink()


def test_a_batch_that_does_not_fit_is_admitted_up_to_the_first_refusal(tmp_path):
    """Four of six requests fit: the rest are Busy, a cancel of a refused order with them
    (it was judged as though the order went in), and the refused ids may come again."""
    with standalone_gateway(tmp_path, capacity=4) as (process, exchange):
        assert isinstance(
            CODEC.decode_reply(exchange(CODEC.encode(p.Logon(account=1)))), p.LogonAck
        )
        orders = [p.NewOrder(f"o{i}", 1, "buy", qty=1, price=10) for i in range(5)]
        batch = CODEC.join([CODEC.encode(m) for m in [*orders, p.Cancel("o4")]])
        replies = CODEC.decode_replies(exchange(batch))
        assert [(r.kind, r.ref_kind, r.client_order_id) for r in replies] == [
            ("busy", "new_order", "o4"),
            ("busy", "cancel", "o4"),
        ]
        assert process.orders.published == 3  # o0..o3, nothing of the refused two
        assert process.gateway.counters["busy"] == 2
        assert sorted(o.client_order_id for o in process.gateway._orders.values()) == [
            "o0", "o1", "o2", "o3"
        ]  # fmt: skip


@contextlib.contextmanager
def standalone_gateway(tmp_path: Path, capacity: int = 64):
    """A ``GatewayProcess`` on a fresh orders ring, its loop driven by the test; a client
    DEALER connected to it; everything closed and unlinked on exit."""
    ring = Ring.create(
        f"gw-solo-{tmp_path.name[-8:]}", COMMAND_DTYPE, capacity, (ConsumerSpec("ingest"),)
    )
    context = zmq.Context()
    process = None
    try:
        config = GatewayStageConfig(
            engine=default_engine(),
            bind=[f"ipc://{tmp_path}/gw.sock"],
            market_data=[f"ipc://{tmp_path}/md.sock"],
        )
        process = GatewayProcess(config, ring.producer(), ring.capacity, None, context)
        client = context.socket(zmq.DEALER)
        client.setsockopt(zmq.LINGER, 0)
        client.connect(config.bind[0])

        def exchange(frame: bytes) -> bytes:
            client.send(frame)
            while not client.poll(0):
                process.round(50)
            return client.recv()

        yield process, exchange
    finally:
        if process is not None:
            process.close()
        context.destroy(linger=0)
        ring.close()
        ring.unlink()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_garbage_frames_get_a_reject_each_and_the_gateway_serves_on(tmp_path, frames):
    with standalone_gateway(tmp_path) as (process, exchange):
        for frame in frames:  # each answered in the codec the frame looks like
            # (garbage that starts like an array is a batch: a reject per element)
            for reply in sniff(frame).decode_replies(exchange(frame)):
                assert isinstance(reply, p.BusinessReject), reply
                assert reply.field.startswith("$")
        ack = CODEC.decode_reply(exchange(CODEC.encode_request(p.Logon(account=5))))
        assert isinstance(ack, p.LogonAck)  # still serving
        assert process.orders.published == -1  # garbage never reached the ring


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.timeout(300)
def test_tcp_with_curve_admits_only_authorised_keys_and_each_for_its_own_accounts(tmp_path):
    keydir, clients = tmp_path / "keys", tmp_path / "keys" / "clients"
    clients.mkdir(parents=True)
    server = keys.new_keys("server", keydir, server=True)
    trader = keys.new_keys("trader", clients, accounts=[1])
    stranger = keys.new_keys("stranger", keydir, accounts=[1])  # not authorised
    port = _free_port()
    config = msgspec.structs.replace(
        gateway_config(tmp_path),
        gateway=GatewayConfig(
            bind=[f"tcp://127.0.0.1:{port}"],
            curve=CurveConfig(server_key=str(server.secret_file), clients=str(clients)),
        ),
    )
    supervisor = Supervisor(config, tag="gw-curve")
    with running(supervisor, stop_on_exit=True) as outcome:
        endpoint = f"tcp://127.0.0.1:{port}"
        with Client(endpoint, 1, keys=trader.secret_file, server_key=server.public_file) as client:
            order = client.buy("BTC-USD", 2, price=9_000)
            reply = client.next_report(timeout=REPLY_MS / 1000)
            assert isinstance(reply, p.Accepted) and reply.client_order_id == order
        with pytest.raises(LogonError, match="account 2"):  # its key trades account 1 only
            Client(endpoint, 2, keys=trader.secret_file, server_key=server.public_file)
        with pytest.raises(LogonTimeout):  # an unknown key never gets a message through
            Client(endpoint, 1, keys=stranger.secret_file, server_key=server.public_file, timeout=3)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["report"].recovered


@pytest.mark.timeout(300)
def test_a_client_that_reads_late_still_gets_every_report(tmp_path):
    """Thousands of reports queue for a client that does not read: a ROUTER drops what a
    full pipe cannot take unless its send high-water mark is off; none may be dropped."""
    supervisor = Supervisor(gateway_config(tmp_path), tag="gw-late")
    context = zmq.Context()
    try:
        with running(supervisor, stop_on_exit=True):
            manifest = find_pipeline(tmp_path / "run")
            session = Session(context, manifest.gateway[0], 4)
            session.socket.setsockopt(zmq.RCVHWM, 0)
            orders = 2500
            for i in range(orders):  # resting buys far from the market: one Accepted each
                session.send(p.NewOrder(f"q{i}", "BTC-USD", "buy", qty=1, price=100 + i % 50))
            accepted = set()
            while len(accepted) < orders:
                reply = session.receive()
                if isinstance(reply, p.Heartbeat):
                    continue  # the gateway's, every heartbeat interval
                assert isinstance(reply, p.Accepted), reply
                accepted.add(reply.client_order_id)
    finally:
        context.destroy(linger=0)


@pytest.mark.timeout(120)
def test_a_sleeping_gateway_is_woken_by_a_released_answer_and_ends_with_the_ring(tmp_path):
    """The gateway sleeps in one poll over its ROUTER and the answers ring's doorbell: an
    answer published while it sleeps ends the sleep (a round of an hour returns), and the
    ring's end ends its reports. Without the doorbell in the poll it would sleep on."""
    tag = tmp_path.name[-8:]
    orders = Ring.create(f"gw-o-{tag}", COMMAND_DTYPE, 64, (ConsumerSpec("ingest"),))
    answers = Ring.create(f"gw-a-{tag}", EVENT_DTYPE, 64, (ConsumerSpec("gateway"),))
    bell = Doorbell.create(tmp_path / "answers.bell")
    context = zmq.Context()
    process = writer = None
    try:
        config = GatewayStageConfig(
            engine=default_engine(),
            bind=[f"ipc://{tmp_path}/gw.sock"],
            market_data=[f"ipc://{tmp_path}/md.sock"],
            answers_doorbell=str(bell),
        )
        process = GatewayProcess(
            config, orders.producer(), orders.capacity, None, context, answers.consumer("gateway")
        )
        output, writer = answers.producer(), Doorbell(bell)
        output.ring_doorbell(writer)
        process.round(0)  # start-up's first round (snapshots, expiry)

        def publish_once_asleep(event: np.ndarray) -> threading.Thread:
            def publish() -> None:
                wait_until(lambda: answers.status()["consumers_parked"], "the gateway sleeps")
                output.publish_batch(event)

            thread = threading.Thread(target=publish)
            thread.start()
            return thread

        event = empty_events(1)
        symbol = default_engine().risk.instruments[0].symbol
        event[["seq", "kind", "order_id", "symbol", "price", "qty", "account"]] = (
            1, EventType.ACCEPTED, 99, symbol, 10_000, 1, 1
        )  # fmt: skip
        thread = publish_once_asleep(event)
        process.round(3_600_000)
        thread.join()
        while process.counters["report_batches"] == 0:  # woken by a request-less wake-up
            process.round(3_600_000)
        assert process.counters["report_batches"] == 1
        assert not process.reports_done
        finisher = threading.Thread(
            target=lambda: (
                wait_until(lambda: answers.status()["consumers_parked"], "asleep"),
                output.finish(),
            )
        )
        finisher.start()
        while not process.reports_done:
            process.round(3_600_000)
        finisher.join()
    finally:
        if process is not None:
            process.close()
        if writer is not None:
            writer.close()
        context.destroy(linger=0)
        for ring in (orders, answers):
            ring.close()
            ring.unlink()
        Doorbell.unlink(bell)


def test_an_endpoint_the_gateway_cannot_bind_is_said_as_such(tmp_path):
    """The bind error names the endpoint (the process closes what it opened first)."""
    (tmp_path / "gw.sock").mkdir()  # a directory where the socket should go
    ring = Ring.create(f"gw-bind-{tmp_path.name[-8:]}", COMMAND_DTYPE, 4, (ConsumerSpec("ingest"),))
    context = zmq.Context()
    try:
        config = GatewayStageConfig(
            engine=default_engine(),
            bind=[f"ipc://{tmp_path}/gw.sock"],
            market_data=[f"ipc://{tmp_path}/md.sock"],
        )
        with pytest.raises(GatewayBindError, match=r"cannot listen on ipc://.*gw\.sock"):
            GatewayProcess(config, ring.producer(), ring.capacity, None, context)
    finally:
        context.destroy(linger=0)
        ring.close()
        ring.unlink()
