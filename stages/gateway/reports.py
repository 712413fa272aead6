"""Events to execution reports, and each account's bounded log of the reports it was sent.

**Translation** (``apply_event``): the five order events of ``docs/records.md`` become
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

import numpy as np

from stages.gateway.orders import Order
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

#: the event fields reports read, in the order of ``event_rows``' tuples (``F``: positions)
ROW_FIELDS = ("order_id", "account", "kind", "price", "qty", "flags", "reason", "other_id")
F = {name: i for i, name in enumerate(ROW_FIELDS)}
ORDER_EVENTS = frozenset(
    (
        EventType.ACCEPTED,
        EventType.REJECTED,
        EventType.TRADE,
        EventType.CANCELLED,
        EventType.REPLACED,
    )
)


class ReportLog:
    """One account's reports, numbered from 1 (or after ``last_seq`` for an account restored
    after a restart), the latest ``capacity`` kept."""

    def __init__(self, capacity: int = REPORT_LOG_SIZE, last_seq: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"a report log keeps at least 1 report, not {capacity}")
        self.last_seq = last_seq
        self._reports: deque[ExecutionReport] = deque(maxlen=capacity)

    @property
    def next_seq(self) -> int:
        return self.last_seq + 1

    def add(self, report: ExecutionReport) -> ExecutionReport:
        """Keep ``report``, which must carry ``next_seq``."""
        assert report.report_seq == self.last_seq + 1, (report.report_seq, self.last_seq)
        self.last_seq = report.report_seq
        self._reports.append(report)
        return report

    def since(
        self, seq: int, limit: int = REPORTS_PAGE
    ) -> tuple[list[ExecutionReport], bool, bool]:
        """The reports after ``seq`` (at most ``limit``), whether some of them were already
        dropped (a gap), and whether there are more after this page."""
        if seq >= self.last_seq:
            return [], False, False
        if not self._reports:  # restored: what came before the restart is not held
            return [], True, False
        first = self._reports[0].report_seq
        gap = seq + 1 < first
        start = max(seq + 1 - first, 0)
        stop = min(start + limit, len(self._reports))
        page = [self._reports[i] for i in range(start, stop)]
        return page, gap, stop < len(self._reports)


def event_rows(events: np.ndarray) -> list[tuple]:
    """The order events of a batch as plain tuples of ``ROW_FIELDS`` (``F`` names the
    positions), built by C calls: one ``tolist`` per column, zipped (~0.2 µs an event; a
    structured array's own ``tolist`` makes every field an int, ~1 µs an event)."""
    kinds = events["kind"]
    mask = (kinds >= EventType.ACCEPTED) & (kinds <= EventType.REPLACED)
    if not mask.all():
        events = events[mask]
    return list(zip(*[events[name].tolist() for name in ROW_FIELDS], strict=True))


_KIND, _PRICE, _QTY, _FLAGS, _REASON, _OTHER = (
    F[name] for name in ("kind", "price", "qty", "flags", "reason", "other_id")
)
_ACCEPTED, _REJECTED, _TRADE = EventType.ACCEPTED, EventType.REJECTED, EventType.TRADE
_CANCELLED, _REPLACED = EventType.CANCELLED, EventType.REPLACED
_DONE, _MAKER, _USER_CANCEL = EventFlag.DONE, EventFlag.MAKER, Reason.USER_CANCEL


def apply_event(
    order: Order, row: tuple, log: ReportLog, symbols: SymbolTable, report: bool = True
) -> list:
    """Move ``order`` along by one event of it and return its reports (already logged).

    ``report=False``: only move the order (an event whose reports left before a restart:
    output hands it over again with the rest of its command's answers); nothing is logged.
    Hot (one call per event of the gateway's orders): plain branches, no closures.
    """
    kind, price, qty = row[_KIND], row[_PRICE], row[_QTY]
    cid, oid = order.client_order_id, order.order_id
    message: ExecutionReport | None = None
    if kind == _ACCEPTED:
        _pop(order)
        order.accepted = True
        order.price, order.qty, order.leaves_qty = price, qty, qty
        if report:
            message = Accepted(cid, oid, log.last_seq + 1, order.symbol, order.side, price, qty)
    elif kind == _REJECTED:
        request = _pop(order) or "new"
        if request == "new":
            order.done = True
            order.leaves_qty = 0
        if report:
            reason = row[_REASON]
            message = Rejected(cid, oid, log.last_seq + 1, request, reason_name(reason), reason)
    elif kind == _TRADE:
        flags = row[_FLAGS]
        order.leaves_qty = max(order.leaves_qty - qty, 0)
        order.filled_qty += qty
        if report:
            maker = bool(flags & _MAKER)
            message = Trade(
                client_order_id=cid,
                order_id=oid,
                report_seq=log.last_seq + 1,
                price=price,
                qty=qty,
                leaves_qty=0 if flags & _DONE else order.leaves_qty,
                liquidity="maker" if maker else "taker",
                fee=symbols.fee(order.symbol, price, qty, maker),
                other_order_id=row[_OTHER],
            )
    elif kind == _CANCELLED:
        flags, reason = row[_FLAGS], row[_REASON]
        if reason == _USER_CANCEL:
            _pop(order)
        order.leaves_qty = max(order.leaves_qty - qty, 0)
        if report:
            message = Cancelled(
                client_order_id=cid,
                order_id=oid,
                report_seq=log.last_seq + 1,
                qty=qty,
                leaves_qty=0 if flags & _DONE else order.leaves_qty,
                reason=reason_name(reason),
                code=reason,
            )
    elif kind == _REPLACED:
        _pop(order)
        order.price, order.leaves_qty = price, qty
        order.qty = order.filled_qty + qty
        if report:
            message = Replaced(cid, oid, log.last_seq + 1, price, qty)
    else:
        return []
    reports = [] if message is None else [log.add(message)]
    if kind in (_TRADE, _CANCELLED) and row[_FLAGS] & _DONE:
        order.done = True
        order.leaves_qty = 0
        if report:
            reports.append(log.add(Done(cid, oid, log.last_seq + 1, order.filled_qty)))
    return reports


def _pop(order: Order) -> str | None:
    return order.pending.popleft() if order.pending else None
