"""Events to execution reports, and each account's bounded log of the reports it was sent.

**Translation** (``apply_events``): the five order events of ``docs/records.md`` become
reports by the order's client order id, and move the gateway's copy of the order along:

| event | report(s) | the order |
|---|---|---|
| ACCEPTED | ``accepted`` | open, acknowledged; pops its pending ``new`` |
| REJECTED | ``rejected`` (request, reason, code) | pops its oldest pending request; a rejected ``new`` is done (no ``done`` report: it never opened) |
| TRADE | ``trade`` (price, qty, leaves, maker/taker, fee) | leaves -= qty; DONE flag: ``done`` |
| CANCELLED | ``cancelled`` (reason, qty, leaves) | leaves -= qty; ``USER_CANCEL`` pops its pending ``cancel``; DONE flag: ``done`` |
| REPLACED | ``replaced`` (price, leaves) | new price and leaves; pops its pending ``replace``/``reduce`` |

**Report sequence numbers** are per account (``ReportLog``): 1, 2, 3... over every report
the account was sent, across its connections, so a client that reconnects names the last
one it saw and gets the rest (``since``). The log keeps the latest ``capacity`` reports;
asking for older ones says so (``gap``) and the client resynchronises from its open orders.
After a restart an account's log starts empty at the last seq its gateway logged
(``first_seq``, from ``stages.gateway.id_log``): seqs keep increasing across the restart,
and asking for one from before it says ``gap`` (those reports are not held any more).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from stages.gateway.orders import AccountOrders, Order
from stages.gateway.protocol import (
    Accepted,
    Cancelled,
    Done,
    ExecutionReport,
    Rejected,
    Replaced,
    Trade,
    reason_name,
)
from stages.gateway.symbols import SymbolTable
from stages.records import EventFlag, EventType, Reason

#: reports each account's log keeps for ``ReportsSince``
REPORT_LOG_SIZE = 10_000
#: the most reports one ``ReportsReply`` carries
REPORTS_PAGE = 500

#: the event fields reports read, in the order ``apply_events`` unpacks them
ROW_FIELDS = ("order_id", "account", "kind", "price", "qty", "flags", "reason", "other_id")


class ReportLog:
    """One account's reports, numbered from 1 (or after ``last_seq`` for an account restored
    after a restart), the latest ``capacity`` kept."""

    def __init__(self, capacity: int = REPORT_LOG_SIZE, last_seq: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"a report log keeps at least 1 report, not {capacity}")
        #: the seq of the latest report; ``apply_events`` numbers and appends in place (one
        #: report's ``report_seq`` is always ``last_seq`` + 1 when it is appended)
        self.last_seq = last_seq
        self.reports: deque[ExecutionReport] = deque(maxlen=capacity)

    def since(
        self, seq: int, limit: int = REPORTS_PAGE
    ) -> tuple[list[ExecutionReport], bool, bool]:
        """The reports after ``seq`` (at most ``limit``), whether some of them were already
        dropped (a gap), and whether there are more after this page."""
        if seq >= self.last_seq:
            return [], False, False
        if not self.reports:  # restored: what came before the restart is not held
            return [], True, False
        first = self.reports[0].report_seq
        gap = seq + 1 < first
        start = max(seq + 1 - first, 0)
        stop = min(start + limit, len(self.reports))
        page = [self.reports[i] for i in range(start, stop)]
        return page, gap, stop < len(self.reports)


class Owner(Protocol):
    """What ``apply_events`` needs of an account (``sessions.Account``): its open orders,
    its report log, and its connection if it has one (whose ``identity`` and ``codec`` the
    reports are queued under)."""

    orders: AccountOrders
    log: ReportLog
    session: Any


#: identity -> (its codec, the messages for it in order): ``sessions.Outbox``
Outbox = dict[bytes, tuple[Any, list[Any]]]


def order_event_columns(events: np.ndarray) -> list[list[int]]:
    """The order events of a batch as one plain list per field of ``ROW_FIELDS``: one C
    ``tolist`` per column (a structured array's own ``tolist`` makes each field an int
    object one at a time, ~1 µs an event); ``zip(*columns)`` walks them as rows."""
    kinds = events["kind"]
    mask = (kinds >= EventType.ACCEPTED) & (kinds <= EventType.REPLACED)
    if not mask.all():
        events = events[mask]
    return [events[name].tolist() for name in ROW_FIELDS]


_ACCEPTED, _REJECTED, _TRADE = EventType.ACCEPTED, EventType.REJECTED, EventType.TRADE
_CANCELLED, _REPLACED = EventType.CANCELLED, EventType.REPLACED
_DONE, _MAKER, _USER_CANCEL = EventFlag.DONE, EventFlag.MAKER, Reason.USER_CANCEL


def apply_events(
    events: np.ndarray,
    orders: dict[int, Order],
    accounts: Mapping[int, Owner],
    symbols: SymbolTable,
    outbox: Outbox | None,
    reported_accounts: set[int],
) -> tuple[int, int]:
    """Move the gateway's orders along by a batch of events and, with an ``outbox``, log
    their reports and queue them for the owners' connections; returns (reports made,
    reports whose owner had no connection).

    ``orders``: the gateway's orders by order id; an event of any other order, or naming
    another account than the order's, is not the gateway's and is skipped. A done order
    leaves its account's open orders, and ``orders`` too once nothing of it is in flight.
    ``outbox`` None: only move the orders (events whose reports left before a restart);
    nothing is logged. ``reported_accounts`` gets every account reported to.

    Hot (one pass per event of the gateway's orders, ~1.4 events a request): one loop with
    the translation of the module docstring's table written out, locals only, each report
    built positionally and logged in place; no call per event but the report's own.
    """
    report = outbox is not None
    made = unsent = 0
    for order_id, account, kind, price, qty, flags, reason, other in zip(
        *order_event_columns(events), strict=True
    ):
        order = orders.get(order_id)
        if order is None or order.account != account:
            continue  # not an order this gateway sent
        owner = accounts[account]
        log = owner.log
        seq = log.last_seq
        cid = order.client_order_id
        done = False
        message: ExecutionReport | None = None
        if kind == _ACCEPTED:
            if order.pending:
                order.pending.popleft()
            order.accepted = True
            order.price = price
            order.qty = order.leaves_qty = qty
            if report:
                seq += 1
                message = Accepted(cid, order_id, seq, order.symbol, order.side, price, qty)
        elif kind == _TRADE:
            leaves = order.leaves_qty - qty
            order.leaves_qty = leaves if leaves > 0 else 0
            order.filled_qty += qty
            done = bool(flags & _DONE)
            if report:
                seq += 1
                maker = bool(flags & _MAKER)
                message = Trade(
                    cid,
                    order_id,
                    seq,
                    price,
                    qty,
                    0 if done else order.leaves_qty,
                    "maker" if maker else "taker",
                    symbols.fee(order.symbol, price, qty, maker),
                    other,
                )
        elif kind == _CANCELLED:
            if reason == _USER_CANCEL and order.pending:
                order.pending.popleft()
            leaves = order.leaves_qty - qty
            order.leaves_qty = leaves if leaves > 0 else 0
            done = bool(flags & _DONE)
            if report:
                seq += 1
                message = Cancelled(
                    cid,
                    order_id,
                    seq,
                    qty,
                    0 if done else order.leaves_qty,
                    reason_name(reason),
                    reason,
                )
        elif kind == _REJECTED:
            request = order.pending.popleft() if order.pending else "new"
            if request == "new":
                order.done = True
                order.leaves_qty = 0
            if report:
                seq += 1
                message = Rejected(cid, order_id, seq, request, reason_name(reason), reason)
        else:  # _REPLACED (order_event_columns keeps the five order events only)
            if order.pending:
                order.pending.popleft()
            order.price, order.leaves_qty = price, qty
            order.qty = order.filled_qty + qty
            if report:
                seq += 1
                message = Replaced(cid, order_id, seq, price, qty)
        if done:
            order.done = True
            order.leaves_qty = 0
        if order.done:
            owner.orders.close(order)
            if not order.pending:
                del orders[order_id]
        if message is None:
            continue
        if done:
            messages = [message, Done(cid, order_id, seq + 1, order.filled_qty)]
            seq += 1
        else:
            messages = [message]
        log.last_seq = seq
        log.reports.extend(messages)
        made += len(messages)
        reported_accounts.add(account)
        session = owner.session
        if session is None:
            unsent += len(messages)
            continue
        queued = outbox.get(session.identity)  # type: ignore[union-attr]
        if queued is None:
            outbox[session.identity] = (session.codec, messages)  # type: ignore[index]
        else:
            queued[1].extend(messages)
    return made, unsent
