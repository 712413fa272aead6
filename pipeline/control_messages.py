"""The control plane's messages: one tagged msgspec Struct per kind, encoded as msgpack.

Requests go from the supervisor to a stage (``Status``, ``Stop``, ``Snapshot``, ``Halt``,
``Resume``, ``KillSwitch``, ``Deposit``) and from a command-line client to the supervisor
(the same kinds); a stage answers each with exactly one reply (``StatusReply``, ``Ack`` or
``Refused``; the supervisor answers a client's ``Status`` with ``PipelineStatus``). A stage
announces itself with ``Register`` and both sides send ``Heartbeat``s, which are never
answered. Every kind carries its tag in the field ``kind`` (``{"kind": "halt", "symbol":
1}``), so a person reading a capture, or a decoder, knows what it holds.

Each side decodes only what it may receive (``REQUEST``, ``STAGE_MESSAGE``, ``REPLY``): a
reply sent where a request belongs fails to decode like any other garbage, with msgspec's
path to the bad field (``Expected int >= 0 - at `$.account```), and is answered ``Refused``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Id = Annotated[int, msgspec.Meta(ge=0)]


class Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """The base of every control message (it is never sent itself)."""

    @property
    def kind(self) -> str:
        """The message's tag (``"halt"``), as ``stages.loop.request_kind`` reads it."""
        return self.__struct_config__.tag  # type: ignore[return-value]


# --- requests --------------------------------------------------------------------------------
class Status(Message, tag="status"):
    """Ask for a ``StatusReply`` (a stage) or a ``PipelineStatus`` (the supervisor)."""


class Stop(Message, tag="stop"):
    """Drain what is in flight, then exit. Answered ``Ack`` when the stop has begun."""


class Snapshot(Message, tag="snapshot"):
    """Take a snapshot now (persistence); ``Ack`` names where in its ``detail``."""


class Halt(Message, tag="halt"):
    """Halt trading in ``symbol``: it enters the command stream, sequenced and journaled."""

    symbol: Id


class Resume(Message, tag="resume"):
    """Resume trading in a halted ``symbol``."""

    symbol: Id


class KillSwitch(Message, tag="kill_switch"):
    """Engage (or with ``release`` lift) the kill switch of ``account``, or of every account
    with ``all_accounts``; exactly one of the two is given."""

    account: Id | None = None
    all_accounts: bool = False
    release: bool = False

    def __post_init__(self) -> None:
        if (self.account is None) == (not self.all_accounts):
            raise ValueError("a kill switch names one account or all_accounts, not both or none")


class Deposit(Message, tag="deposit"):
    """Credit ``amount`` units of ``asset`` to ``account`` (sequenced like an order)."""

    account: Id
    asset: Id
    amount: Annotated[int, msgspec.Meta(ge=1)]


class Heartbeat(Message, tag="heartbeat"):
    """I am alive. Sent both ways every heartbeat interval; never answered."""


# --- what a stage sends unasked --------------------------------------------------------------
class Register(Message, tag="register"):
    """A stage's first message: its name (also its socket identity) and its pid."""

    stage: str
    pid: Id


# --- replies ---------------------------------------------------------------------------------
class StatusReply(Message, tag="status_reply"):
    """A stage's state: ``state`` (e.g. ``starting``, ``running``, ``draining``), counters by
    name, ring positions (cursor by ring name), and where it runs (``core`` None: unpinned)."""

    stage: str
    state: str
    pid: Id
    core: Id | None = None
    cpu_pct: float = 0.0
    counters: dict[str, int] = msgspec.field(default_factory=dict)
    rings: dict[str, int] = msgspec.field(default_factory=dict)


class PipelineStatus(Message, tag="pipeline_status"):
    """The supervisor's answer to a client's ``Status``: every stage's ``StatusReply``."""

    supervisor_pid: Id
    stages: list[StatusReply] = msgspec.field(default_factory=list)


class Ack(Message, tag="ack"):
    """Done (or, for ``Stop``, begun); ``detail`` says anything worth saying."""

    detail: str = ""


class Refused(Message, tag="refused"):
    """Not done, and why: a person reads ``reason``."""

    reason: str


REQUEST = Status | Stop | Snapshot | Halt | Resume | KillSwitch | Deposit | Heartbeat
REPLY = StatusReply | PipelineStatus | Ack | Refused
#: What the supervisor receives from a stage: its registration, heartbeats and replies.
STAGE_MESSAGE = Register | Heartbeat | StatusReply | Ack | Refused

_encoder = msgspec.msgpack.Encoder()
request_decoder = msgspec.msgpack.Decoder(REQUEST)
reply_decoder = msgspec.msgpack.Decoder(REPLY)
stage_message_decoder = msgspec.msgpack.Decoder(STAGE_MESSAGE)


def encode(message: Message) -> bytes:
    """The msgpack bytes of ``message`` (its ``kind`` tag included)."""
    return _encoder.encode(message)
