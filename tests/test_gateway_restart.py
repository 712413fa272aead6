"""A gateway restored after a crash, against the in-process Engine (no processes).

The pipeline is played in one thread: every command the gateway sends is stamped into a
journal and processed at once, but its answers reach the gateway only when released (so
some are in flight at the crash, and some commands half-answered). At the crash the
restart point is chosen as ``pipeline.restart.plan_restart`` does (the last command whose
answers all left), the state is the Engine replaying the journal up to it, and a new
Gateway is restored from that state's resting orders, the order-id log and the journaled
commands after it, whose answers the restarted pipeline produces again (the ones already
released are handed over marked as such, as output does).

Last, the real pipeline: matching killed with SIGKILL under a client's resting orders, and
the client, logged on again, cancels one by its client order id.
"""

from __future__ import annotations

import os
import signal
import struct
import time
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.control import PipelineClient, find_pipeline
from pipeline.control_messages import Status
from pipeline.supervisor import Supervisor
from stages.engine import Engine
from stages.gateway import id_log
from stages.gateway import protocol as P
from stages.gateway.codec import Codec
from stages.gateway.id_log import ID_LOG_DTYPE, ID_LOG_NAME, IdLog, read_id_log
from stages.gateway.orders import FIRST_ORDER_ID, Order
from stages.gateway.sessions import Gateway
from stages.gateway.symbols import SymbolTable
from stages.ingest.admin import deposit
from stages.ingest.synthetic import Stamper
from stages.records import EVENT_DTYPE
from tests.gateway_helpers import (
    BTC,
    CONFIG,
    ETH,
    FUNDED,
    USD,
    Session,
    buy,
    gateway_config,
    kinds,
    sell,
)
from tests.supervised import READY_TIMEOUT, running

A, B, A2, B2 = b"conn-a", b"conn-b", b"conn-a2", b"conn-b2"
SYMBOLS = SymbolTable.from_risk(CONFIG.risk)


class Pipeline:
    """A gateway, its order-id log, a journal and an Engine, in one thread.

    ``send`` is a frame from a client: its records are noted in the id log, flushed, then
    journaled and processed (the order the gateway process keeps). Answers wait in
    ``unreleased`` until ``release`` hands them to the gateway (the report seqs flushed to
    the log before the reports are delivered).
    """

    def __init__(self, directory: Path, gateway=None, engine=None, journal=()):
        self.directory = directory
        self.engine = engine if engine is not None else Engine(CONFIG)
        self.journal: list[np.ndarray] = list(journal)
        self.stamper = Stamper(int(self.journal[-1]["seq"][-1]) if self.journal else 0)
        self.gateway = gateway or Gateway(SYMBOLS, max_accounts=CONFIG.risk.max_accounts)
        orders, seqs, applied = self.gateway.id_log_state()
        self.id_log = IdLog.start(
            directory, fsync=False, orders=orders, report_seqs=seqs, applied=applied
        )
        self.unreleased = np.zeros(0, dtype=EVENT_DTYPE)
        self.released: list[np.ndarray] = []
        self.inbox: dict[bytes, list[P.Message]] = defaultdict(list)

    def fund(self) -> None:
        funding = [deposit(a, x, 10**9) for a in FUNDED for x in (USD, BTC, ETH)]
        self.sequence(np.concatenate(funding))
        self.release()

    def sequence(self, commands: np.ndarray) -> None:
        stamped = self.stamper.stamp(commands.copy())
        self.journal.append(stamped.copy())
        events = self.engine.process(stamped)
        self.unreleased = np.concatenate((self.unreleased, events))

    def send(self, identity, message, *, release=True, journal=True) -> None:
        step = self.gateway.on_frame(identity, Codec.MSGPACK.encode(message), 0.0)
        self.receive(step.replies)
        if len(step.commands):
            self.id_log.add_orders(step.new_orders)
            self.id_log.flush()  # before the ring: an order the engine sees is logged
            if journal:
                self.sequence(step.commands)
        if release:
            self.release()

    def release(self, count: int | None = None, already_reported: int = 0) -> None:
        """Hand the next ``count`` answers (all: None) to the gateway."""
        count = len(self.unreleased) if count is None else count
        events, self.unreleased = self.unreleased[:count], self.unreleased[count:]
        self.released.append(events)
        out = self.gateway.on_events(events, already_reported)
        self.id_log.note_report_seqs(self.gateway.report_seqs())
        self.id_log.note_applied(self.gateway.applied)
        self.id_log.flush()  # before the reports leave
        self.receive(out)

    def receive(self, outgoing) -> None:
        for out in outgoing:
            self.inbox[out.identity].append(out.codec.decode_reply(out.frame()))

    def take(self, identity) -> list[P.Message]:
        messages, self.inbox[identity] = self.inbox[identity], []
        return messages

    def logon(self, identity, account) -> P.LogonAck:
        self.send(identity, P.Logon(account=account))
        (ack,) = self.take(identity)
        assert isinstance(ack, P.LogonAck), ack
        return ack

    # --- the crash and the restart --------------------------------------------------------
    def lose(self) -> None:
        """Output released the waiting answers but the gateway never took them (it was
        stopped with them still in its socket)."""
        self.released.append(self.unreleased)
        self.unreleased = self.unreleased[:0]

    def release_through(self, seq: int) -> None:
        """Hand the gateway every waiting answer of commands up to ``seq``."""
        self.release(int(np.searchsorted(self.unreleased["seq"], seq, "right")))

    def lose_some(self, count: int) -> None:
        """Output released the next ``count`` answers; the gateway never took them."""
        self.released.append(self.unreleased[:count])
        self.unreleased = self.unreleased[count:]

    def restart_point(self) -> tuple[int, int]:
        """(state_seq, answers of state_seq + 1 already released), as ``plan_restart``
        decides from output's progress: the last answer released and how many of its seq."""
        released = np.concatenate(self.released)
        last = int(released["seq"][-1])
        count = int(np.count_nonzero(released["seq"] == last))
        answers = np.concatenate((released, self.unreleased))
        if count == int(np.count_nonzero(answers["seq"] == last)):
            return last, 0
        return last - 1, count

    def restart(self, state_seq: int, id_log="read") -> tuple[Pipeline, np.ndarray]:
        """The pipeline restarted from ``state_seq``, and the commands it sends again."""
        commands = np.concatenate(self.journal)
        state = Engine(CONFIG)
        for batch in self.journal:  # the batches as they were (settlement windows alike)
            batch = batch[batch["seq"] <= state_seq]
            if len(batch):
                state.process(batch.copy())
        resent = commands[commands["seq"] > state_seq].copy()
        gateway = Gateway.restore(
            SYMBOLS,
            resting=state.matching.resting_orders(),
            id_log=read_id_log(self.directory) if id_log == "read" else id_log,
            resent=resent,
            state_seq=state_seq,
            max_accounts=CONFIG.risk.max_accounts,
            next_order_id=int(commands["order_id"].max()) + 1,
        )
        self.id_log.close()
        return Pipeline(self.directory, gateway, state, self.journal), resent

    def send_again(self, resent: np.ndarray, already_reported: int) -> None:
        """The restarted pipeline's first commands: the journaled ones after the restart
        point, answered again; the first ``already_reported`` answers left before."""
        if len(resent):
            self.unreleased = self.engine.process(resent.copy())
        self.release(already_reported=already_reported)


def open_by_cid(pipeline: Pipeline, identity: bytes) -> dict[str, tuple[int, int]]:
    pipeline.send(identity, P.OpenOrders())
    (reply,) = pipeline.take(identity)
    return {o.client_order_id: (o.price, o.leaves_qty) for o in reply.orders}


def engine_open_by_cid(pipeline: Pipeline, account: int, cids: dict[int, str]):
    return {
        cids[int(r[3])]: (int(r[2]), int(r[5]))
        for r in pipeline.engine.matching.resting_orders()
        if int(r[4]) == account
    }


def seqs(messages) -> list[int]:
    return [m.report_seq for m in messages if hasattr(m, "report_seq")]


@pytest.fixture
def before(tmp_path) -> Pipeline:
    """Orders resting, partially filled, replaced, cancelled; then some in flight."""
    pipe = Pipeline(tmp_path)
    pipe.fund()
    pipe.logon(A, 1)
    pipe.logon(B, 2)
    pipe.send(A, sell("a1", 5, 100))  # rests
    pipe.send(A, buy("a2", 3, 90))  # rests, replaced below
    pipe.send(B, buy("b1", 2, 100))  # a1 partially filled: 3 left
    pipe.send(A, buy("a3", 1, 91))
    pipe.send(A, P.Cancel(client_order_id="a3"))  # done before the crash
    pipe.send(A, P.Replace(client_order_id="a2", price=92))
    pipe.send(B, sell("b2", 4, 110))  # rests
    return pipe


def test_a_restored_gateway_knows_its_orders_by_client_order_id(before):
    pipe = before
    a_seq = pipe.gateway.accounts[1].log.last_seq
    b_seq = pipe.gateway.accounts[2].log.last_seq
    seen_a, seen_b = seqs(pipe.take(A)), seqs(pipe.take(B))
    assert seen_a == list(range(1, a_seq + 1)) and seen_b == list(range(1, b_seq + 1))
    # in flight at the crash: journaled and answered by the engine, answers not released
    pipe.send(B, buy("b3", 1, 100), release=False)  # trades with a1: B's, then A's answers
    pipe.send(A, buy("a4", 4, 95), release=False)  # a new order in flight
    pipe.send(A, P.Cancel(client_order_id="b2"), release=False)  # A cannot: not its order
    pipe.send(B, P.Reduce(client_order_id="b2", by=1), release=False)  # in flight
    pipe.release(2)  # b3's accepted and its trade left; a1's trade did not
    pipe.send(A, buy("a5", 1, 80), journal=False, release=False)  # never reached the journal
    assert kinds(pipe.take(A)) == [("business_reject", "b2")]
    assert kinds(pipe.take(B)) == [("accepted", "b3"), ("trade", "b3"), ("done", "b3")]
    cids = {o.order_id: o.client_order_id for o in read_id_log(pipe.directory).orders.values()}

    state_seq, already = pipe.restart_point()
    assert already == 2
    after, resent = pipe.restart(state_seq)
    assert after.gateway.restored == {
        "id_log": "8 orders",  # a1..a5, b1..b3
        "open": 3,  # a1, a2, b2 rest at the restart point
        "in_flight": 2,  # b3 (its first two answers left before), a4
        "forgotten": 3,  # a3 and b1 done before; a5 never reached the journal
        "not_in_log": 0,
        "missed_answers": 0,
    }
    after.send_again(resent, already)
    # nobody is logged on yet: the answers are logged by client order id for the accounts
    ack = after.logon(A2, 1)
    assert ack.last_report_seq > a_seq
    after.send(A2, P.ReportsSince(seq=a_seq))
    (reply,) = after.take(A2)
    assert not reply.gap and seqs(reply.reports) == list(range(a_seq + 1, ack.last_report_seq + 1))
    assert kinds(reply.reports) == [("trade", "a1"), ("accepted", "a4")]
    assert reply.reports[0].leaves_qty == 2  # 5 - 2 (b1) - 1 (b3)
    ack_b = after.logon(B2, 2)
    after.send(B2, P.ReportsSince(seq=b_seq + 3))  # b3's three reports left before
    (reply_b,) = after.take(B2)
    assert kinds(reply_b.reports) == [("replaced", "b2")] and not reply_b.gap
    assert reply_b.reports[0].report_seq == b_seq + 4 == ack_b.last_report_seq
    # a report from before the restart: not held any more, and said so
    after.send(A2, P.ReportsSince(seq=1))
    (old,) = after.take(A2)
    assert old.gap and seqs(old.reports) == list(range(a_seq + 1, ack.last_report_seq + 1))
    # open orders by client order id are the engine's, price and leaves as it holds them
    assert open_by_cid(after, A2) == engine_open_by_cid(after, 1, cids)
    assert open_by_cid(after, A2) == {"a1": (100, 2), "a2": (92, 3), "a4": (95, 4)}
    assert open_by_cid(after, B2) == {"b2": (110, 3)}
    # the client cancels a pre-crash order by its client order id; seqs go on
    after.send(A2, P.Cancel(client_order_id="a2"))
    cancelled = after.take(A2)
    assert kinds(cancelled) == [("cancelled", "a2"), ("done", "a2")]
    assert seqs(cancelled) == [ack.last_report_seq + 1, ack.last_report_seq + 2]
    assert cancelled[0].leaves_qty == 0 and cancelled[0].qty == 3
    after.send(A2, P.Replace(client_order_id="a1", price=101))
    assert kinds(after.take(A2)) == [("replaced", "a1")]
    after.send(A2, P.Reduce(client_order_id="a4", by=1))
    assert after.take(A2)[0].leaves_qty == 3
    # a5 never reached the engine: forgotten, its client order id free; ids go on above it
    after.send(A2, buy("a5", 1, 80))
    (accepted,) = after.take(A2)
    assert accepted.kind == "accepted" and accepted.order_id > max(cids)
    after.send(B2, buy("take", 2, 101))  # fills a1 (at 101 now): the report reaches A2
    assert kinds(after.take(A2)) == [("trade", "a1"), ("done", "a1")]


def test_restored_counts(before):
    pipe = before
    pipe.send(A, buy("a4", 4, 95), release=False)
    pipe.send(A, buy("a5", 1, 80), journal=False, release=False)
    after, _ = pipe.restart(pipe.restart_point()[0])
    assert after.gateway.restored == {
        "id_log": "7 orders",  # a1..a5, b1, b2
        "open": 3,  # a1, a2, b2
        "in_flight": 1,  # a4
        "forgotten": 3,  # a3 and b1 done, a5 never journaled
        "not_in_log": 0,
        "missed_answers": 0,
    }


def test_a_rejected_cancel_in_flight_is_the_cancels_after_the_restart(before):
    pipe = before
    pipe.take(A)
    pipe.send(A, P.Cancel(client_order_id="a1"), release=False)
    pipe.send(A, P.Cancel(client_order_id="a1"), release=False)  # the engine rejects it
    after, resent = pipe.restart(pipe.restart_point()[0])
    after.send_again(resent, 0)
    after.logon(A2, 1)
    after.send(A2, P.ReportsSince(seq=0))
    (reply,) = after.take(A2)
    assert kinds(reply.reports) == [("cancelled", "a1"), ("done", "a1"), ("rejected", "a1")]
    assert reply.reports[-1].request == "cancel"  # not the order's: a1 is done, not rejected
    assert open_by_cid(after, A2) == {"a2": (92, 3)}
    assert all(not o.pending for o in after.gateway._orders.values())


def test_answers_the_old_gateway_never_took_are_a_gap(before):
    pipe = before
    seen = seqs(pipe.take(A))[-1]
    pipe.send(B, buy("b3", 1, 100), release=False)  # a1's maker trade: A's report
    pipe.lose()  # released by output, never taken by the gateway: it will not come again
    pipe.send(A, buy("a4", 4, 95), release=False)
    state_seq, already = pipe.restart_point()
    after, resent = pipe.restart(state_seq)
    assert after.gateway.restored["missed_answers"] == 1
    after.send_again(resent, already)
    ack = after.logon(A2, 1)
    assert ack.last_report_seq == seen + 2  # one skipped, then a4's accepted
    after.send(A2, P.ReportsSince(seq=seen))
    (reply,) = after.take(A2)
    assert reply.gap and kinds(reply.reports) == [("accepted", "a4")]
    assert open_by_cid(after, A2) == {"a1": (100, 2), "a2": (92, 3), "a4": (95, 4)}


def test_answers_the_old_gateway_took_are_not_reported_twice(before):
    """Output had not counted the last batch as released (killed between handing it over
    and writing its progress): it sends it again, the gateway's log says it took it."""
    pipe = before
    b_seq = pipe.gateway.accounts[2].log.last_seq
    assert kinds(pipe.take(B))[-1] == ("accepted", "b2")
    state_seq = int(pipe.journal[-1]["seq"][-1]) - 1  # b2's new is sent again
    after, resent = pipe.restart(state_seq)
    assert after.gateway.restored["missed_answers"] == 0
    after.send_again(resent, 0)
    ack = after.logon(B2, 2)
    assert ack.last_report_seq == b_seq
    after.send(B2, P.ReportsSince(seq=b_seq))
    (reply,) = after.take(B2)
    assert (reply.reports, reply.gap) == ([], False)
    assert open_by_cid(after, B2) == {"b2": (110, 4)}
    after.send(B2, P.Cancel(client_order_id="b2"))
    assert seqs(after.take(B2)) == [b_seq + 1, b_seq + 2]


def test_a_request_sent_after_its_order_was_done_is_still_answered_by_client_order_id(
    before,
):
    pipe = before
    pipe.take(A)
    cancel = pipe.gateway.on_frame(A, Codec.MSGPACK.encode(P.Cancel(client_order_id="a2")), 0.0)
    pipe.send(B, sell("b4", 3, 92))  # fills a2 before the cancel reaches the engine
    pipe.id_log.flush()
    pipe.sequence(cancel.commands)  # journaled; its answer not released at the crash
    assert kinds(pipe.take(A)) == [("trade", "a2"), ("done", "a2")]
    after, resent = pipe.restart(pipe.restart_point()[0])
    assert after.gateway.restored["forgotten"] == 3  # a3, b1, b4 (a2 is awaited, not open)
    after.send_again(resent, 0)
    after.logon(A2, 1)
    after.send(A2, P.ReportsSince(seq=0))
    (reply,) = after.take(A2)
    assert kinds(reply.reports) == [("rejected", "a2")]
    assert (reply.reports[0].request, reply.reports[0].reason) == ("cancel", "UNKNOWN_ORDER")
    assert after.gateway._orders.keys() == {
        o.order_id for a in after.gateway.accounts.values() for o in a.orders.orders()
    }


def test_a_second_restart_restores_from_the_log_the_first_one_wrote(before):
    pipe = before
    after, resent = pipe.restart(pipe.restart_point()[0])
    after.send_again(resent, 0)
    after.logon(A2, 1)
    after.send(A2, buy("a6", 2, 93))
    last = after.gateway.accounts[1].log.last_seq
    log = read_id_log(after.directory)
    assert {o.client_order_id for o in log.orders.values()} == {"a1", "a2", "b2", "a6"}
    again, resent = after.restart(after.restart_point()[0])
    again.send_again(resent, 0)
    ack = again.logon(b"conn-a3", 1)
    assert ack.last_report_seq == last
    assert open_by_cid(again, b"conn-a3") == {"a1": (100, 3), "a2": (92, 3), "a6": (93, 2)}


def test_a_torn_last_record_is_ignored(before):
    pipe = before
    whole = read_id_log(pipe.directory)
    path = pipe.directory / ID_LOG_NAME
    record = np.zeros(1, dtype=ID_LOG_DTYPE)
    record["kind"], record["order_id"], record["cid"] = 1, FIRST_ORDER_ID + 99, b"torn"
    with open(path, "ab") as log:
        log.write(record.tobytes()[:50])  # a kill -9 in the middle of a write
    torn = read_id_log(pipe.directory)
    assert torn.orders == whole.orders and torn.report_seqs == whole.report_seqs
    assert torn.ignored_bytes == 50
    with open(path, "ab") as log:  # a zeroed block after it (a power cut): not records
        log.write(bytes(3 * ID_LOG_DTYPE.itemsize))
    assert read_id_log(pipe.directory).orders == whole.orders
    after, resent = pipe.restart(pipe.restart_point()[0])
    after.send_again(resent, 0)
    after.logon(A2, 1)
    assert open_by_cid(after, A2) == {"a1": (100, 3), "a2": (92, 3)}
    # the restarted gateway's new log starts clean: nothing torn in it
    assert read_id_log(after.directory).ignored_bytes == 0


@pytest.mark.parametrize("damage", ["absent", "not_a_log", "empty"])
def test_without_a_log_nothing_is_restored_and_it_says_so(before, damage):
    pipe = before
    path = pipe.directory / ID_LOG_NAME
    if damage == "absent":
        path.unlink()
    elif damage == "not_a_log":
        path.write_bytes(b"something else entirely" * 10)
    else:
        path.write_bytes(b"")
    assert read_id_log(pipe.directory) is None
    after, resent = pipe.restart(pipe.restart_point()[0])
    restored = after.gateway.restored
    assert "absent or not an id log" in str(restored["id_log"])
    assert restored["open"] == 0 and restored["not_in_log"] == 3  # a1, a2, b2 rest unknown
    after.send_again(resent, 0)
    ack = after.logon(A2, 1)
    assert ack.last_report_seq == 0
    assert open_by_cid(after, A2) == {}
    after.send(A2, P.Cancel(client_order_id="a1"))
    (reject,) = after.take(A2)
    assert reject.kind == "business_reject" and reject.field == "$.client_order_id"
    # order ids still go on above the journal's: never one the engine holds
    after.send(A2, buy("n1", 1, 80))
    assert after.take(A2)[0].order_id > int(np.concatenate(pipe.journal)["order_id"].max())


def test_orders_not_in_the_log_are_not_the_gateways(tmp_path):
    """A resting order of another source (or of another account than the log says) stays
    unknown; the log's order is restored only with its own account."""
    pipe = Pipeline(tmp_path)
    pipe.fund()
    pipe.logon(A, 1)
    pipe.send(A, sell("a1", 5, 100))
    resting = pipe.engine.matching.resting_orders()
    forged = resting.copy()
    forged[:, 4] = 2  # the same order id, another account
    log = read_id_log(tmp_path)
    gateway = Gateway.restore(SYMBOLS, resting=forged, id_log=log)
    assert gateway.restored["not_in_log"] == 1 and gateway.restored["open"] == 0
    gateway = Gateway.restore(SYMBOLS, resting=resting, id_log=log)
    assert gateway.restored["open"] == 1
    assert gateway.order_ids.allocate() > int(resting[0, 3])


def test_the_id_log_is_written_once_per_flush(tmp_path):
    log = IdLog.start(tmp_path, fsync=True)
    gateway = Gateway(SYMBOLS)
    gateway.on_message(A, P.Logon(account=1), 0.0)
    orders = []
    for i in range(5):
        orders += gateway.on_message(A, buy(f"x{i}", 1, 90), 0.0).new_orders
    log.add_orders(orders)
    log.note_report_seqs({1: 7})
    assert log.flush() == 6 and log.flush() == 0
    assert log.counters == {"id_log_writes": 1, "id_log_records": 6}
    contents = read_id_log(tmp_path)
    assert [o.client_order_id for o in contents.orders.values()] == [f"x{i}" for i in range(5)]
    assert contents.report_seqs == {1: 7}
    assert (tmp_path / ID_LOG_NAME).stat().st_size == 7 * ID_LOG_DTYPE.itemsize
    log.close()


def test_order_records_are_packed_and_checksummed_as_the_reader_expects():
    """``order_records`` packs each record once and checksums it in place; byte for byte
    the record packed with ``crc`` 0, checksummed, and packed again with its crc (an
    independent reference), for a client order id of 64 UTF-8 bytes and one cut at 64."""
    cids = ["a", "x" * 64, "é" * 40]  # 80 bytes in UTF-8: cut at 64
    orders = [
        Order(cid, FIRST_ORDER_ID + i, 7 + i, 2, side, 100, 3 + i, 3 + i)
        for i, (cid, side) in enumerate(zip(cids, ["buy", "sell", "buy"], strict=True))
    ]
    layout = struct.Struct("<BBHIqqB3xI64s")
    expected = b""
    for o in orders:
        cid = o.client_order_id.encode()[:64]
        fields = (id_log.ORDER, id_log.SIDES[o.side], o.symbol, o.account, o.order_id, o.qty,
                  len(cid))  # fmt: skip
        expected += layout.pack(*fields, zlib.crc32(layout.pack(*fields, 0, cid)), cid)
    assert id_log.order_records(orders) == expected
    assert id_log.order_records([]) == b""


# --- random flows, crashed anywhere ------------------------------------------------------------

_FLOW = st.lists(
    st.tuples(
        st.integers(0, 2),  # which account
        st.sampled_from(["new", "new", "new", "cancel", "replace", "reduce", "mass"]),
        st.integers(0, 4),  # client order id
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 5),  # qty
        st.integers(97, 103),  # price
        st.sampled_from(["gtc", "gtc", "ioc"]),
    ),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    flow=_FLOW,
    lag=st.integers(0, 4),  # answers of the last so many requests not released at the crash
    partial=st.integers(0, 4),  # then this many more answers released...
    lost=st.booleans(),  # ...and taken by the gateway, or not
)
def test_random_flows_crashed_anywhere_restore_the_engines_view(
    tmp_path_factory, flow, lag, partial, lost
):
    _crash_anywhere(tmp_path_factory, flow, lag, partial, lost)


@pytest.mark.slow
@settings(
    max_examples=900,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(flow=_FLOW, lag=st.integers(0, 4), partial=st.integers(0, 4), lost=st.booleans())
def test_random_flows_crashed_anywhere_restore_the_engines_view_long(
    tmp_path_factory, flow, lag, partial, lost
):
    _crash_anywhere(tmp_path_factory, flow, lag, partial, lost)


def _crash_anywhere(tmp_path_factory, flow, lag, partial, lost) -> None:
    """Whatever was in flight, half-answered or never taken at the crash, the restored
    gateway's open orders are the engine's by order id, nothing awaits an answer that will
    not come, report seqs only go up, and every restored order can be cancelled by its
    client order id."""
    pipe = Pipeline(tmp_path_factory.mktemp("flow"))
    pipe.fund()
    identities = [b"s0", b"s1", b"s2"]
    for i, identity in enumerate(identities):
        pipe.logon(identity, i + 1)
    for who, action, cid, side, qty, price, tif in flow:
        name = f"c{cid}"
        if action == "new":
            request = P.NewOrder(name, 1, side, qty=qty, price=price, tif=tif)
        elif action == "cancel":
            request = P.Cancel(client_order_id=name)
        elif action == "replace":
            request = P.Replace(client_order_id=name, price=price)
        elif action == "reduce":
            request = P.Reduce(client_order_id=name, by=qty)
        else:
            request = P.MassCancel()
        pipe.send(identities[who], request, release=False)
        if len(pipe.journal) > lag:
            pipe.release_through(int(pipe.journal[-1 - lag]["seq"][-1]))
    (pipe.lose_some if lost else pipe.release)(min(partial, len(pipe.unreleased)))
    seen = {
        account: max(seqs(pipe.take(identity)), default=0)
        for account, identity in enumerate(identities, 1)
    }
    logged = set(read_id_log(pipe.directory).orders)

    state_seq, already = pipe.restart_point()
    after, resent = pipe.restart(state_seq)
    after.send_again(resent, already)
    engine = {
        int(r[3]): (int(r[0]), int(r[2]), int(r[4]), int(r[5]))
        for r in after.engine.matching.resting_orders()
        if int(r[3]) in logged
    }
    gateway = {
        o.order_id: (o.symbol, o.price, o.account, o.leaves_qty)
        for account in after.gateway.accounts.values()
        for o in account.orders.orders()
    }
    assert gateway == engine
    assert all(not o.pending for o in after.gateway._orders.values())
    for account, state in after.gateway.accounts.items():
        assert state.log.last_seq >= seen[account]
        new = [r.report_seq for r in state.log.reports]
        assert new == sorted(new) and all(seq > seen[account] for seq in new)
    # each account logs on again and cancels everything it has by client order id
    for account in (1, 2, 3):
        identity = f"again-{account}".encode()
        after.logon(identity, account)
        for cid in list(open_by_cid(after, identity)):
            after.send(identity, P.Cancel(client_order_id=cid))
            assert kinds(after.take(identity))[-2:] == [("cancelled", cid), ("done", cid)]
    assert not any(int(r[3]) in logged for r in after.engine.matching.resting_orders())
    assert after.gateway._orders == {}


# --- in the real pipeline ----------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_after_matching_is_killed_a_client_cancels_its_order_by_client_order_id(tmp_path):
    """kill -9 matching under a client's resting orders: the pipeline restarts, the client
    logs on again, finds its orders by client order id and cancels one."""
    config = gateway_config(tmp_path)
    supervisor = Supervisor(config, tag="gw-restart")
    context = zmq.Context()
    try:
        with running(supervisor, stop_on_exit=True) as outcome:
            (endpoint,) = find_pipeline(tmp_path / "run").gateway
            alice, bob = Session(context, endpoint, 1), Session(context, endpoint, 2)
            assert isinstance(alice.ask(sell("o1", 5, 10_100)), P.Accepted)
            assert isinstance(alice.ask(buy("o2", 3, 9_900)), P.Accepted)
            bob.send(buy("b1", 2, 10_100))
            bob.until(lambda r: isinstance(r, P.Done))
            maker = alice.until(lambda r: isinstance(r, P.Trade))[-1]
            assert (maker.client_order_id, maker.leaves_qty) == ("o1", 3)
            seen = maker.report_seq
            alice.socket.close()
            bob.socket.close()

            os.kill(supervisor.pids["matching"], signal.SIGKILL)
            deadline = time.monotonic() + READY_TIMEOUT
            with PipelineClient(tmp_path / "run") as control:
                while not any("processing again" in n for n in supervisor.report.restarts):
                    assert time.monotonic() < deadline, "the pipeline never came back"
                    control.request(Status(), 5.0)  # a round trip, not a sleep

            again = Session(context, endpoint, 1)
            again.send(P.ReportsSince(seq=seen))
            reply = again.until(lambda r: isinstance(r, P.ReportsReply))[-1]
            assert (reply.last_report_seq, reply.reports, reply.gap) == (seen, [], False)
            again.send(P.OpenOrders())
            listed = again.until(lambda r: isinstance(r, P.OpenOrdersReply))[-1]
            assert {o.client_order_id: (o.price, o.leaves_qty) for o in listed.orders} == {
                "o1": (10_100, 3),
                "o2": (9_900, 3),
            }
            cancelled = again.ask(P.Cancel(client_order_id="o1"))
            assert isinstance(cancelled, P.Cancelled), cancelled
            assert cancelled.report_seq == seen + 1 and cancelled.leaves_qty == 0
            done = again.until(lambda r: isinstance(r, P.Done))[-1]
            assert (done.client_order_id, done.report_seq) == ("o1", seen + 2)
        assert "error" not in outcome, outcome.get("error")
        report = outcome["report"]
        assert len(report.restarts) == 1 and "stage matching died" in report.restarts[0]
        assert report.recovered, report.checks
    finally:
        context.destroy(linger=0)
