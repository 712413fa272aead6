"""What the gateway tests share: a gateway run's config and a bare protocol client.

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
from stages.gateway import protocol as p
from stages.gateway.codec import Codec

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
