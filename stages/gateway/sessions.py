"""The gateway's state and decisions: sessions, accounts, requests in, reports out.

``Gateway`` is pure domain code: no sockets, no clock of its own (every call takes ``now``,
in seconds of any monotonic clock), no processes. The process that binds the ROUTER socket
feeds it each frame with the connection's identity (``on_frame``), puts the command records
of the returned ``Step`` into the ring into ingest, feeds it every released event batch
(``on_events``) and calls ``expire`` now and then; it sends whatever comes back.

**Sessions and accounts.** A session is one connection (its ROUTER identity) logged on as
one account; the account is fixed for the session's life. An account has at most one live
session: a logon for an account that already has one takes the account over and ends the
old session (``LoggedOut(superseded)``, no cancel on disconnect: the account carries on).
That is what a client reconnecting after a network blip needs — its old connection may not
have lapsed yet — and it keeps "the session that owns the order" one well-defined
connection. Everything that must outlive a connection belongs to the account: its open
orders (by client order id), and its report log and report sequence numbers, so a client
that reconnects asks ``ReportsSince(n)`` and ``OpenOrders`` and is whole again.

**Ownership.** Every request is resolved through the session's account: a client order id
is looked up among that account's open orders only, so another account's order is simply
unknown to it (a ``BusinessReject`` on ``$.client_order_id``, the same as a mistyped one),
and reports go to the owning account's session only. An event about an order the gateway
did not send (the synthetic load, a replay, another gateway) produces nothing.

**Refusals.** What the gateway refuses itself (a malformed frame, an unknown symbol, a
duplicate or unknown client order id, a request before logon) is a ``BusinessReject`` to the
sender and nothing reaches the engine; what the engine refuses comes back as a ``Rejected``
report with the engine's reason.

**Back-pressure.** ``on_frame`` changes the state as though its records went in; if the
ring is full the caller calls ``busy(step)`` instead of sending them, which undoes exactly
that and gives the ``Busy`` reply: nothing is lost silently and nothing is half-done. The
cancels of an ending session (``Logout`` or ``expire`` with cancel on disconnect) are
``must_send``: they cannot be refused BUSY; the caller queues them until the ring takes
them.

**Heartbeats.** A session is alive while frames arrive: any frame counts. Silence for more
than ``LAPSE_FACTOR`` × its interval ends it at the next ``expire(now)``, with, if the
session asked for cancel on disconnect, one CANCEL per open order of the account, sent
through the sequenced stream so they are journaled and replayed like any cancel. The
gateway also says ``Heartbeat`` to each session every interval (``expire`` returns them).

**Restarts.** A restarted pipeline gets a gateway rebuilt by ``Gateway.restore`` from the
restart state's resting orders, the commands the pipeline sends again and the order-id log
(``stages.gateway.id_log``, which the process keeps: ``Step.new_orders`` and
``report_seqs()`` say what to note in it): every account's open and in-flight orders by
client order id, and its report seqs continuing above the last one logged.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from stages.gateway import commands
from stages.gateway.codec import Codec, ProtocolError, sniff
from stages.gateway.orders import FIRST_ORDER_ID, AccountOrders, Order, OrderIds
from stages.gateway.protocol import (
    MAX_ACCOUNT,
    BusinessReject,
    Busy,
    Cancel,
    Heartbeat,
    LoggedOut,
    Logon,
    LogonAck,
    Logout,
    MassCancel,
    MassCancelAck,
    Message,
    NewOrder,
    OpenOrders,
    OpenOrdersReply,
    Reduce,
    Replace,
    ReportsReply,
    ReportsSince,
)
from stages.gateway.reports import (
    REPORT_LOG_SIZE,
    REPORTS_PAGE,
    Outbox,
    ReportLog,
    apply_events,
)
from stages.gateway.symbols import SymbolTable
from stages.records import COMMAND_DTYPE, CommandType, Side

if TYPE_CHECKING:
    from stages.gateway.id_log import IdLogContents

#: a session whose peer was silent for this many heartbeat intervals is ended
LAPSE_FACTOR = 2.0

_NO_COMMANDS = np.zeros(0, dtype=COMMAND_DTYPE)


class Outgoing(NamedTuple):
    """A message for one connection, in that connection's codec (a tuple: one is made per
    report, and a frozen dataclass costs ~1 µs more to build)."""

    identity: bytes
    message: Message
    codec: Codec

    def frame(self) -> bytes:
        return self.codec.encode(self.message)


#: ``Outbox`` (from ``reports``): what leaves for each connection at the end of a round,
#: identity -> (its codec, the messages in the order they were made). The process keeps one
#: and sends each connection's messages as one frame (``codec``, Batches);
#: ``Gateway.on_events_into`` appends to it directly: a report costs no ``Outgoing``.


def queue(outbox: Outbox, outgoing: Outgoing) -> None:
    """Add one message for its connection to ``outbox``, after what is there for it."""
    queued = outbox.get(outgoing.identity)
    if queued is None:
        outbox[outgoing.identity] = (outgoing.codec, [outgoing.message])
    else:
        queued[1].append(outgoing.message)


class Step:
    """What one call decided: replies to send, command records for ingest, sessions ended.

    ``packed``: unsequenced ``COMMAND_DTYPE`` records as bytes (ingest stamps them; the
    process joins a round's and makes them one batch); ``commands`` is the same as an
    array. With ``must_send`` they may not be refused BUSY (cancels of an ending session).
    ``new_orders``: the orders whose NEW is among them (for the order-id log, once the
    ring took them). A plain class with slots: one is made per request, positionally on the
    hot paths (a NEW's or a cancel's step: ~0.6 µs, where keywords and a later append made
    it ~1.3).
    """

    __slots__ = ("_request", "_undo", "ended", "must_send", "new_orders", "packed", "replies")

    def __init__(
        self,
        replies: list[Outgoing] | None = None,
        packed: bytes = b"",
        must_send: bool = False,
        undo: list[Callable[[], None]] | None = None,
        request: tuple[Session, Message] | None = None,
        new_orders: list[Order] | None = None,
    ) -> None:
        self.replies: list[Outgoing] = [] if replies is None else replies
        self.packed = packed
        self.ended: list[bytes] = []
        self.must_send = must_send
        self.new_orders: list[Order] = [] if new_orders is None else new_orders
        self._undo: list[Callable[[], None]] = [] if undo is None else undo
        #: the session and request a ``busy`` answers (built only if the ring is full)
        self._request = request

    @property
    def commands(self) -> np.ndarray:
        """The records as a writable ``COMMAND_DTYPE`` batch (a new one each call)."""
        return commands.records(self.packed) if self.packed else _NO_COMMANDS


@dataclass
class Session:
    """One logged-on connection."""

    identity: bytes
    account: int
    codec: Codec
    heartbeat_interval: float
    cancel_on_disconnect: bool
    last_seen: float
    next_heartbeat: float


@dataclass
class Account:
    """What outlives an account's connections: its open orders and its reports."""

    account: int
    orders: AccountOrders
    log: ReportLog
    session: Session | None = None


class Gateway:
    """Sessions, accounts and orders of one order-entry gateway (see the module docstring).

    ``symbols``: what may be traded; ``max_accounts``: account ids must be below it (the
    engine's ``RiskConfig.max_accounts``; None: any uint32 but 0); ``next_order_id``: where
    order-id allocation starts (after a restart: above the highest id journaled, see
    ``resume_order_ids``).
    """

    def __init__(
        self,
        symbols: SymbolTable,
        *,
        max_accounts: int | None = None,
        next_order_id: int = FIRST_ORDER_ID,
        report_log_size: int = REPORT_LOG_SIZE,
        reports_page: int = REPORTS_PAGE,
    ) -> None:
        self.symbols = symbols
        self.max_accounts = MAX_ACCOUNT + 1 if max_accounts is None else max_accounts
        self.order_ids = OrderIds(next_order_id)
        self.report_log_size = report_log_size
        self.reports_page = reports_page
        self.sessions: dict[bytes, Session] = {}
        self.accounts: dict[int, Account] = {}
        self._orders: dict[int, Order] = {}  # by order id: open ones, and done ones in flight
        self._reported: set[int] = set()  # accounts whose report seq grew (``report_seqs``)
        #: (seq, answers of it) of the last released answer taken: how far ``on_events`` got
        self.applied: tuple[int, int] | None = (0, 0)
        #: after a restore: answers up to this point were reported before (and the count of
        #: those of its seq seen again so far)
        self._silent_until: tuple[int, int] | None = None
        self._silent_seen = 0
        #: what ``restore`` found (empty for a gateway that was not restored)
        self.restored: dict[str, int | str] = {}
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "frames",
                "business_rejects",
                "busy",
                "orders",
                "reports",
                "reports_unsent",
                "sessions_ended",
                "cancels_on_disconnect",
            ),
            0,
        )

    # --- restart -----------------------------------------------------------------------------
    @classmethod
    def restore(
        cls,
        symbols: SymbolTable,
        *,
        resting: np.ndarray,
        id_log: IdLogContents | None,
        resent: np.ndarray | None = None,
        state_seq: int | None = None,
        max_accounts: int | None = None,
        next_order_id: int = FIRST_ORDER_ID,
        report_log_size: int = REPORT_LOG_SIZE,
        reports_page: int = REPORTS_PAGE,
    ) -> Gateway:
        """A gateway for a pipeline restarted after a crash (``docs/gateway.md``, Restarts).

        ``resting``: the restart state's resting orders (``MatchingEngine.resting_orders()``
        rows: symbol, side, price, order id, account, open qty, ...); ``resent``: the
        journaled commands after the restart's seq, which the pipeline sends again (their
        answers come back through ``on_events``); ``id_log``: what ``read_id_log`` found
        (None: no log, or not one: nothing is restored, ``restored["id_log"]`` says so);
        ``state_seq``: the restart's seq (the answers of commands up to it never come again).

        Every order of the log that rests gets its client order id back, open and
        acknowledged with the engine's price and open quantity; every NEW sent again is
        pending (its ACCEPTED/REJECTED lands by client order id), and every CANCEL, REPLACE,
        REDUCE sent again awaits its answer, so a REJECTED is told apart as before (also for
        an order done before the restart's seq: its REJECTED reaches the owner). The rest
        of the log (orders done before the restart's seq, or whose NEW never reached the
        journal) is forgotten: nothing of them will be answered. Each account's report log
        continues above the last seq the log holds. ``filled_qty`` of a restored order is
        what of its quantity is no longer open (fills, and any reduce before the restart).

        The answers sent again are reported only after the point the log says the old
        gateway had taken (``on_events`` then ignores output's ``already_reported``). If
        that point is before ``state_seq``, the old gateway never took answers that will not
        come again: every account's report seq skips one, so a client that asks
        ``ReportsSince`` its last seq is told ``gap`` and resynchronises with ``OpenOrders``.
        """
        gateway = cls(
            symbols,
            max_accounts=max_accounts,
            next_order_id=next_order_id,
            report_log_size=report_log_size,
            reports_page=reports_page,
        )
        restored: dict[str, int | str] = dict.fromkeys(
            ("open", "in_flight", "forgotten", "not_in_log", "missed_answers"), 0
        )
        gateway.restored = restored
        if id_log is None:
            restored["id_log"] = "absent or not an id log: no order known by client order id"
            restored["not_in_log"] = len(resting)
            return gateway
        restored["id_log"] = f"{len(id_log.orders)} orders"
        gateway.resume_order_ids(id_log.highest_order_id)
        missed = 0  # 1: answers the old gateway never took will not come again
        if id_log.applied is not None:
            gateway.applied = gateway._silent_until = id_log.applied
            if state_seq is not None and id_log.applied[0] < state_seq:
                missed = 1
        restored["missed_answers"] = missed
        accounts = set(id_log.report_seqs) | {o.account for o in id_log.orders.values()}
        for account in sorted(accounts):
            if 0 < account < gateway.max_accounts:
                seq = id_log.report_seqs.get(account, 0) + missed
                gateway._account(account).log = ReportLog(report_log_size, seq)
        found: list[Order] = []
        for symbol, side, price, order_id, account, leaves in resting[:, :6].tolist():
            logged = id_log.orders.get(order_id)
            if logged is None or logged.account != account:
                restored["not_in_log"] += 1  # not the gateway's (or its log lost it)
                continue
            qty = max(logged.qty, leaves)
            found.append(
                Order(
                    client_order_id=logged.client_order_id,
                    order_id=order_id,
                    account=account,
                    symbol=symbol,
                    side=_SIDE_NAMES[side],
                    price=price,
                    qty=qty,
                    leaves_qty=leaves,
                    filled_qty=qty - leaves,
                    accepted=True,
                )
            )
        restored["open"] = len(found)
        by_id = {order.order_id: order for order in found}
        if resent is not None and len(resent):
            in_flight = _REQUESTS_SENT_AGAIN
            for kind, order_id, account, symbol, price, qty in zip(
                resent["kind"].tolist(),
                resent["order_id"].tolist(),
                resent["account"].tolist(),
                resent["symbol"].tolist(),
                resent["price"].tolist(),
                resent["qty"].tolist(),
                strict=True,
            ):
                if kind == CommandType.NEW:
                    logged = id_log.orders.get(order_id)
                    if logged is None or logged.account != account or order_id in by_id:
                        continue
                    order = Order(
                        client_order_id=logged.client_order_id,
                        order_id=order_id,
                        account=account,
                        symbol=symbol,
                        side=logged.side,  # type: ignore[arg-type]
                        price=price,
                        qty=qty,
                        leaves_qty=qty,
                    )
                    order.pending.append("new")
                    by_id[order_id] = order
                    restored["in_flight"] += 1
                elif kind in in_flight:
                    order = by_id.get(order_id)
                    logged = id_log.orders.get(order_id)
                    if order is None and logged is not None and logged.account == account:
                        # done before the restart's seq, but a request about it was sent
                        # after: its REJECTED still reaches the owner by client order id
                        order = Order(
                            client_order_id=logged.client_order_id,
                            order_id=order_id,
                            account=account,
                            symbol=logged.symbol,
                            side=logged.side,  # type: ignore[arg-type]
                            price=0,
                            qty=logged.qty,
                            leaves_qty=0,
                            accepted=True,
                            done=True,
                        )
                        by_id[order_id] = order
                    if order is not None and order.account == account:
                        order.pending.append(in_flight[kind])
        for order in sorted(by_id.values(), key=lambda o: o.order_id):  # oldest first
            if not order.done:
                gateway._account(order.account).orders.add(order)
            gateway._orders[order.order_id] = order
        restored["forgotten"] = len(id_log.orders) - len(by_id)
        return gateway

    def id_log_state(self) -> tuple[list[Order], dict[int, int], tuple[int, int] | None]:
        """What a new order-id log must hold for this gateway to be restored again: the
        orders it still knows (open, or with requests in flight), oldest first, every
        account's last report seq, and how far it took the released answers."""
        orders = sorted(self._orders.values(), key=lambda o: o.order_id)
        seqs = {a: acc.log.last_seq for a, acc in self.accounts.items() if acc.log.last_seq}
        return orders, seqs, self.applied

    def report_seqs(self) -> dict[int, int]:
        """The last report seq of every account that was reported to since the last call
        (for the order-id log: the process writes them before it sends those reports)."""
        seqs = {a: self.accounts[a].log.last_seq for a in self._reported}
        self._reported.clear()
        return seqs

    def _account(self, account: int) -> Account:
        """The account's state, created empty on first use."""
        state = self.accounts.get(account)
        if state is None:
            state = Account(account, AccountOrders(), ReportLog(self.report_log_size))
            self.accounts[account] = state
        return state

    # --- order ids ---------------------------------------------------------------------------
    def resume_order_ids(self, highest_seen: int) -> None:
        """Allocate above ``highest_seen`` from now on (the highest id of the journal)."""
        self.order_ids.resume(highest_seen)

    # --- requests ----------------------------------------------------------------------------
    def on_frame(
        self,
        identity: bytes,
        frame: bytes,
        now: float,
        allowed_accounts: Container[int] | None = None,
    ) -> Step:
        """Decode and act on one frame of connection ``identity``.

        ``allowed_accounts``: the accounts this connection's credentials may trade (CURVE:
        its key's); None allows any. Checked at logon, which fixes the account.
        """
        self.counters["frames"] += 1
        session = self.sessions.get(identity)
        if session is not None:
            session.last_seen = now
        codec = session.codec if session is not None else sniff(frame)
        try:
            message = codec.decode_request(frame)
        except ProtocolError as exc:
            return self._reject_with(identity, codec, exc.reject)
        return self.on_message(identity, message, now, codec, allowed_accounts)

    def on_frames(
        self,
        identity: bytes,
        frame: bytes,
        now: float,
        allowed_accounts: Container[int] | None = None,
    ) -> list[Step]:
        """``on_frame`` for a frame holding one request or a batch of them (``codec``,
        Batches): one step per request, in order, each request decoded and judged on its
        own, so a bad one is rejected and the rest still count."""
        session = self.sessions.get(identity)
        codec = session.codec if session is not None else sniff(frame)
        if not codec.is_batch(frame):
            return [self.on_frame(identity, frame, now, allowed_accounts)]
        requests = codec.decode_batch(frame)
        if requests is not None:  # every element a well-formed request: decoded at once
            self.counters["frames"] += len(requests)
            if session is None:
                return [
                    self.on_message(identity, r, now, codec, allowed_accounts) for r in requests
                ]
            session.last_seen = now
            return self._on_requests(session, requests, now, allowed_accounts)
        try:
            messages = codec.split(frame)
        except ProtocolError as exc:
            self.counters["frames"] += 1
            if session is not None:
                session.last_seen = now
            return [self._reject_with(identity, codec, exc.reject)]
        return [self.on_frame(identity, m, now, allowed_accounts) for m in messages]

    def on_message(
        self,
        identity: bytes,
        message: Message,
        now: float,
        codec: Codec = Codec.MSGPACK,
        allowed_accounts: Container[int] | None = None,
    ) -> Step:
        """Act on a decoded request (``on_frame`` without the frame)."""
        session = self.sessions.get(identity)
        if isinstance(message, Logon):
            return self._logon(identity, message, now, codec, session, allowed_accounts)
        if session is None:
            return self._reject(
                identity, codec, "$.kind", "not logged on: send a logon first", message
            )
        session.last_seen = now
        account = self.accounts[session.account]
        handler = _HANDLERS.get(type(message))
        if handler is None:  # a reply kind cannot decode as a request; a caller's mistake
            return self._reject(identity, codec, "$.kind", "not a request", message)
        return handler(self, session, account, message)

    def _on_requests(
        self,
        session: Session,
        requests: list[Message],
        now: float,
        allowed_accounts: Container[int] | None,
    ) -> list[Step]:
        """``on_message`` for each request of a logged-on session's batch, in order. Hot: new
        orders and cancels, nearly all of a trading client's traffic, go straight to their
        handlers; anything else goes through ``on_message``, and the session is looked up
        again after it (a ``logout`` or ``logon`` in the batch changes it)."""
        identity, codec = session.identity, session.codec
        account = self.accounts[session.account]
        new_order, amend = self._new_order, self._amend
        steps: list[Step] = []
        for request in requests:
            kind = type(request)
            if kind is NewOrder and session is not None:
                steps.append(new_order(session, account, request))  # type: ignore[arg-type]
            elif kind is Cancel and session is not None:
                steps.append(amend(session, account, request, "cancel"))  # type: ignore[arg-type]
            else:
                steps.append(self.on_message(identity, request, now, codec, allowed_accounts))
                session = self.sessions.get(identity)  # type: ignore[assignment]
                if session is not None:
                    account = self.accounts[session.account]
        return steps

    def busy(self, step: Step) -> Step:
        """The ring refused ``step``'s records: undo what ``on_frame`` did and answer Busy."""
        if step.must_send or step._request is None:
            raise ValueError("the cancels of an ending session cannot be refused: queue them")
        for undo in reversed(step._undo):
            undo()
        step._undo, (session, request) = [], step._request
        step._request = None  # undone once only
        self.counters["busy"] += 1
        cid = getattr(request, "client_order_id", None)
        busy = Busy(ref_kind=request.kind, client_order_id=cid)
        return Step(replies=[Outgoing(session.identity, busy, session.codec)])

    # --- events ------------------------------------------------------------------------------
    def on_events(self, events: np.ndarray, already_reported: int = 0) -> list[Outgoing]:
        """The reports of a released event batch, for the sessions owning the orders
        (``on_events_into`` a fresh outbox: each session's reports in order)."""
        outbox: Outbox = {}
        self.on_events_into(outbox, events, already_reported)
        return [Outgoing(i, m, codec) for i, (codec, ms) in outbox.items() for m in ms]

    def on_events_into(self, outbox: Outbox, events: np.ndarray, already_reported: int = 0) -> None:
        """Add the reports of a released event batch to ``outbox``, for the sessions owning
        the orders.

        Reports are logged whether or not the owner is connected (``ReportsSince``).
        ``already_reported``: the first so many events were reported before a restart
        (output hands them over again with the rest of their command's answers): they move
        the orders along and report nothing. A gateway restored with a log that says how far
        it got decides that itself instead (``restore``).
        """
        if not len(events):
            return
        if self._silent_until is not None:
            already_reported = self._silence(events["seq"])
        orders, accounts, symbols, reported = (
            self._orders,
            self.accounts,
            self.symbols,
            self._reported,
        )
        if already_reported:
            apply_events(events[:already_reported], orders, accounts, symbols, None, reported)
        made, unsent = apply_events(
            events[already_reported:], orders, accounts, symbols, outbox, reported
        )
        self.counters["reports"] += made
        self.counters["reports_unsent"] += unsent
        self._advance(events["seq"])

    def _silence(self, seqs: np.ndarray) -> int:
        """How many events at the front of a batch the gateway took before its restart."""
        until_seq, until_count = self._silent_until  # type: ignore[misc]
        before = int(np.searchsorted(seqs, until_seq, "left"))
        at = int(np.searchsorted(seqs, until_seq, "right")) - before
        silent = before + min(at, max(until_count - self._silent_seen, 0))
        self._silent_seen += at
        if int(seqs[-1]) > until_seq:
            self._silent_until = None  # past it: everything from now on is new
        return silent

    def _advance(self, seqs: np.ndarray) -> None:
        """``applied`` after a batch: its last seq and how many of that seq came so far."""
        last = int(seqs[-1])
        count = len(seqs) - int(np.searchsorted(seqs, last, "left"))
        if self.applied is not None and self.applied[0] == last and count == len(seqs):
            count += self.applied[1]
        self.applied = (last, count)

    # --- time --------------------------------------------------------------------------------
    def expire(self, now: float) -> Step:
        """End the sessions whose peers fell silent; heartbeats due to the others.

        The returned ``commands`` are the cancels on disconnect of the ended sessions
        (``must_send``); ``ended`` their identities (forget them at the socket).
        """
        step = Step(must_send=True)
        for session in list(self.sessions.values()):
            if now - session.last_seen > LAPSE_FACTOR * session.heartbeat_interval:
                self._end(session, "heartbeat", step, notify=False)
            elif now >= session.next_heartbeat:
                session.next_heartbeat = now + session.heartbeat_interval
                step.replies.append(Outgoing(session.identity, Heartbeat(), session.codec))
        return step

    def disconnected(self, identity: bytes) -> Step:
        """The socket layer knows ``identity`` is gone: end its session now, as a lapse."""
        step = Step(must_send=True)
        session = self.sessions.get(identity)
        if session is not None:
            self._end(session, "disconnected", step, notify=False)
        return step

    # --- logon and logout ------------------------------------------------------------------
    def _logon(
        self,
        identity: bytes,
        logon: Logon,
        now: float,
        codec: Codec,
        session: Session | None,
        allowed: Container[int] | None,
    ) -> Step:
        if session is not None:
            if session.account != logon.account:
                text = f"one account per session: this connection is account {session.account}"
                return self._reject(identity, session.codec, "$.account", text, logon)
            return self._reject(identity, session.codec, "$.kind", "already logged on", logon)
        if logon.account >= self.max_accounts:
            text = f"unknown account {logon.account}: accounts are 1..{self.max_accounts - 1}"
            return self._reject(identity, codec, "$.account", text, logon)
        if allowed is not None and logon.account not in allowed:
            text = f"these credentials may not trade account {logon.account}"
            return self._reject(identity, codec, "$.account", text, logon)
        step = Step()
        account = self._account(logon.account)
        if account.session is not None:  # a takeover: the account carries on
            self._end(account.session, "superseded", step, notify=True, cancel=False)
        session = Session(
            identity=identity,
            account=logon.account,
            codec=codec,
            heartbeat_interval=logon.heartbeat_interval,
            cancel_on_disconnect=logon.cancel_on_disconnect,
            last_seen=now,
            next_heartbeat=now + logon.heartbeat_interval,
        )
        self.sessions[identity] = session
        account.session = session
        ack = LogonAck(
            account=logon.account,
            heartbeat_interval=logon.heartbeat_interval,
            cancel_on_disconnect=logon.cancel_on_disconnect,
            codec=codec.value,
            last_report_seq=account.log.last_seq,
        )
        step.replies.append(Outgoing(identity, ack, codec))
        return step

    def _logout(self, session: Session, account: Account, message: Logout) -> Step:
        step = Step(must_send=True)
        self._end(session, "logout", step, notify=True)
        return step

    def _end(
        self, session: Session, why: str, step: Step, *, notify: bool, cancel: bool = True
    ) -> None:
        """End ``session`` into ``step``: forget it, say so, cancel on disconnect."""
        del self.sessions[session.identity]
        account = self.accounts[session.account]
        if account.session is session:
            account.session = None
        self.counters["sessions_ended"] += 1
        step.ended.append(session.identity)
        if notify:
            step.replies.append(Outgoing(session.identity, LoggedOut(why=why), session.codec))
        if cancel and session.cancel_on_disconnect:
            orders = account.orders.orders()
            for order in orders:
                order.pending.append("cancel")
            self.counters["cancels_on_disconnect"] += len(orders)
            step.packed += commands.cancels(orders)

    # --- order requests ----------------------------------------------------------------------
    def _new_order(self, session: Session, account: Account, request: NewOrder) -> Step:
        symbol = self.symbols.resolve(request.symbol)
        if symbol is None:
            return self._reject_session(session, "$.symbol", "unknown symbol", request)
        if account.orders.find(request.client_order_id) is not None:
            text = "duplicate: an open order of the account has this client order id"
            return self._reject_session(session, "$.client_order_id", text, request)
        qty = request.qty
        order = Order(
            request.client_order_id,
            self.order_ids.allocate(),
            account.account,
            symbol,
            request.side,
            request.price,
            qty,
            qty,
        )
        order.pending.append("new")
        account.orders.add(order)
        self._orders[order.order_id] = order
        self.counters["orders"] += 1

        def undo() -> None:
            account.orders.close(order)
            del self._orders[order.order_id]
            self.counters["orders"] -= 1

        records = commands.new_order(order, request)
        return Step(None, records, False, [undo], (session, request), [order])

    def _amend(self, session: Session, account: Account, request: Message, what: str) -> Step:
        order = account.orders.find(request.client_order_id)  # type: ignore[attr-defined]
        if order is None:
            text = f"unknown: no open order of account {account.account} has this client order id"
            return self._reject_session(session, "$.client_order_id", text, request)
        if what == "cancel":
            records = commands.cancels([order])
        elif what == "replace":
            price = order.price if request.price is None else request.price  # type: ignore[attr-defined]
            qty = order.leaves_qty if request.qty is None else request.qty  # type: ignore[attr-defined]
            records = commands.replace(order, price, qty)
        else:
            records = commands.reduce(order, request.by)  # type: ignore[attr-defined]
        order.pending.append(what)
        return Step(None, records, False, [order.pending.pop], (session, request))

    def _cancel(self, session: Session, account: Account, request: Cancel) -> Step:
        return self._amend(session, account, request, "cancel")

    def _replace(self, session: Session, account: Account, request: Replace) -> Step:
        return self._amend(session, account, request, "replace")

    def _reduce(self, session: Session, account: Account, request: Reduce) -> Step:
        return self._amend(session, account, request, "reduce")

    def _mass_cancel(self, session: Session, account: Account, request: MassCancel) -> Step:
        symbol = None
        if request.symbol is not None:
            symbol = self.symbols.resolve(request.symbol)
            if symbol is None:
                return self._reject_session(session, "$.symbol", "unknown symbol", request)
        orders = account.orders.orders(symbol)
        for order in orders:
            order.pending.append("cancel")
        undo = [o.pending.pop for o in orders]
        step = Step(None, commands.cancels(orders), False, undo, (session, request))
        ack = MassCancelAck(symbol=symbol, orders=len(orders))
        step.replies.append(Outgoing(session.identity, ack, session.codec))
        return step

    # --- queries -----------------------------------------------------------------------------
    def _heartbeat(self, session: Session, account: Account, message: Heartbeat) -> Step:
        return Step()

    def _open_orders(self, session: Session, account: Account, message: OpenOrders) -> Step:
        reply = OpenOrdersReply(
            orders=[o.view() for o in account.orders.orders()],
            last_report_seq=account.log.last_seq,
        )
        return Step(replies=[Outgoing(session.identity, reply, session.codec)])

    def _reports_since(self, session: Session, account: Account, message: ReportsSince) -> Step:
        reports, gap, more = account.log.since(message.seq, self.reports_page)
        reply = ReportsReply(
            reports=reports, last_report_seq=account.log.last_seq, gap=gap, more=more
        )
        return Step(replies=[Outgoing(session.identity, reply, session.codec)])

    # --- helpers -----------------------------------------------------------------------------
    def _reject_session(self, session: Session, path: str, text: str, request: Message) -> Step:
        return self._reject(session.identity, session.codec, path, text, request)

    def _reject(
        self, identity: bytes, codec: Codec, path: str, text: str, request: Message
    ) -> Step:
        reject = BusinessReject(
            field=path,
            text=text,
            ref_kind=request.kind,
            client_order_id=getattr(request, "client_order_id", None),
        )
        return self._reject_with(identity, codec, reject)

    def _reject_with(self, identity: bytes, codec: Codec, reject: BusinessReject) -> Step:
        self.counters["business_rejects"] += 1
        return Step(replies=[Outgoing(identity, reject, codec)])


_HANDLERS: dict[type, Callable[[Gateway, Session, Account, Message], Step]] = {
    NewOrder: Gateway._new_order,
    Cancel: Gateway._cancel,
    Replace: Gateway._replace,
    Reduce: Gateway._reduce,
    MassCancel: Gateway._mass_cancel,
    Heartbeat: Gateway._heartbeat,
    Logout: Gateway._logout,
    OpenOrders: Gateway._open_orders,
    ReportsSince: Gateway._reports_since,
}  # type: ignore[dict-item]


_SIDE_NAMES: dict[int, str] = {Side.BUY: "buy", Side.SELL: "sell"}
#: the requests about an existing order, by command kind, as its pending FIFO names them
_REQUESTS_SENT_AGAIN: dict[int, str] = {
    CommandType.CANCEL: "cancel",
    CommandType.REPLACE: "replace",
    CommandType.REDUCE: "reduce",
}
