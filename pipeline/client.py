"""The Python client of the order gateway and the market-data feed (``docs/gateway.md``).

    from pipeline.client import Client, MarketData

    with Client("ipc://run/pipeline/gateway.sock", account=7) as client:
        cid = client.buy("BTC-USD", 5, price=101)
        for report in client.reports(timeout=1.0):
            print(report)

**Order entry** (``Client``): one ZeroMQ DEALER socket, one frame per message (or per
``batch()`` of requests; the gateway may answer several in one frame), speaking the
Structs of ``stages.gateway.protocol`` in msgpack (or JSON). It logs on when constructed and
raises ``LogonError`` if the gateway refuses (the reason it gave) or ``LogonTimeout`` if
nothing answers in time: with CURVE a key the gateway does not know never completes the
handshake, so silence is all such a client ever gets, and the error says which causes to
check. Requests return at once (``buy`` returns the client order id); what the gateway and
the engine answer comes from ``reports()``, in the order it was sent.

**No threads.** A session whose peer is silent for two heartbeat intervals is ended by the
gateway (with ``cancel_on_disconnect``, its orders with it), so a client must send something
at least every interval. Here every call that waits (``reports``, ``next_report``,
``open_orders``...) sends a ``heartbeat`` when half an interval passed without a frame
sent; a program that does not wait on the client for longer than the interval calls
``heartbeat()`` itself. A background thread would do this unasked, but would also keep a
session alive for a program that hangs, which is what the lapse is there to catch.

**Requests are checked before they are sent**, with the decoder the gateway uses: a
quantity of 0 raises ``InvalidRequest`` naming ``$.qty`` here, not a ``business_reject``
later.

**Market data** (``MarketData``): a SUB socket on the feed, one ``LocalBook`` per symbol.
Updates are applied in sequence; a gap (a missing sequence number) marks the book out of
sync and it is rebuilt from the next ``Snapshot`` the publisher sends, with no request.

Every socket has LINGER 0: closing never blocks on a gateway that went away.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import zmq

from pipeline import keys as keyfiles
from stages.gateway import protocol as P
from stages.gateway.codec import MAX_BATCH, Codec, ProtocolError
from stages.marketdata import TOPIC_PREFIX, Applied, LocalBook, Snapshot, decode, topic

#: seconds ``Client`` waits for its logon to be answered
LOGON_TIMEOUT = 5.0
#: seconds a query (``open_orders``, ``reports_since``) waits for its answer
QUERY_TIMEOUT = 5.0
#: seconds ``close`` waits for ``logged_out``
LOGOUT_TIMEOUT = 1.0

KeysArg = tuple[str | bytes, str | bytes] | str | os.PathLike | None
Reply = P.Message


class GatewayError(Exception):
    """What the gateway client could not do; the message says what and what to check."""


class LogonError(GatewayError):
    """The gateway refused the logon (its ``business_reject`` text is in the message)."""

    def __init__(self, message: str, reject: P.BusinessReject | None = None) -> None:
        super().__init__(message)
        self.reject = reject


class LogonTimeout(LogonError):
    """Nothing answered the logon in time."""


class QueryTimeout(GatewayError):
    """A query got no answer in time."""


class SessionEnded(GatewayError):
    """The gateway ended the session (``logged_out``: superseded, heartbeat, logout)."""


class InvalidRequest(GatewayError, ValueError):
    """A request the gateway would refuse: the field's path and what is wrong."""

    def __init__(self, reject: P.BusinessReject) -> None:
        super().__init__(f"{reject.field}: {reject.text}")
        self.field = reject.field
        self.text = reject.text


def _z85(value: str | bytes) -> bytes:
    return value.encode("ascii") if isinstance(value, str) else value


def curve_options(
    keys: KeysArg, server_key: str | bytes | os.PathLike | None
) -> tuple[bytes, bytes, bytes] | None:
    """(public, secret, server public) for a CURVE client socket, or None without CURVE.

    ``keys``: a (public, secret) z85 pair or the path of a ``NAME.key_secret``;
    ``server_key``: the server's z85 public key or the path of its ``.key`` file.
    """
    if keys is None and server_key is None:
        return None
    if keys is None or server_key is None:
        given, missing = ("keys", "server_key") if server_key is None else ("server_key", "keys")
        raise ValueError(f"CURVE needs both keys and server_key: {given} given, {missing} not")
    if isinstance(keys, str | os.PathLike) and not isinstance(keys, tuple):
        public, secret = keyfiles.load_client_keys(keys)
    else:
        public, secret = (_z85(k) for k in keys)  # type: ignore[union-attr]
    if isinstance(server_key, str | bytes) and keyfiles.is_z85_key(server_key):
        server = _z85(server_key)
    else:
        server = keyfiles.load_public_key(server_key)  # type: ignore[arg-type]
    for what, key in (("public", public), ("secret", secret), ("server", server)):
        if not keyfiles.is_z85_key(key):
            raise ValueError(f"the {what} key is not a 40-character z85 key")
    return public, secret, server


def _secure(socket: zmq.Socket, curve: tuple[bytes, bytes, bytes] | None) -> None:
    socket.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        public, secret, server = curve
        socket.curve_publickey = public
        socket.curve_secretkey = secret
        socket.curve_serverkey = server


class Client:
    """One trading session with the gateway at ``endpoint`` as ``account`` (see the module).

    ``keys`` / ``server_key``: CURVE credentials (both or neither; needed for ``tcp://``).
    ``codec``: ``"msgpack"`` or ``"json"``. ``cancel_on_disconnect``: the gateway cancels
    the account's open orders when this session ends. ``heartbeat_interval``: seconds; the
    gateway ends the session after twice that of silence. ``timeout``: seconds to wait for
    the logon's answer. ``check``: decode every request again, as the gateway will, before
    it is sent (``InvalidRequest`` here rather than a ``business_reject`` later); a program
    whose requests are valid by construction may turn it off and save ~2 µs a request
    (``tradepipe load`` does: its clients share the cores with the pipeline they measure).
    """

    def __init__(
        self,
        endpoint: str,
        account: int,
        *,
        keys: KeysArg = None,
        server_key: str | bytes | os.PathLike | None = None,
        codec: str = "msgpack",
        cancel_on_disconnect: bool = False,
        heartbeat_interval: float = P.DEFAULT_HEARTBEAT,
        timeout: float = LOGON_TIMEOUT,
        context: zmq.Context | None = None,
        check: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.check = check
        self.account = account
        self.codec = Codec(codec)
        self.heartbeat_interval = heartbeat_interval
        self.logged_on = False
        self.ended: P.LoggedOut | None = None
        self.last_report_seq = 0  # the highest report seq received
        self.counters = collections.Counter[str]()
        self._pending: collections.deque[Reply] = collections.deque()
        #: the rest of the last batch frame received, not yet taken
        self._received: collections.deque[Reply] = collections.deque()
        #: requests of an open ``batch()`` block, encoded, not yet sent
        self._batch: list[bytes] | None = None
        self._prefix = f"{secrets.token_hex(3)}-"
        self._next_id = 0
        self._last_sent = 0.0
        logon = P.Logon(
            account=account,
            cancel_on_disconnect=cancel_on_disconnect,
            heartbeat_interval=heartbeat_interval,
        )
        self._check(logon)
        curve = curve_options(keys, server_key)
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        try:
            _secure(self._socket, curve)
            # a report is never dropped on this side: no receive high-water mark (ZeroMQ
            # drops what a full pipe cannot take, silently, on the sender's side too)
            self._socket.rcvhwm = 0
            self._socket.connect(endpoint)
            self._poller = zmq.Poller()
            self._poller.register(self._socket, zmq.POLLIN)
            self.ack = self._logon(logon, timeout, curve is not None)
        except BaseException:
            self._socket.close(0)
            raise
        self.logged_on = True
        self.last_report_seq = self.ack.last_report_seq

    # --- session ---------------------------------------------------------------------------
    def _logon(self, logon: P.Logon, timeout: float, curve: bool) -> P.LogonAck:
        self._send(logon)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self._receive(left, heartbeats=False)
            if isinstance(message, P.LogonAck):
                return message
            if isinstance(message, P.BusinessReject):
                raise LogonError(
                    f"the gateway at {self.endpoint} refused the logon as account "
                    f"{self.account}: {message.text} ({message.field})",
                    message,
                )
        if curve:
            hint = "is this key in the gateway's authorised clients, and the server key its own?"
        elif self.endpoint.startswith("tcp://"):
            hint = "is a gateway running there? a tcp:// gateway needs CURVE keys and server_key"
        else:
            hint = "is a pipeline with a gateway running there?"
        raise LogonTimeout(
            f"no answer to the logon from the gateway at {self.endpoint} within {timeout:g} s: "
            + hint
        )

    def close(self) -> None:
        """Log out (waiting up to ``LOGOUT_TIMEOUT`` for the answer) and close the socket."""
        if self._socket.closed:
            return
        try:
            if self.logged_on and self.ended is None:
                self._send(P.Logout())
                deadline = time.monotonic() + LOGOUT_TIMEOUT
                while self.ended is None and (left := deadline - time.monotonic()) > 0:
                    message = self._receive(left, heartbeats=False)
                    if message is not None and not isinstance(message, P.LoggedOut):
                        self._pending.append(message)
        finally:
            self.logged_on = False
            self._socket.close(0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def heartbeat(self) -> None:
        """Send a heartbeat if one is due (half an interval without a frame sent)."""
        if time.monotonic() - self._last_sent >= self.heartbeat_interval / 2:
            self._send(P.Heartbeat())

    @contextlib.contextmanager
    def batch(self) -> Iterator[Client]:
        """Send the requests made in the block together, as one frame (``MAX_BATCH`` per
        frame) when it ends — also when it ends by an exception: every request whose call
        returned is sent. The gateway judges each on its own, in order, as if sent one by
        one; what it saves is ZeroMQ's cost per frame on both sides (several µs each)::

            with client.batch():
                for price in range(100, 110):
                    client.buy("BTC-USD", 1, price=price)
        """
        if self._batch is not None:  # nested: the outer block sends
            yield self
            return
        self._batch = []
        try:
            yield self
        finally:
            frames, self._batch = self._batch, None
            for start in range(0, len(frames), MAX_BATCH):
                self._socket.send(self.codec.join(frames[start : start + MAX_BATCH]))
            if frames:
                self._last_sent = time.monotonic()

    # --- orders ----------------------------------------------------------------------------
    def new_client_order_id(self) -> str:
        """A client order id unique to this client object (a random prefix and a counter)."""
        self._next_id += 1
        return f"{self._prefix}{self._next_id}"

    def new_order(
        self,
        side: str,
        symbol: str | int,
        qty: int,
        price: int | None = None,
        *,
        tif: str = "gtc",
        post_only: bool = False,
        stp: str = "none",
        client_order_id: str | None = None,
    ) -> str:
        """Send a new order; its client order id. ``price`` None: a market order."""
        cid = client_order_id if client_order_id is not None else self.new_client_order_id()
        order = P.NewOrder(
            client_order_id=cid,
            symbol=symbol,
            side=side,  # type: ignore[arg-type]
            qty=qty,
            price=0 if price is None else price,
            type="market" if price is None else "limit",
            tif=tif,  # type: ignore[arg-type]
            post_only=post_only,
            stp=stp,  # type: ignore[arg-type]
        )
        self._request(order)
        return cid

    def buy(self, symbol: str | int, qty: int, price: int | None = None, **options) -> str:
        """Buy ``qty`` of ``symbol`` at ``price`` (None: at market); the client order id.
        Options: ``tif`` (gtc, ioc, fok), ``post_only``, ``stp``, ``client_order_id``."""
        return self.new_order("buy", symbol, qty, price, **options)

    def sell(self, symbol: str | int, qty: int, price: int | None = None, **options) -> str:
        """Sell: see ``buy``."""
        return self.new_order("sell", symbol, qty, price, **options)

    def cancel(self, client_order_id: str) -> None:
        self._request(P.Cancel(client_order_id=client_order_id))

    def replace(
        self, client_order_id: str, price: int | None = None, qty: int | None = None
    ) -> None:
        """Move an open order to ``price`` and/or a total open ``qty`` (at least one)."""
        if price is None and qty is None:
            raise InvalidRequest(
                P.BusinessReject(field="$.price", text="a replace needs a new price or qty")
            )
        self._request(P.Replace(client_order_id=client_order_id, price=price, qty=qty))

    def reduce(self, client_order_id: str, by: int) -> None:
        """Take ``by`` lots off an open order, keeping its time priority."""
        self._request(P.Reduce(client_order_id=client_order_id, by=by))

    def mass_cancel(self, symbol: str | int | None = None) -> None:
        """Cancel every open order of the account (of ``symbol`` only, if given); answered
        ``mass_cancel_ack`` with the count, then each order's reports."""
        self._request(P.MassCancel(symbol=symbol))

    # --- queries ---------------------------------------------------------------------------
    def open_orders(self, timeout: float = QUERY_TIMEOUT) -> list[P.OpenOrder]:
        """The account's open orders as the gateway last saw them, oldest first."""
        self._request(P.OpenOrders())
        return self._await(P.OpenOrdersReply, timeout).orders  # type: ignore[attr-defined]

    def reports_since(self, seq: int, timeout: float = QUERY_TIMEOUT) -> P.ReportsReply:
        """The reports after report ``seq``, every page of them (``gap``: some were dropped
        from the gateway's log: resynchronise with ``open_orders``)."""
        reports: list[P.ExecutionReport] = []
        gap = False
        while True:
            self._request(P.ReportsSince(seq=seq))
            page: P.ReportsReply = self._await(P.ReportsReply, timeout)  # type: ignore[assignment]
            reports += page.reports
            gap = gap or page.gap
            if not page.more or not page.reports:
                return P.ReportsReply(reports, page.last_report_seq, gap, False)
            seq = page.reports[-1].report_seq

    # --- what comes back -------------------------------------------------------------------
    def next_report(self, timeout: float | None = None) -> Reply | None:
        """The next message the gateway sent (an execution report, ``business_reject``,
        ``busy``, ``mass_cancel_ack``, ``logged_out``), or None when ``timeout`` seconds
        passed without one (None: wait as long as it takes). Heartbeats are sent while
        waiting and the gateway's are consumed here."""
        if self._pending:
            return self._pending.popleft()
        received = self._received
        while received:  # the rest of the last frame's batch: no clock, no socket
            message = self._taken(received.popleft())
            if message is not None:
                return message
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            message = self._receive(left)
            if message is not None:
                return message

    def reports(self, timeout: float | None = None) -> Iterator[Reply]:
        """What the gateway sends, as it comes (see ``next_report``); ends when ``timeout``
        seconds pass without anything, or after ``logged_out``."""
        while True:
            message = self.next_report(timeout)
            if message is None:
                return
            yield message
            if isinstance(message, P.LoggedOut):
                return

    # --- the socket ------------------------------------------------------------------------
    def _check(self, message: P.Message) -> bytes:
        """The frame of ``message``, decoded again as the gateway will (unless ``check`` is
        off): ``InvalidRequest`` naming the field if it would refuse it."""
        frame = self.codec.encode(message)
        if not self.check:
            return frame
        try:
            self.codec.decode_request(frame)
        except ProtocolError as error:
            raise InvalidRequest(error.reject) from None
        return frame

    def _request(self, message: P.Message) -> None:
        if not self.logged_on:
            raise GatewayError("the session is closed: create a new Client")
        if self.ended is not None:
            raise SessionEnded(f"the gateway ended the session ({self.ended.why})")
        frame = self._check(message)
        self.counters["sent"] += 1
        if self._batch is not None:
            self._batch.append(frame)
            return
        self._socket.send(frame)
        self._last_sent = time.monotonic()

    def _send(self, message: P.Message) -> None:
        self._socket.send(self.codec.encode(message))
        self._last_sent = time.monotonic()

    def _receive(self, timeout: float | None, heartbeats: bool = True) -> Reply | None:
        """One message within ``timeout`` (None: forever), or None: the next of the last
        frame's batch, else from the socket. Sends heartbeats when due while it waits;
        swallows the gateway's heartbeats."""
        deadline = None if timeout is None else time.monotonic() + timeout
        received = self._received
        while True:
            if not received:
                frame = self._frame(deadline, heartbeats)
                if frame is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        return None
                    continue
                try:
                    received.extend(self.codec.decode_replies(frame))
                except (msgspec.DecodeError, msgspec.ValidationError) as error:
                    raise GatewayError(f"undecodable frame from the gateway: {error}") from None
                continue
            message = self._taken(received.popleft())
            if message is not None:
                return message

    def _taken(self, message: Reply) -> Reply | None:
        """What a received message tells the client (the session ended, the last report
        seq); None for the gateway's heartbeat, which is only a sign of life."""
        if isinstance(message, P.Heartbeat):
            return None
        if isinstance(message, P.LoggedOut):
            self.ended = message
        seq = getattr(message, "report_seq", None)
        if seq is not None and seq > self.last_report_seq:
            self.last_report_seq = seq
        return message

    def _frame(self, deadline: float | None, heartbeats: bool) -> bytes | None:
        """One frame from the socket by ``deadline`` (or a heartbeat's due time), or None."""
        now = time.monotonic()
        wait = None if deadline is None else max(0.0, deadline - now)
        if heartbeats:
            due = self._last_sent + self.heartbeat_interval / 2
            if now >= due:
                self._send(P.Heartbeat())
                due = now + self.heartbeat_interval / 2
            wait = due - now if wait is None else min(wait, due - now)
        try:  # what has arrived first, without a poll (a Poller per call costs ~10 µs)
            return self._socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            ms = None if wait is None else math.ceil(max(0.0, wait) * 1000)
            if ms != 0 and self._poller.poll(ms):
                return self._socket.recv(zmq.NOBLOCK)
            return None

    def _await(self, kind: type, timeout: float) -> Reply:
        """The next ``kind`` message; whatever comes before it is kept for ``reports``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self._receive(left)
            if isinstance(message, kind):
                return message
            if message is not None:
                self._pending.append(message)
        raise QueryTimeout(f"no {kind.__name__} from the gateway within {timeout:g} s")


# --- market data ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Update:
    """One market-data message as ``MarketData.updates`` yields it, and what it did."""

    symbol: int
    message: object
    applied: Applied


class MarketData:
    """Local books of the market-data feed at ``endpoint`` (see the module docstring).

    ``subscribe(symbols)`` by name (``"BTC-USD"``) or by id; no symbols: every one. The
    publisher sends a symbol under its name or its id (``stages.marketdata.topic``);
    ``names`` (name → id, the venue's instruments) lets a subscription by either receive
    both, and ``book("BTC-USD")`` find the book of id 1 before its first message.
    ``books()`` / ``book(symbol)`` are the books so far; ``updates()`` / ``poll()`` read
    the socket and apply what came.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        server_key: str | bytes | os.PathLike | None = None,
        keys: KeysArg = None,
        levels_kept: int = 50,
        names: dict[str, int] | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._books: dict[int, LocalBook] = {}
        self._names: dict[str, int] = dict(names or {})
        self._trades_kept = levels_kept
        self.counters = collections.Counter[str]()
        curve = curve_options(keys, server_key)
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        try:
            _secure(self._socket, curve)
            self._socket.connect(endpoint)
        except BaseException:
            self._socket.close(0)
            raise

    def subscribe(self, symbols: Iterable[str | int] = ()) -> MarketData:
        """Receive these symbols' messages (every symbol's if none is given).

        A name whose id is known (``names``) is subscribed under both topics, and an id
        whose name is known too: a publisher may send under either (``topic``).
        """
        prefixes = set()
        ids = {ident: name for name, ident in self._names.items()}
        for symbol in symbols:
            prefixes.add(topic(symbol))
            if isinstance(symbol, str) and symbol in self._names:
                prefixes.add(topic(self._names[symbol]))
            elif isinstance(symbol, int) and symbol in ids:
                prefixes.add(topic(ids[symbol]))
        for prefix in sorted(prefixes) or [TOPIC_PREFIX]:
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix)
        return self

    def books(self) -> dict[int, LocalBook]:
        """The books by symbol id (a book appears with its first message)."""
        return dict(self._books)

    def book(self, symbol: str | int) -> LocalBook | None:
        """The book of ``symbol`` (by id, or by the name its topic carried)."""
        if isinstance(symbol, str):
            ident = self._names.get(symbol)
            return None if ident is None else self._books.get(ident)
        return self._books.get(symbol)

    def poll(self, timeout: float | None = 0.0) -> Update | None:
        """Receive and apply one message within ``timeout`` seconds (None: forever)."""
        wait = None if timeout is None else math.ceil(max(0.0, timeout) * 1000)
        if not self._socket.poll(wait):
            return None
        frames = self._socket.recv_multipart()
        if len(frames) != 2:
            self.counters["malformed"] += 1
            return None
        name, data = frames
        try:
            message = decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.counters["malformed"] += 1
            return None
        symbol = message.symbol
        text = name[len(TOPIC_PREFIX) : -1].decode("utf-8", "replace")
        if text and not text.isdecimal():
            self._names[text] = symbol
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = LocalBook(symbol, self._trades_kept)
        applied = book.apply(message)
        self.counters[applied.value] += 1
        if applied is Applied.APPLIED and isinstance(message, Snapshot):
            self.counters["snapshots"] += 1
        return Update(symbol, message, applied)

    def updates(self, timeout: float | None = None) -> Iterator[Update]:
        """Every message as it comes, applied; ends when ``timeout`` seconds pass without
        one (None: never)."""
        while True:
            update = self.poll(timeout)
            if update is None:
                return
            yield update

    def close(self) -> None:
        self._socket.close(0)

    def __enter__(self) -> MarketData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_endpoints(run_dir: str | Path) -> tuple[str, str]:
    """The gateway's default order-entry and market-data endpoints in ``run_dir``."""
    base = Path(run_dir).absolute()
    return f"ipc://{base / 'gateway.sock'}", f"ipc://{base / 'market-data.sock'}"
