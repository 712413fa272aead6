"""What the gateway tests share: the in-process venue's engine config and request builders,
a gateway run's config and a bare protocol client.

``Session`` speaks the protocol over a DEALER socket directly (the library client,
``pipeline.client``, is tested on its own), so the gateway's tests see its frames as sent.
"""

from __future__ import annotations

from pathlib import Path

import zmq

from pipeline.config import (
    JournalConfig,
    LoadConfig,
    PipelineConfig,
    RunConfig,
    SnapshotConfig,
    default_engine,
)
from stages.engine import EngineConfig
from stages.gateway import protocol as p
from stages.gateway.codec import Codec
from stages.risk.config import AssetConfig, InstrumentConfig, RiskConfig

#: the engine behind an in-process ``Gateway`` (assets, two symbols, fees, settle at once)
USD, BTC, ETH = 0, 1, 2
CONFIG = EngineConfig(
    risk=RiskConfig(
        assets=[AssetConfig(USD, "USD"), AssetConfig(BTC, "BTC"), AssetConfig(ETH, "ETH")],
        instruments=[
            InstrumentConfig(
                symbol=1, base=BTC, quote=USD, name="BTC-USD", maker_fee_bps=10, taker_fee_bps=20
            ),
            InstrumentConfig(symbol=2, base=ETH, quote=USD, name="ETH-USD", lot_size=1),
        ],
        max_accounts=16,
    ),
    settle_every=1,
)
FUNDED = (1, 2, 3)  # account 4 has nothing: its orders are rejected INSUFFICIENT_FUNDS

REPLY_MS = 60_000  # the longest a reply may take before the test fails (a bound, not a timing)
CODEC = Codec.MSGPACK


def gateway_config(root: Path) -> RunConfig:
    return RunConfig(
        engine=default_engine(),
        load=LoadConfig(source="gateway", accounts=10),
        journal=JournalConfig(directory=str(root / "journal")),
        snapshots=SnapshotConfig(directory=str(root / "snapshots")),
        pipeline=PipelineConfig(run_dir=str(root / "run")),
    )


def buy(cid, qty, price, symbol="BTC-USD", **kw) -> p.NewOrder:
    return p.NewOrder(client_order_id=cid, symbol=symbol, side="buy", qty=qty, price=price, **kw)


def sell(cid, qty, price, symbol="BTC-USD", **kw) -> p.NewOrder:
    return p.NewOrder(client_order_id=cid, symbol=symbol, side="sell", qty=qty, price=price, **kw)


def kinds(messages) -> list[tuple[str, str]]:
    return [(m.kind, getattr(m, "client_order_id", None)) for m in messages]


def order_of(message: p.Message) -> str | None:
    """The client order id a report is about (None: a heartbeat, not a report)."""
    return getattr(message, "client_order_id", None)


class Session:
    """A bare DEALER client speaking the protocol (the library client is tested elsewhere)."""

    def __init__(self, context: zmq.Context, endpoint: str, account: int) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.others: list[p.Message] = []
        self.queued: list[p.Message] = []  # the rest of a batch frame already received
        ack = self.ask(p.Logon(account=account))
        assert isinstance(ack, p.LogonAck), ack

    def send(self, message: p.Message) -> None:
        self.socket.send(CODEC.encode_request(message))

    def receive(self) -> p.Message:
        """The next message; a frame may hold several (a batch), kept in order."""
        if not self.queued:
            assert self.socket.poll(REPLY_MS), "no reply from the gateway"
            self.queued = CODEC.decode_replies(self.socket.recv())
        return self.queued.pop(0)

    def ask(self, message: p.Message) -> p.Message:
        """Send ``message``; its reply (reports of other orders arriving first are kept in
        ``others``)."""
        self.send(message)
        ref = getattr(message, "client_order_id", None)
        while True:
            reply = self.receive()
            if ref is None or getattr(reply, "client_order_id", None) == ref:
                return reply
            self.others.append(reply)

    def until(self, done) -> list[p.Message]:
        """Receive until ``done(message)``; everything received."""
        got = [self.receive()]
        while not done(got[-1]):
            got.append(self.receive())
        return got
