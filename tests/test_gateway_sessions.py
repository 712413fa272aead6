"""The gateway's sessions against the in-process Engine: requests become command records,
the engine's events come back as execution reports by client order id, to the owning
session only. Ownership, duplicate client order ids, mass cancel, cancel on disconnect
after a heartbeat lapse (the clock is an argument: nothing sleeps), missed-report recovery,
takeover, BUSY."""

from __future__ import annotations

from collections import defaultdict

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.engine import Engine
from stages.gateway import protocol as P
from stages.gateway.codec import Codec
from stages.gateway.orders import FIRST_ORDER_ID
from stages.gateway.sessions import Gateway, Step
from stages.gateway.symbols import SymbolTable
from stages.ingest.admin import deposit
from stages.ingest.synthetic import Stamper, SyntheticFlow
from stages.records import COMMAND_DTYPE, CommandType, EventType
from tests.gateway_helpers import BTC, CONFIG, ETH, FUNDED, USD, buy, kinds, sell

A, B, C = b"conn-a", b"conn-b", b"conn-c"


class Venue:
    """A gateway in front of an Engine: what the gateway process will do, in one thread.

    Every reply is encoded and decoded again (the wire), and lands in its connection's
    inbox; command records are stamped and processed at once unless held back.
    """

    def __init__(self, **gateway_options) -> None:
        self.engine = Engine(CONFIG)
        self.stamper = Stamper()
        self.gateway = Gateway(
            SymbolTable.from_risk(CONFIG.risk),
            max_accounts=CONFIG.risk.max_accounts,
            **gateway_options,
        )
        self.inbox: dict[bytes, list[P.Message]] = defaultdict(list)
        self.events: list[np.ndarray] = []
        funding = [deposit(a, x, 10**9) for a in FUNDED for x in (USD, BTC, ETH)]
        self.process(np.concatenate(funding))

    def process(self, commands: np.ndarray) -> None:
        events = self.engine.process(self.stamper.stamp(commands.copy()))
        self.events.append(events.copy())
        self.receive(self.gateway.on_events(events))

    def receive(self, outgoing) -> None:
        for out in outgoing:
            self.inbox[out.identity].append(out.codec.decode_reply(out.frame()))

    def deliver(self, step: Step) -> Step:
        self.receive(step.replies)
        if len(step.commands):
            self.process(step.commands)
        return step

    def send(self, identity, message, now=0.0, codec=Codec.MSGPACK, hold=False) -> Step:
        step = self.gateway.on_frame(identity, codec.encode(message), now)
        return step if hold else self.deliver(step)

    def logon(self, identity, account, now=0.0, **options) -> P.LogonAck:
        self.send(identity, P.Logon(account=account, **options), now)
        (ack,) = self.take(identity)
        assert isinstance(ack, P.LogonAck), ack
        return ack

    def take(self, identity) -> list[P.Message]:
        messages, self.inbox[identity] = self.inbox[identity], []
        return messages


@pytest.fixture
def venue() -> Venue:
    venue = Venue()
    venue.logon(A, 1)
    venue.logon(B, 2)
    return venue


# --- end to end ------------------------------------------------------------------------------


def test_reports_say_what_the_engine_did_by_client_order_id(venue):
    fees_before = venue.engine.risk.balance(0, USD)[0]
    venue.send(A, sell("a1", 5, 10_000))
    venue.send(B, buy("b1", 3, 10_100))
    a, b = venue.take(A), venue.take(B)
    assert kinds(a) == [("accepted", "a1"), ("trade", "a1")]
    assert kinds(b) == [("accepted", "b1"), ("trade", "b1"), ("done", "b1")]
    accepted, trade = a
    assert (accepted.side, accepted.price, accepted.qty, accepted.symbol) == ("sell", 10_000, 5, 1)
    assert (trade.price, trade.qty, trade.leaves_qty, trade.liquidity) == (10_000, 3, 2, "maker")
    # maker 10 bps, taker 20 bps of 30,000: fees that tell the two apart
    assert (trade.fee, b[1].fee) == (30_000 * 10 // 10_000, 30_000 * 20 // 10_000) == (30, 60)
    assert b[1].liquidity == "taker" and b[1].other_order_id == a[0].order_id
    assert b[2].filled_qty == 3
    # the fee the report names is the one settlement charged
    assert venue.engine.risk.balance(0, USD)[0] - fees_before == trade.fee + b[1].fee
    # the ids the engine saw are the gateway's, and each report's order id is the event's
    events = np.concatenate(venue.events)
    ours = events[events["order_id"] >= FIRST_ORDER_ID]
    assert [EventType(k).name for k in ours["kind"]] == [
        "ACCEPTED", "ACCEPTED", "TRADE", "TRADE",
    ]  # fmt: skip
    assert {int(i) for i in ours["order_id"]} == {a[0].order_id, b[0].order_id}
    # report seqs count per account from 1
    assert [m.report_seq for m in a] == [1, 2] and [m.report_seq for m in b] == [1, 2, 3]


def test_an_engine_reject_is_a_rejected_report_with_reason_and_code(venue):
    venue.logon(C, 4)  # account 4 has no funds
    venue.send(C, buy("c1", 1, 100))
    (rejected,) = venue.take(C)
    assert isinstance(rejected, P.Rejected)
    assert (rejected.request, rejected.reason, rejected.code) == ("new", "INSUFFICIENT_FUNDS", 40)
    venue.send(C, buy("c1", 1, 100))  # a rejected new is done: its client order id is free
    assert isinstance(venue.take(C)[0], P.Rejected)
    assert venue.gateway._orders == {}


def test_ioc_remainder_and_replace_reduce(venue):
    venue.send(A, buy("ioc", 2, 90, tif="ioc"))
    assert kinds(venue.take(A)) == [("accepted", "ioc"), ("cancelled", "ioc"), ("done", "ioc")]
    venue.send(A, buy("a1", 10, 90))
    venue.take(A)
    venue.send(A, P.Replace(client_order_id="a1", price=95))  # qty: what was open
    (replaced,) = venue.take(A)
    assert (replaced.kind, replaced.price, replaced.leaves_qty) == ("replaced", 95, 10)
    venue.send(A, P.Replace(client_order_id="a1", qty=7))  # price: as last reported
    assert (venue.take(A)[0].price, 7) == (95, 7)
    venue.send(A, P.Reduce(client_order_id="a1", by=2))
    assert venue.take(A)[0].leaves_qty == 5
    venue.send(A, P.Reduce(client_order_id="a1", by=5))  # all of it: the engine says no
    (rejected,) = venue.take(A)
    assert (rejected.request, rejected.reason) == ("reduce", "REDUCE_TOO_LARGE")
    venue.send(A, P.OpenOrders())
    (reply,) = venue.take(A)
    assert [(o.client_order_id, o.price, o.leaves_qty) for o in reply.orders] == [("a1", 95, 5)]


# --- ownership and client order ids ----------------------------------------------------------


def test_an_account_cannot_act_on_another_accounts_order(venue):
    venue.send(A, sell("a1", 5, 100))
    venue.take(A)
    for request in (
        P.Cancel(client_order_id="a1"),
        P.Replace(client_order_id="a1", price=1),
        P.Reduce(client_order_id="a1", by=1),
    ):
        step = venue.send(B, request)
        assert len(step.commands) == 0  # nothing reaches the engine
        (reject,) = venue.take(B)
        assert isinstance(reject, P.BusinessReject)
        assert (reject.field, reject.client_order_id) == ("$.client_order_id", "a1")
    venue.send(B, P.MassCancel())
    assert venue.take(B) == [P.MassCancelAck(symbol=None, orders=0)]
    assert venue.take(A) == []
    venue.send(B, buy("a1", 1, 90))  # client order ids are per account
    assert kinds(venue.take(B)) == [("accepted", "a1")]
    venue.send(A, P.OpenOrders())
    assert [o.leaves_qty for o in venue.take(A)[0].orders] == [5]


def test_reports_go_only_to_the_owning_session(venue):
    venue.logon(C, 3)
    venue.send(A, sell("x", 5, 100))
    venue.send(B, buy("x", 5, 100))
    assert kinds(venue.take(A)) == [("accepted", "x"), ("trade", "x"), ("done", "x")]
    assert kinds(venue.take(B)) == [("accepted", "x"), ("trade", "x"), ("done", "x")]
    assert venue.take(C) == []


def test_duplicate_client_order_ids_are_refused_among_open_orders_only(venue):
    venue.send(A, buy("dup", 1, 90))
    venue.take(A)
    step = venue.send(A, buy("dup", 2, 91))
    assert len(step.commands) == 0
    (reject,) = venue.take(A)
    assert (reject.kind, reject.field, reject.ref_kind) == (
        "business_reject",
        "$.client_order_id",
        "new_order",
    )
    venue.send(A, P.Cancel(client_order_id="dup"))
    assert kinds(venue.take(A)) == [("cancelled", "dup"), ("done", "dup")]
    venue.send(A, buy("dup", 2, 91))  # done: usable again, with a new order id
    (accepted,) = venue.take(A)
    assert accepted.kind == "accepted" and accepted.qty == 2


def test_a_cancel_in_flight_when_the_order_fills_is_rejected_as_the_cancels(venue):
    venue.send(A, sell("a1", 5, 100))
    cancel = venue.send(A, P.Cancel(client_order_id="a1"), hold=True)
    venue.send(B, buy("b1", 5, 100))  # fills a1 before the cancel reaches the engine
    venue.deliver(cancel)
    a = venue.take(A)
    assert kinds(a) == [("accepted", "a1"), ("trade", "a1"), ("done", "a1"), ("rejected", "a1")]
    assert (a[-1].request, a[-1].reason) == ("cancel", "UNKNOWN_ORDER")
    assert venue.gateway._orders == {} and not venue.gateway.accounts[1].orders.open


def test_mass_cancel_of_all_or_one_symbol(venue):
    for cid, symbol in (("b", "BTC-USD"), ("e1", "ETH-USD"), ("e2", 2)):
        venue.send(A, buy(cid, 1, 90, symbol=symbol))
    venue.take(A)
    step = venue.send(A, P.MassCancel(symbol="ETH-USD"))
    assert list(step.commands["kind"]) == [CommandType.CANCEL] * 2
    a = venue.take(A)
    assert a[0] == P.MassCancelAck(symbol=2, orders=2)
    assert kinds(a[1:]) == [
        ("cancelled", "e1"),
        ("done", "e1"),
        ("cancelled", "e2"),
        ("done", "e2"),
    ]
    venue.send(A, P.MassCancel(symbol="DOGE-USD"))
    assert venue.take(A)[0].field == "$.symbol"
    venue.send(A, P.MassCancel())
    assert kinds(venue.take(A)) == [("mass_cancel_ack", None), ("cancelled", "b"), ("done", "b")]


# --- sessions --------------------------------------------------------------------------------


def test_cancel_on_disconnect_after_a_heartbeat_lapse():
    venue = Venue()
    venue.logon(A, 1, cancel_on_disconnect=True, heartbeat_interval=1.0)
    venue.logon(B, 2, now=0.0, heartbeat_interval=10.0)
    venue.send(A, sell("a1", 5, 100), now=0.5)
    pending = venue.send(A, sell("a2", 5, 101), now=0.5, hold=True)  # not at the engine yet
    venue.take(A)
    venue.send(A, P.Heartbeat(), now=1.2)
    beat = venue.gateway.expire(3.0)  # 1.8 s of silence, under 2 intervals: alive
    assert beat.ended == [] and len(beat.commands) == 0
    assert [(o.identity, o.message) for o in beat.replies] == [(A, P.Heartbeat())]
    step = venue.gateway.expire(3.3)  # 2.1 s: lapsed
    assert step.ended == [A] and step.must_send
    assert list(step.commands["kind"]) == [CommandType.CANCEL] * 2
    with pytest.raises(ValueError):
        venue.gateway.busy(step)  # these cancels cannot be refused BUSY
    venue.deliver(pending)  # the NEW that was in flight goes first, then the cancels
    venue.deliver(step)
    assert venue.take(A) == []  # nobody to send them to: logged
    venue.send(B, buy("b1", 10, 101))
    assert kinds(venue.take(B)) == [("accepted", "b1")]  # nothing of A's left to hit
    ack = venue.logon(A, 1, now=4.0)
    assert ack.last_report_seq == 6  # a1, a2 accepted; each cancelled, done
    venue.send(A, P.ReportsSince(seq=1), now=4.0)  # it saw a1's accepted
    (reply,) = venue.take(A)
    assert kinds(reply.reports) == [
        ("accepted", "a2"), ("cancelled", "a1"), ("done", "a1"),
        ("cancelled", "a2"), ("done", "a2"),
    ]  # fmt: skip
    assert {r.reason for r in reply.reports if r.kind == "cancelled"} == {"USER_CANCEL"}
    assert (reply.gap, reply.more, reply.last_report_seq) == (False, False, 6)


def test_without_cancel_on_disconnect_orders_stay_and_any_frame_keeps_a_session():
    venue = Venue()
    venue.logon(A, 1, heartbeat_interval=1.0)
    venue.send(A, sell("a1", 5, 100), now=1.5)
    assert venue.gateway.expire(3.4).ended == []  # the order was a heartbeat too
    step = venue.gateway.expire(3.6)
    assert step.ended == [A] and len(step.commands) == 0
    venue.send(A, P.OpenOrders(), now=4.0)  # the connection is not logged on any more
    assert venue.take(A)[-1].field == "$.kind"
    venue.logon(A, 1, now=4.0)
    venue.send(A, P.OpenOrders(), now=4.0)
    assert [o.client_order_id for o in venue.take(A)[0].orders] == ["a1"]


def test_logout_ends_the_session_and_cancels_on_disconnect():
    venue = Venue()
    venue.logon(A, 1, cancel_on_disconnect=True)
    venue.send(A, sell("a1", 5, 100))
    venue.take(A)
    step = venue.send(A, P.Logout())
    assert step.ended == [A] and step.must_send and len(step.commands) == 1
    assert venue.take(A) == [P.LoggedOut(why="logout")]
    assert venue.gateway.accounts[1].log.last_seq == 3  # cancelled, done: logged


def test_a_second_logon_of_an_account_takes_it_over(venue):
    venue.send(A, sell("a1", 5, 100))
    venue.take(A)
    ack = venue.logon(C, 1)  # account 1 again, from another connection
    assert ack.last_report_seq == 1
    assert venue.take(A) == [P.LoggedOut(why="superseded")]
    venue.send(B, buy("b1", 2, 100))
    assert kinds(venue.take(C)) == [("trade", "a1")]  # the account's reports follow it
    assert venue.take(A) == []
    venue.send(C, P.Cancel(client_order_id="a1"))  # its orders too; no cancel on takeover
    assert kinds(venue.take(C)) == [("cancelled", "a1"), ("done", "a1")]


def test_missed_reports_page_and_gap():
    venue = Venue(report_log_size=4, reports_page=2)
    venue.logon(A, 1)
    venue.logon(B, 2)
    for i in range(3):
        venue.send(A, buy(f"a{i}", 1, 90))  # accepted: seqs 1..3
    venue.send(A, P.MassCancel())  # cancelled + done each: seqs 4..9
    venue.take(A)
    assert venue.gateway.accounts[1].log.last_seq == 9
    venue.send(A, P.ReportsSince(seq=6))
    (page,) = venue.take(A)
    assert [r.report_seq for r in page.reports] == [7, 8] and page.more and not page.gap
    venue.send(A, P.ReportsSince(seq=8))
    (page,) = venue.take(A)
    assert [r.report_seq for r in page.reports] == [9] and not page.more
    venue.send(A, P.ReportsSince(seq=2))  # 3..5 were dropped: say so
    (page,) = venue.take(A)
    assert page.gap and [r.report_seq for r in page.reports] == [6, 7]
    venue.send(A, P.ReportsSince(seq=9))
    assert venue.take(A)[0].reports == []


def test_logon_rules(venue):
    venue.send(C, buy("c1", 1, 90))
    assert venue.take(C)[0].field == "$.kind"  # not logged on
    venue.send(A, P.Logon(account=2))
    assert venue.take(A)[0].field == "$.account"  # one account per session
    venue.send(A, P.Logon(account=1))
    assert "already" in venue.take(A)[0].text
    venue.send(C, P.Logon(account=16))  # max_accounts is 16
    assert venue.take(C)[0].field == "$.account"
    step = venue.gateway.on_frame(C, Codec.MSGPACK.encode(P.Logon(account=3)), 0.0, {4, 5})
    assert step.replies[0].message.field == "$.account"  # credentials for other accounts
    step = venue.gateway.on_frame(C, Codec.MSGPACK.encode(P.Logon(account=3)), 0.0, {3})
    assert isinstance(step.replies[0].message, P.LogonAck)


def test_a_json_session_is_answered_in_json_and_stays_json():
    venue = Venue()
    step = venue.gateway.on_frame(A, b'{"kind": "logon", "account": 1}', 0.0)
    assert step.replies[0].codec is Codec.JSON
    assert msgspec.json.decode(step.replies[0].frame())["kind"] == "logon_ack"
    new = b'{"kind":"new_order","client_order_id":"j","symbol":"BTC-USD","side":"buy","qty":1,"price":9}'
    venue.deliver(venue.gateway.on_frame(A, new, 0.0))
    assert kinds(venue.take(A)) == [("accepted", "j")]
    step = venue.gateway.on_frame(A, Codec.MSGPACK.encode(P.OpenOrders()), 0.0)
    assert step.replies[0].codec is Codec.JSON
    assert isinstance(step.replies[0].message, P.BusinessReject)


def test_an_unknown_symbol_is_refused_at_the_gateway(venue):
    for symbol in ("DOGE-USD", 99):
        step = venue.send(A, buy("a1", 1, 90, symbol=symbol))
        assert len(step.commands) == 0 and venue.take(A)[0].field == "$.symbol"


# --- back-pressure -----------------------------------------------------------------------------


def test_busy_undoes_the_request_and_loses_nothing(venue):
    step = venue.send(A, buy("a1", 1, 90), hold=True)
    busy = venue.gateway.busy(step)
    venue.deliver(busy)
    assert venue.take(A) == [P.Busy(ref_kind="new_order", client_order_id="a1")]
    venue.send(A, P.OpenOrders())
    assert venue.take(A)[0].orders == []
    venue.send(A, buy("a1", 1, 90))  # the same client order id again; a new order id
    (accepted,) = venue.take(A)
    assert accepted.order_id == int(step.commands["order_id"][0]) + 1
    cancel = venue.send(A, P.Cancel(client_order_id="a1"), hold=True)
    venue.deliver(venue.gateway.busy(cancel))
    assert venue.take(A) == [P.Busy(ref_kind="cancel", client_order_id="a1")]
    venue.send(A, P.Cancel(client_order_id="a1"))  # nothing of the refused one awaits
    assert kinds(venue.take(A)) == [("cancelled", "a1"), ("done", "a1")]
    assert venue.gateway.counters["busy"] == 2
    assert venue.gateway._orders == {}


# --- what is not the gateway's -----------------------------------------------------------------


def test_events_of_orders_the_gateway_did_not_send_produce_nothing(venue):
    venue.send(A, sell("far", 5, 10**6))  # never reached by the flow
    venue.send(A, sell("a1", 5, 10_000))
    far = venue.take(A)[0]
    # the synthetic flow trades for accounts 1..3 too (A's and B's), with its own order ids
    flow = SyntheticFlow([1], accounts=3, seed=3)
    for _ in range(5):
        venue.process(flow.next(200))
    synthetic = np.concatenate(venue.events[-5:])
    assert (synthetic["kind"] == EventType.TRADE).sum() > 0
    assert {int(a) for a in synthetic["account"]} >= {1, 2}
    assert {m.client_order_id for m in venue.take(A)} <= {"a1"}  # fills of a1 at most
    assert venue.take(B) == []
    # an event with one of the gateway's ids but another account is not the gateway's either
    events = np.zeros(1, dtype=venue.events[0].dtype)
    events["kind"], events["order_id"], events["account"] = EventType.CANCELLED, far.order_id, 2
    assert venue.gateway.on_events(events) == []


def test_order_ids_resume_above_the_highest_seen_and_never_go_back():
    gateway = Gateway(SymbolTable.from_risk(CONFIG.risk))
    gateway.resume_order_ids(FIRST_ORDER_ID + 41)
    assert gateway.order_ids.allocate() == FIRST_ORDER_ID + 42
    gateway.resume_order_ids(5)
    assert gateway.order_ids.allocate() == FIRST_ORDER_ID + 43
    assert gateway.order_ids.highest == FIRST_ORDER_ID + 43


# --- a random flow: the gateway's view equals the engine's -------------------------------------

_ACTIONS = st.lists(
    st.tuples(
        st.integers(0, 2),  # which session
        st.sampled_from(["new", "new", "new", "cancel", "replace", "reduce", "mass", "logon"]),
        st.integers(0, 4),  # client order id
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 5),  # qty
        st.integers(97, 103),  # price
        st.sampled_from(["gtc", "gtc", "ioc", "fok"]),
        st.sampled_from(["none", "cancel_resting", "decrement_and_cancel"]),
        st.integers(0, 3),  # in flight: deliver all but this many of the oldest requests
        st.integers(0, 9),  # 0: the ring is full, answer BUSY
    ),
    max_size=40,
)


def _run_flow(actions) -> None:
    """Requests stay in flight (sent, not yet at the engine) for a few more requests, and
    some are refused BUSY, so answers race against later requests as on a real gateway."""
    venue = Venue()
    identities = [b"s0", b"s1", b"s2"]
    generation = [0, 0, 0]
    for i, identity in enumerate(identities):
        venue.logon(identity, i + 1)
    queue: list[Step] = []
    for who, action, cid, side, qty, price, tif, stp, lag, ring in actions:
        identity = identities[who]
        name = f"c{cid}"
        if action == "new":
            request = P.NewOrder(
                client_order_id=name, symbol=1, side=side, qty=qty, price=price, tif=tif, stp=stp
            )
        elif action == "cancel":
            request = P.Cancel(client_order_id=name)
        elif action == "replace":
            request = P.Replace(client_order_id=name, price=price)
        elif action == "reduce":
            request = P.Reduce(client_order_id=name, by=qty)
        elif action == "mass":
            request = P.MassCancel()
        else:  # reconnect from a new connection: a takeover
            generation[who] += 1
            identities[who] = f"s{who}-{generation[who]}".encode()
            venue.logon(identities[who], who + 1)
            continue
        step = venue.send(identity, request, hold=True)
        if len(step.commands) and ring == 0:
            venue.deliver(venue.gateway.busy(step))
        else:
            queue.append(step)
        while len(queue) > lag:
            venue.deliver(queue.pop(0))
    for step in queue:
        venue.deliver(step)
    # every account's reports arrived in seq order, 1, 2, 3... over its connections
    for account in (1, 2, 3):
        got = [
            m.report_seq
            for ident, box in venue.inbox.items()
            if ident.startswith(f"s{account - 1}".encode())
            for m in box
            if hasattr(m, "report_seq")
        ]
        assert got == list(range(1, len(got) + 1))
        assert venue.gateway.accounts[account].log.last_seq == len(got)
    # what the gateway holds open is exactly what rests in the engine for its ids
    engine = {
        int(r[3]): (int(r[0]), int(r[2]), int(r[4]), int(r[5]))
        for r in venue.engine.matching.resting_orders()
    }
    gateway = {
        o.order_id: (o.symbol, o.price, o.account, o.leaves_qty)
        for a in venue.gateway.accounts.values()
        for o in a.orders.orders()
    }
    assert gateway == engine
    assert all(not o.pending for o in venue.gateway._orders.values())
    assert set(venue.gateway._orders) == set(gateway)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=_ACTIONS)
def test_random_flows_leave_the_gateway_agreeing_with_the_engine(actions):
    _run_flow(actions)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=_ACTIONS)
def test_random_flows_leave_the_gateway_agreeing_with_the_engine_long(actions):
    _run_flow(actions)


def test_command_records_carry_each_field_of_the_request():
    gateway = Gateway(SymbolTable.from_risk(CONFIG.risk))
    gateway.on_message(A, P.Logon(account=5), 0.0)
    request = P.NewOrder(
        client_order_id="r", symbol="ETH-USD", side="sell", qty=2**63 - 1, price=2**62,
        type="limit", tif="gtc", post_only=True, stp="decrement_and_cancel",
    )  # fmt: skip
    (record,) = gateway.on_message(A, request, 0.0).commands
    assert record.dtype == COMMAND_DTYPE
    expected = dict(
        seq=0, ts_ingest=0, ts_risk=0, order_id=FIRST_ORDER_ID, price=2**62, qty=2**63 - 1,
        account=5, symbol=2, kind=CommandType.NEW, side=1, order_type=0, tif=0, stp=4,
        flags=1, reason=0, origin=0,
    )  # fmt: skip
    assert {name: int(record[name]) for name in expected} == expected
    (replace,) = gateway.on_message(A, P.Replace(client_order_id="r", qty=3), 0.0).commands
    assert (replace["kind"], replace["price"], replace["qty"]) == (CommandType.REPLACE, 2**62, 3)
    (reduce,) = gateway.on_message(A, P.Reduce(client_order_id="r", by=2), 0.0).commands
    assert (reduce["kind"], reduce["order_id"], reduce["qty"]) == (
        CommandType.REDUCE,
        FIRST_ORDER_ID,
        2,
    )
    commands = gateway.on_message(A, P.Cancel(client_order_id="r"), 0.0).commands
    assert commands.flags.writeable  # ingest stamps them in place


# --- a batch frame against the same requests one frame each ----------------------------------
_CIDS = st.sampled_from(["a", "b", "c", "d"])
_BATCH_REQUESTS = st.lists(
    st.one_of(
        st.builds(
            P.NewOrder,
            client_order_id=_CIDS,
            symbol=st.sampled_from(["BTC-USD", "ETH-USD", "NOPE-USD", 1]),
            side=st.sampled_from(["buy", "sell"]),
            qty=st.integers(1, 5),
            price=st.integers(90, 110),
            tif=st.sampled_from(["gtc", "ioc"]),
            post_only=st.booleans(),
            stp=st.sampled_from(["none", "cancel_resting"]),
        ),
        st.builds(P.Cancel, client_order_id=_CIDS),
        st.builds(P.Replace, client_order_id=_CIDS, qty=st.integers(1, 5)),
        st.builds(P.Reduce, client_order_id=_CIDS, by=st.integers(1, 2)),
        st.builds(P.MassCancel),
        st.just(P.Heartbeat()),
        st.just(P.OpenOrders()),
        st.just(P.Logout()),
        st.builds(P.Logon, account=st.sampled_from([5, 6])),
    ),
    min_size=1,
    max_size=24,
)


def _step_view(step: Step) -> tuple:
    replies = [(o.identity, o.message, o.codec) for o in step.replies]
    return replies, step.packed, step.new_orders, step.ended, step.must_send


@settings(max_examples=150, deadline=None)
@given(before=_BATCH_REQUESTS, batch=_BATCH_REQUESTS)
def test_a_batch_frame_is_judged_as_its_requests_one_frame_each(before, batch):
    """``on_frames`` takes a logged-on session's well-formed msgpack batch by its own loop
    (new orders and cancels straight to their handlers); it must decide exactly what the
    same requests decide one frame each, logons and logouts inside the batch included."""
    codec = Codec.MSGPACK
    gateways = [Gateway(SymbolTable.from_risk(CONFIG.risk)) for _ in range(2)]
    for gateway in gateways:
        gateway.on_frame(A, codec.encode(P.Logon(account=5)), 0.0)
        for message in before:  # some open orders, perhaps a logged-off session
            gateway.on_frame(A, codec.encode(message), 0.5)
    batched, single = gateways
    frame = msgspec.msgpack.encode(batch)  # an array even of one request
    steps = batched.on_frames(A, frame, 1.0)
    expected = [single.on_frame(A, codec.encode(message), 1.0) for message in batch]
    assert [_step_view(s) for s in steps] == [_step_view(s) for s in expected]
    assert batched.counters == single.counters
    assert batched.sessions == single.sessions
    for account in (5, 6):
        if account in single.accounts:
            assert batched.accounts[account].orders.open == single.accounts[account].orders.open
    # and a refused batch undoes to the same state as refused requests
    for step, same in zip(reversed(steps), reversed(expected), strict=True):
        if step.packed and not step.must_send:
            assert _step_view(batched.busy(step)) == _step_view(single.busy(same))
    assert batched.counters == single.counters and batched._orders == single._orders
