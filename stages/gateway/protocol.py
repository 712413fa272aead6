"""The order-entry protocol a trading client speaks: one tagged msgspec Struct per message.

Every message carries its tag in the field ``kind`` (``{"kind": "new_order", ...}``), is
frozen and refuses unknown fields, like the control plane's (``pipeline/control_messages.py``):
a person reading a capture knows what each frame holds, and a typo in a field name is an
error naming the field instead of a silently ignored default.

Enumerations travel by *name* (``"buy"``, ``"limit"``, ``"ioc"``, ``"cancel_resting"``),
never by the records' numeric codes: a client written against this page cannot mean
another code than the one it names, and the names are the records' own enum names in lower
case (``SIDES``, ``ORDER_TYPES``, ... map them to ``stages.records``), so they cannot drift.
Every integer is bounded by the record field it lands in (``price`` and ``qty`` are int64,
the account a uint32, a symbol id a uint16), so a number the records cannot hold is refused
at decoding with the field's path, never wrapped or truncated on the way into a ring.

Requests go client → gateway (``REQUEST``); replies and execution reports gateway → client
(``REPLY``). Each side decodes only what it may receive. ``docs/gateway.md`` shows one
exchange per request kind; ``stages/gateway/codec.py`` turns frames into these and back.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from stages.records import OrderType, Reason, SelfTradePrevention, Side, TimeInForce

#: the largest value of the records' int64 fields (price, qty, order ids)
INT64_MAX = 2**63 - 1
#: the largest account id (``COMMAND_DTYPE.account`` is a uint32); 0 is the fee account
MAX_ACCOUNT = 2**32 - 1
#: the largest symbol id (``COMMAND_DTYPE.symbol`` is a uint16)
MAX_SYMBOL = 2**16 - 1
#: client order ids: 1..64 printable ASCII characters without spaces (FIX ClOrdID-like)
MAX_CLIENT_ORDER_ID = 64
#: a symbol name is at most this long (config names such as ``BTC-USD``)
MAX_SYMBOL_NAME = 32
#: heartbeat intervals a session may ask for, in seconds
MIN_HEARTBEAT, MAX_HEARTBEAT, DEFAULT_HEARTBEAT = 0.05, 600.0, 5.0

#: msgspec checks the length; the characters are checked by the codec after decoding
#: (``client_order_ids_valid``): msgspec's ``pattern`` runs a Python ``re`` search per string,
#: ~0.85 µs a request, over half of decoding a NewOrder, where one check of a whole batch's
#: ids joined costs ~0.05 µs a request (and ``re``'s ``$`` let a trailing newline through)
ClientOrderId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_CLIENT_ORDER_ID,
        description="the client's own id of an order: printable ASCII, no spaces",
    ),
]
Account = Annotated[int, msgspec.Meta(ge=1, le=MAX_ACCOUNT)]
SymbolId = Annotated[int, msgspec.Meta(ge=0, le=MAX_SYMBOL)]
SymbolName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SYMBOL_NAME)]
Price = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Qty = Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)]
Count = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Seconds = Annotated[float, msgspec.Meta(ge=MIN_HEARTBEAT, le=MAX_HEARTBEAT)]

SideName = Literal["buy", "sell"]
OrderTypeName = Literal["limit", "market"]
TifName = Literal["gtc", "ioc", "fok"]
StpName = Literal[
    "none",
    "cancel_resting",
    "cancel_aggressor",
    "cancel_both",
    "decrement_and_cancel",
    "cancel_oldest",  # Coinbase's name of cancel_resting
    "cancel_newest",  # Coinbase's name of cancel_aggressor
]
Liquidity = Literal["maker", "taker"]
RequestName = Literal["new", "cancel", "replace", "reduce"]

#: protocol names -> the records' codes (the names are the enum names in lower case)
SIDES: dict[str, Side] = {"buy": Side.BUY, "sell": Side.SELL}
ORDER_TYPES: dict[str, OrderType] = {"limit": OrderType.LIMIT, "market": OrderType.MARKET}
TIFS: dict[str, TimeInForce] = {t.name.lower(): t for t in TimeInForce}
STPS: dict[str, SelfTradePrevention] = {s.name.lower(): s for s in SelfTradePrevention} | {
    "cancel_oldest": SelfTradePrevention.CANCEL_RESTING,
    "cancel_newest": SelfTradePrevention.CANCEL_AGGRESSOR,
}


class Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """The base of every gateway message (never sent itself)."""

    @property
    def kind(self) -> str:
        """The message's tag (``"new_order"``)."""
        return self.__struct_config__.tag  # type: ignore[return-value]


# --- requests (client -> gateway) ------------------------------------------------------------
class Logon(Message, tag="logon"):
    """Open a session for ``account``: the first message on a connection, and its codec.

    ``cancel_on_disconnect``: when the session ends without a ``Logout`` taking it over
    (heartbeats lapse) or with one, every open order of the account is cancelled through
    the sequenced stream. ``heartbeat_interval``: the client sends something at least this
    often; silence for twice as long ends the session.
    """

    account: Account
    cancel_on_disconnect: bool = False
    heartbeat_interval: Seconds = DEFAULT_HEARTBEAT


class NewOrder(Message, tag="new_order"):
    """A new order. ``symbol`` by name (``"BTC-USD"``) or id (``1``); ``price`` is the limit
    price (a market order: 0 = no bound, > 0 = protection price)."""

    client_order_id: ClientOrderId
    symbol: SymbolName | SymbolId
    side: SideName
    qty: Qty
    price: Price = 0
    type: OrderTypeName = "limit"
    tif: TifName = "gtc"
    post_only: bool = False
    stp: StpName = "none"


class Cancel(Message, tag="cancel"):
    """Cancel the open order the account knows as ``client_order_id``."""

    client_order_id: ClientOrderId


class Replace(Message, tag="replace"):
    """Move an open order to ``price`` and/or a new total open ``qty`` (at least one).

    The one left out is the order's as last reported to the client (``leaves_qty`` of its
    latest report): the engine's REPLACE sets the total open quantity outright.
    """

    client_order_id: ClientOrderId
    price: Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)] | None = None
    qty: Qty | None = None

    def __post_init__(self) -> None:
        if self.price is None and self.qty is None:
            raise ValueError("a replace needs a new price or a new qty (or both) - at `$.price`")


class Reduce(Message, tag="reduce"):
    """Reduce an open order's quantity by ``by`` lots, keeping its time priority."""

    client_order_id: ClientOrderId
    by: Qty


class MassCancel(Message, tag="mass_cancel"):
    """Cancel every open order of the account, or only those in ``symbol``."""

    symbol: SymbolName | SymbolId | None = None


class Heartbeat(Message, tag="heartbeat"):
    """I am alive. Any frame counts as one; sent when there is nothing else to say."""


class Logout(Message, tag="logout"):
    """End the session (with ``cancel_on_disconnect``, the account's open orders go too)."""


class OpenOrders(Message, tag="open_orders"):
    """Ask for the account's open orders (answered ``OpenOrdersReply``)."""


class ReportsSince(Message, tag="reports_since"):
    """Ask for the account's execution reports after report ``seq`` (``ReportsReply``)."""

    seq: Count


# --- replies and reports (gateway -> client) -------------------------------------------------
class LogonAck(Message, tag="logon_ack"):
    """The session is open. ``last_report_seq``: the account's latest report so far, so a
    reconnecting client knows at once whether it missed any (``ReportsSince``)."""

    account: Account
    heartbeat_interval: float
    cancel_on_disconnect: bool
    codec: Literal["msgpack", "json"]
    last_report_seq: Count


class LoggedOut(Message, tag="logged_out"):
    """The session ended: ``why`` is ``logout``, ``superseded`` (the account logged on from
    another connection) or ``heartbeat`` (silence)."""

    why: str


class Accepted(Message, tag="accepted", gc=False):
    """The order is in the book (or being matched): ``price`` and full ``qty``."""

    client_order_id: str
    order_id: int
    report_seq: int
    symbol: int
    side: SideName
    price: int
    qty: int


class Rejected(Message, tag="rejected", gc=False):
    """The engine refused a request about the order: which one (``request``: a rejected
    ``new`` never opened), why by name (``reason``, a ``stages.records.Reason``) and its
    code. (What the gateway itself refuses is a ``BusinessReject``, never a report.)"""

    client_order_id: str
    order_id: int
    report_seq: int
    request: RequestName
    reason: str
    code: int


class Trade(Message, tag="trade", gc=False):
    """A fill: ``qty`` at ``price`` (the maker's), ``leaves_qty`` still open afterwards,
    whether the order was the resting one (``maker``) or the incoming one (``taker``), and
    the fee settlement charges for it in the quote asset (None: the gateway has no fee
    schedule for the symbol)."""

    client_order_id: str
    order_id: int
    report_seq: int
    price: int
    qty: int
    leaves_qty: int
    liquidity: Liquidity
    fee: int | None
    other_order_id: int


class Cancelled(Message, tag="cancelled", gc=False):
    """``qty`` of the order was removed, and why (``reason`` by name, ``code``): a cancel,
    an IOC remainder, self-trade prevention, a kill switch..."""

    client_order_id: str
    order_id: int
    report_seq: int
    qty: int
    leaves_qty: int
    reason: str
    code: int


class Replaced(Message, tag="replaced", gc=False):
    """The order now rests at ``price`` with ``leaves_qty`` open (a replace or a reduce)."""

    client_order_id: str
    order_id: int
    report_seq: int
    price: int
    leaves_qty: int


class Done(Message, tag="done", gc=False):
    """The order is complete: nothing of it is open; ``filled_qty`` traded in all. Its
    client order id may be used again from now on."""

    client_order_id: str
    order_id: int
    report_seq: int
    filled_qty: int


#: execution reports are ``gc=False``: they hold only numbers and strings (never a cycle)
#: and every account's log keeps its last 10,000, which the collector would otherwise walk
ExecutionReport = Accepted | Rejected | Trade | Cancelled | Replaced | Done


class BusinessReject(Message, tag="business_reject"):
    """A frame the gateway could not act on: ``field`` is the path of what was wrong
    (msgspec's ``$.qty``; ``$`` for the whole frame), ``text`` says what.

    ``ref_kind`` and ``client_order_id`` name the request when the frame was readable
    enough to tell (None otherwise). Nothing was sent to the engine.
    """

    field: str
    text: str
    ref_kind: str | None = None
    client_order_id: str | None = None


class MassCancelAck(Message, tag="mass_cancel_ack"):
    """A mass cancel was sent: one cancel per open order (``orders``, maybe 0); each one's
    outcome comes as the order's own report."""

    symbol: int | None
    orders: int


class Busy(Message, tag="busy"):
    """Back-pressure: the pipeline could not take the request now; nothing of it was sent
    and nothing changed. Send it again later."""

    ref_kind: str
    client_order_id: str | None = None


class OpenOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One open order as the gateway last saw it (the engine may be ahead)."""

    client_order_id: str
    order_id: int
    symbol: int
    side: SideName
    price: int
    qty: int
    leaves_qty: int
    filled_qty: int
    accepted: bool  # False: sent, not acknowledged by the engine yet


class OpenOrdersReply(Message, tag="open_orders_reply"):
    """The account's open orders, oldest first; ``last_report_seq`` is the report they
    reflect."""

    orders: list[OpenOrder]
    last_report_seq: int


class ReportsReply(Message, tag="reports_reply"):
    """Reports after the requested seq, oldest first, at most a page of them.

    ``gap``: reports after the requested seq were dropped from the bounded log (the first
    one here is not seq + 1; ask for ``OpenOrders`` to resynchronise). ``more``: the page is
    full; ask again from the last seq here.
    """

    reports: list[ExecutionReport]
    last_report_seq: int
    gap: bool = False
    more: bool = False


REQUEST = (
    Logon
    | NewOrder
    | Cancel
    | Replace
    | Reduce
    | MassCancel
    | Heartbeat
    | Logout
    | OpenOrders
    | ReportsSince
)
#: the requests that carry a ``client_order_id``
WITH_CLIENT_ORDER_ID = frozenset((NewOrder, Cancel, Replace, Reduce))
#: what a ``client_order_id`` that is not printable ASCII without spaces is told
CLIENT_ORDER_ID_TEXT = "Expected `str` of printable ASCII characters without spaces"


def client_order_ids_valid(messages: list[Message]) -> bool:
    """Whether every client order id among ``messages`` is printable ASCII without spaces
    (``!``..``~``): checked once over all of them joined, three C calls for a batch."""
    joined = "".join(
        [m.client_order_id for m in messages if type(m) in WITH_CLIENT_ORDER_ID]  # type: ignore[attr-defined]
    )
    return joined.isascii() and joined.isprintable() and " " not in joined


REPLY = (
    LogonAck
    | LoggedOut
    | Accepted
    | Rejected
    | Trade
    | Cancelled
    | Replaced
    | Done
    | BusinessReject
    | MassCancelAck
    | Busy
    | OpenOrdersReply
    | ReportsReply
    | Heartbeat
)


def reason_name(code: int) -> str:
    """The name of a ``Reason`` code (``"INSUFFICIENT_FUNDS"``); an unknown code by number."""
    name = _REASON_NAMES.get(code)
    return f"REASON_{code}" if name is None else name


#: by code (``Reason(code).name`` costs ~1 µs: one per rejected or cancelled report)
_REASON_NAMES: dict[int, str] = {int(reason): reason.name for reason in Reason}
