"""A gateway server in a thread, for testing the client library without the pipeline.

``FakeGateway`` binds what the gateway process binds — a ROUTER for order entry and a PUB
for market data — and does in one thread what that process and the pipeline do together:
each frame goes to a ``stages.gateway.Gateway``; its command records are stamped
(``Stamper``) and processed by an in-process ``Engine`` at once; the replies, the reports
of the engine's events and the ``DepthBuilder`` messages of those events go out, and every
``snapshot_every`` seconds a ``Snapshot`` of every symbol. With ``curve`` it is a CURVE
server with its own ZAP handler (in the same thread): a key not among ``clients`` never
completes the handshake, and a known key's accounts are the ``allowed_accounts`` of its
frames (ZeroMQ gives each frame the peer's ``User-Id``, its z85 public key).

It is a context manager: entering starts the thread and waits until the sockets are bound;
leaving stops it, joins it and the thread closes its sockets, whatever happened (a thread
that does not stop within ``timeout`` fails the test rather than hanging it). ``call(fn)``
runs ``fn`` in the server thread (the engine is not thread-safe) and returns its result.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import zmq
import zmq.utils.z85

from stages.engine import Engine, EngineConfig
from stages.gateway.sessions import Gateway, Outgoing
from stages.gateway.symbols import SymbolTable
from stages.ingest.admin import deposit
from stages.ingest.synthetic import Stamper
from stages.marketdata import DepthBuilder, encode, topic
from tests.gateway_helpers import BTC, CONFIG, ETH, FUNDED, USD

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
POLL_MS = 5
EXPIRE_EVERY = 0.02
BATCH = 1024  # frames handled per engine batch at most


class FakeGateway:
    """Order entry on ``endpoint`` and market data on ``md_endpoint`` (see the module).

    ``curve``: (server public, server secret) z85 keys; ``clients``: z85 public key →
    accounts (``pipeline.keys.load_clients``). ``depth``: levels published.
    """

    def __init__(
        self,
        endpoint: str,
        md_endpoint: str,
        *,
        curve: tuple[bytes, bytes] | None = None,
        clients: dict[str, tuple[int, ...]] | None = None,
        config: EngineConfig = CONFIG,
        funded: tuple[int, ...] = FUNDED,
        depth: int = 10,
        snapshot_every: float = 0.05,
        timeout: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.md_endpoint = md_endpoint
        self.curve = curve
        self.clients = clients or {}
        self.config = config
        self.funded = funded
        self.depth = depth
        self.snapshot_every = snapshot_every
        self.timeout = timeout
        self.engine = Engine(config)
        self.stamper = Stamper()
        self.gateway = Gateway(
            SymbolTable.from_risk(config.risk), max_accounts=config.risk.max_accounts
        )
        self.builder = DepthBuilder(depth)
        self.names = {i.symbol: i.name for i in config.risk.instruments}
        self.drop_market_data = 0  # the next N update messages are not published (a gap)
        self.zap_refused = 0
        self._calls: queue.Queue[tuple[Callable[[], Any], queue.Queue]] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="fake-gateway", daemon=True)
        self._context = zmq.Context()

    # --- the test's side ------------------------------------------------------------------
    def __enter__(self) -> FakeGateway:
        self._thread.start()
        if not self._ready.wait(self.timeout) or self._error is not None:
            self._stop.set()
            self._thread.join(self.timeout)
            self._context.term()
            raise RuntimeError(f"the fake gateway did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout)
        alive = self._thread.is_alive()
        if not alive:
            self._context.term()
        if alive:
            raise RuntimeError(f"the fake gateway's thread did not stop within {self.timeout} s")
        if self._error is not None and exc[0] is None:
            raise RuntimeError("the fake gateway's thread failed") from self._error

    def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run in the server thread, between two frames; its result."""
        answer: queue.Queue = queue.Queue()
        self._calls.put((fn, answer))
        ok, value = answer.get(timeout=self.timeout)
        if not ok:
            raise value
        return value

    def depth_of(self, symbol: int) -> tuple[list[tuple[int, int, int]], list[tuple]]:
        """``MatchingEngine.depth`` of ``symbol`` as LocalBook rows (read in the thread)."""

        def read() -> tuple[list, list]:
            bids, asks = self.engine.matching.depth(symbol, self.depth)
            return (
                [tuple(int(x) for x in row) for row in bids],
                [tuple(int(x) for x in row) for row in asks],
            )

        return self.call(read)

    # --- the thread -----------------------------------------------------------------------
    def _main(self) -> None:
        context = self._context
        sockets: list[zmq.Socket] = []
        try:
            zap = None
            if self.curve is not None:
                zap = context.socket(zmq.REP)
                sockets.append(zap)
                zap.linger = 0
                zap.bind(ZAP_ENDPOINT)
            router = context.socket(zmq.ROUTER)
            publisher = context.socket(zmq.PUB)
            sockets += [router, publisher]
            for socket in (router, publisher):
                socket.linger = 0
                if self.curve is not None:
                    socket.curve_server = True
                    socket.curve_publickey, socket.curve_secretkey = self.curve
                    socket.zap_domain = b"tradepipe"
            router.sndhwm = 0  # a ROUTER drops what a full pipe cannot take: never here
            router.bind(self.endpoint)
            publisher.bind(self.md_endpoint)
            self._router, self._publisher = router, publisher
            self._fund()
            self._ready.set()
            self._serve(router, zap)
        except BaseException as error:
            self._error = error
            self._ready.set()
        finally:
            for socket in sockets:
                socket.close(0)

    def _fund(self) -> None:
        records = [deposit(a, x, 10**12) for a in self.funded for x in (USD, BTC, ETH)]
        if records:
            self._process(np.concatenate(records))

    def _serve(self, router: zmq.Socket, zap: zmq.Socket | None) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        if zap is not None:
            poller.register(zap, zmq.POLLIN)
        next_expire = next_snapshot = time.monotonic()
        while not self._stop.is_set():
            ready = dict(poller.poll(POLL_MS))
            if zap is not None and zap in ready:
                self._zap(zap)
            if router in ready:
                # what waits is handled as one batch, as ingest batches a ring's records
                batch: list[np.ndarray] = []
                for _ in range(BATCH):
                    if not router.poll(0):
                        break
                    identity, frame = router.recv_multipart(copy=False)
                    allowed = None
                    if self.curve is not None:
                        allowed = self.clients.get(frame.get("User-Id"), ())
                    for step in self.gateway.on_frames(
                        identity.bytes, frame.bytes, time.monotonic(), allowed
                    ):
                        self._send(step.replies)
                        if len(step.commands):
                            batch.append(step.commands)
                if batch:
                    self._process(np.concatenate(batch))
            while not self._calls.empty():
                fn, answer = self._calls.get()
                try:
                    answer.put((True, fn()))
                except BaseException as error:  # handed to the caller
                    answer.put((False, error))
            now = time.monotonic()
            if now >= next_expire:
                step = self.gateway.expire(now)
                self._send(step.replies)
                if len(step.commands):
                    self._process(step.commands)
                next_expire = now + EXPIRE_EVERY
            if now >= next_snapshot:
                for symbol in self.names:
                    self._publish(self.builder.snapshot(symbol))
                next_snapshot = now + self.snapshot_every

    def _zap(self, zap: zmq.Socket) -> None:
        """A ZAP request: 200 with the key as User-Id for a known key, 400 otherwise."""
        version, request_id, _domain, _address, _identity, mechanism, *credentials = (
            zap.recv_multipart()
        )
        key = zmq.utils.z85.encode(credentials[0]).decode() if credentials else ""
        if mechanism == b"CURVE" and key in self.clients:
            zap.send_multipart([version, request_id, b"200", b"OK", key.encode(), b""])
        else:
            self.zap_refused += 1
            zap.send_multipart([version, request_id, b"400", b"Unknown key", b"", b""])

    def _process(self, commands: np.ndarray) -> None:
        events = self.engine.process(self.stamper.stamp(commands.copy()))
        for message in self.builder.process(events):  # market data first, then the reports
            self._publish(message)
        self._send(self.gateway.on_events(events))

    def _publish(self, message: Any) -> None:
        if self.drop_market_data > 0 and not hasattr(message, "bids"):
            self.drop_market_data -= 1
            return
        name = self.names.get(message.symbol) or message.symbol
        self._publisher.send_multipart([topic(name), encode(message)])

    def _send(self, replies: list[Outgoing]) -> None:
        for out in replies:
            self._router.send_multipart([out.identity, out.frame()])
