"""Frames to gateway messages and back: msgpack by default, JSON on request, never a crash.

**Which codec.** A connection's codec is the one its first frame — its ``Logon`` — is
written in, and it stays for the connection: every later frame must use it and every reply
comes back in it. The two cannot be confused: a message is a map, which msgpack starts with
a byte 0x80..0x8f, 0xde or 0xdf, and JSON with ``{`` (0x7b, after optional whitespace),
which in msgpack would be the integer 123, never a message (``sniff``). So a client picks
JSON simply by sending JSON; nothing is negotiated. Before a logon succeeded each frame is
answered in the codec it was written in.

**Never a crash.** ``decode_request`` raises nothing but ``ProtocolError``, whose
``reject`` is the ``BusinessReject`` to send: a frame over ``MAX_FRAME`` bytes is refused
before any decoding (a peer cannot make the gateway parse megabytes), and every decoding or
validation failure names the field by msgspec's path (``$.qty``; ``$`` for the frame as a
whole) with msgspec's text (``Expected `int` <= 9223372036854775807``). When the frame was
readable enough, the reject also names the request's kind and client order id, so a client
with several requests in flight knows which one was refused.

**Batches.** A frame may also hold an *array* of messages (a msgpack array, byte
0x90..0x9f, 0xdc or 0xdd; a JSON array, ``[``): a client that has several requests ready
sends them in one frame, and the gateway answers a session's replies of one round in one
frame the same way. ZeroMQ costs several microseconds per frame on each side (a syscall and
a wake of its I/O thread); a batch costs that once. Every element is judged on its own: a
bad one gets its own reject and the others still count. A msgpack batch of well-formed
requests is decoded in one call (``decode_batch``); any other batch element by element
(``split``), which names what is wrong with which. A batch holds at
most ``MAX_BATCH`` messages, each at most ``MAX_FRAME`` bytes.
"""

from __future__ import annotations

import enum
import re
from typing import Any

import msgspec

from stages.gateway.protocol import (
    CLIENT_ORDER_ID_TEXT,
    REPLY,
    REQUEST,
    BusinessReject,
    Message,
    client_order_ids_valid,
)

#: the largest message the gateway decodes; a NewOrder is ~200 bytes in JSON, ~130 in msgpack
MAX_FRAME = 4096
#: the most messages one batch frame may hold
MAX_BATCH = 1024
#: the largest batch frame the gateway reads
MAX_BATCH_FRAME = MAX_BATCH * MAX_FRAME
#: the first byte of a msgpack array (fixarray, array 16, array 32)
_MSGPACK_ARRAYS = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}

_JSON_WHITESPACE = b" \t\r\n"
_AT = re.compile(r"^(?P<text>.*?) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_NAMED_FIELD = re.compile(r"(?:missing required|contains unknown) field `(?P<name>[^`]+)`")


class Codec(enum.Enum):
    """A connection's wire format."""

    MSGPACK = "msgpack"
    JSON = "json"

    # each member's own encoder and decoders, set once by ``_wire`` (below)
    _encoder: Any
    _requests: Any
    _replies: Any
    _raw_batch: Any
    _reply_batch: Any

    def encode(self, message: Message) -> bytes:
        """The frame of ``message`` in this codec (its ``kind`` tag included)."""
        return self._encoder.encode(message)

    def decode_request(self, frame: bytes) -> Message:
        """The request ``frame`` holds; raises ``ProtocolError`` (only) when it holds none."""
        _refuse_over(frame, MAX_FRAME, "frame")
        try:
            message = self._requests.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProtocolError(self._reject(frame, str(exc))) from None
        except Exception as exc:  # the contract: nothing but ProtocolError
            raise ProtocolError(BusinessReject(field="$", text=f"undecodable: {exc}")) from None
        if not client_order_ids_valid([message]):
            raise ProtocolError(
                BusinessReject(
                    field="$.client_order_id",
                    text=CLIENT_ORDER_ID_TEXT,
                    ref_kind=message.kind,
                    client_order_id=message.client_order_id,  # type: ignore[attr-defined]
                )
            )
        return message

    def decode_reply(self, frame: bytes) -> Message:
        """A reply or report (the client's side); raises msgspec's errors as they come."""
        return self._replies.decode(frame)

    def decode_replies(self, frame: bytes) -> list[Message]:
        """The replies a frame holds: one, or a batch's (the client's side)."""
        if self.is_batch(frame):
            return self._reply_batch.decode(frame)
        return [self.decode_reply(frame)]

    def is_batch(self, frame: bytes) -> bool:
        """Whether ``frame`` is an array (a batch) in this codec rather than one message."""
        if self is _MSGPACK:
            return len(frame) > 0 and frame[0] in _MSGPACK_ARRAYS
        return frame[:64].lstrip(_JSON_WHITESPACE)[:1] == b"["

    def split(self, frame: bytes) -> list[bytes]:
        """The messages of a batch frame, each still encoded (``decode_request`` each);
        raises ``ProtocolError`` for the whole frame when it is no array of at most
        ``MAX_BATCH`` elements."""
        _refuse_over(frame, MAX_BATCH_FRAME, "batch")
        try:
            elements = self._raw_batch.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            field, text = error_path(str(exc))
            raise ProtocolError(BusinessReject(field=field, text=text)) from None
        except Exception as exc:  # the contract: nothing but ProtocolError
            raise ProtocolError(BusinessReject(field="$", text=f"undecodable: {exc}")) from None
        if not elements or len(elements) > MAX_BATCH:
            raise ProtocolError(
                BusinessReject(
                    field="$",
                    text=f"a batch holds 1..{MAX_BATCH} messages, not {len(elements)}",
                )
            )
        return [bytes(element) for element in elements]

    def decode_batch(self, frame: bytes) -> list[Message] | None:
        """Every request of a msgpack batch frame decoded in one call (~1 µs a request less
        than ``split`` and ``decode_request`` each), or None when the frame is JSON, or any
        element is not a well-formed request (client order ids included) or over ``MAX_FRAME`` bytes, or the batch is
        empty or over ``MAX_BATCH``: then ``split`` says what is wrong with which element.
        (JSON is left to ``split``: whitespace can make an element of a valid request
        longer than ``MAX_FRAME``, which must be refused all the same.)"""
        if self is not _MSGPACK or len(frame) > MAX_BATCH_FRAME:
            return None
        try:
            elements = self._raw_batch.decode(frame)
            if not 0 < len(elements) <= MAX_BATCH or max(map(len, elements)) > MAX_FRAME:
                return None
            requests = _msgpack_request_batch.decode(frame)
        except Exception:  # any failure: the element-wise path names it
            return None
        return requests if client_order_ids_valid(requests) else None

    def encode_batch(self, messages: list[Message]) -> bytes:
        """One frame for ``messages``: the message itself if there is one, else an array."""
        return self._encoder.encode(messages[0] if len(messages) == 1 else messages)

    def join(self, frames: list[bytes]) -> bytes:
        """One batch frame of already encoded messages (each from ``encode``): no message
        is encoded twice (msgspec copies a ``Raw`` as it is). One frame is returned as it is."""
        if len(frames) == 1:
            return frames[0]
        return self._encoder.encode([msgspec.Raw(frame) for frame in frames])

    def encode_request(self, message: Message) -> bytes:
        """Same as ``encode``; named for the client side's readability."""
        return self.encode(message)

    def _reject(self, frame: bytes, error: str) -> BusinessReject:
        field, text = error_path(error)
        kind, client_order_id = self._peek(frame)
        return BusinessReject(
            field=field, text=text, ref_kind=kind, client_order_id=client_order_id
        )

    def _peek(self, frame: bytes) -> tuple[str | None, str | None]:
        """The ``kind`` and ``client_order_id`` of a frame that did not validate, if it is a
        map that has them as strings (best effort, never raises)."""
        try:
            decoded: Any = (msgspec.msgpack if self is _MSGPACK else msgspec.json).decode(frame)
        except Exception:  # undecodable: nothing to name
            return None, None
        if not isinstance(decoded, dict):
            return None, None
        kind, cid = decoded.get("kind"), decoded.get("client_order_id")
        return (
            kind[:64] if isinstance(kind, str) else None,
            cid[:64] if isinstance(cid, str) else None,
        )


def _refuse_over(frame: bytes, limit: int, what: str) -> None:
    """Refuse a frame over ``limit`` bytes before any decoding (a peer cannot make the
    gateway parse megabytes)."""
    if len(frame) > limit:
        text = f"{what} of {len(frame)} bytes is over the {limit}-byte limit"
        raise ProtocolError(BusinessReject(field="$", text=text))


class ProtocolError(Exception):
    """A frame the gateway cannot act on; ``reject`` is the answer to send."""

    def __init__(self, reject: BusinessReject) -> None:
        super().__init__(f"{reject.field}: {reject.text}")
        self.reject = reject


def sniff(frame: bytes) -> Codec:
    """The codec a frame is written in: JSON if its first non-blank byte is ``{`` (a
    message) or ``[`` (a batch), else msgpack (whose decoder then says what is wrong with
    anything else)."""
    stripped = frame[:64].lstrip(_JSON_WHITESPACE)
    return Codec.JSON if stripped[:1] in (b"{", b"[") else Codec.MSGPACK


def decode_any(frame: bytes) -> tuple[Codec, Message]:
    """``sniff`` then ``decode_request``: a connection's first frame."""
    codec = sniff(frame)
    return codec, codec.decode_request(frame)


def error_path(error: str) -> tuple[str, str]:
    """Split a msgspec error into (the field's path, what was wrong).

    ``Expected `int` >= 1 - at `$.qty``` -> (``$.qty``, ``Expected `int` >= 1``); a missing
    or unknown field, which msgspec reports at its parent, is named itself
    (``Object missing required field `qty``` -> ``$.qty``); anything else is ``$``.
    """
    match = _AT.match(error)
    path, text = (match["path"], match["text"]) if match else ("$", error)
    named = _NAMED_FIELD.search(text)
    if named:
        path = f"{path}.{named['name']}"
    return path, text


_MSGPACK = Codec.MSGPACK  # a module global: ``Codec.MSGPACK`` is ~0.1 µs an access
_msgpack_request_batch = msgspec.msgpack.Decoder(list[REQUEST])  # type: ignore[valid-type]


def _wire(codec: Codec, library: Any) -> None:
    """Give ``codec`` its own encoder and decoders (``library``: ``msgspec.msgpack`` or
    ``msgspec.json``) as attributes of the member: the hot methods read ``self._requests``
    and the like, where a branch on ``self is Codec.MSGPACK`` and a property cost ~0.3 µs a
    call, a tenth of a client's request check."""
    attributes = {
        "_encoder": library.Encoder(),
        "_requests": library.Decoder(REQUEST),
        "_replies": library.Decoder(REPLY),
        "_raw_batch": library.Decoder(list[msgspec.Raw]),
        "_reply_batch": library.Decoder(list[REPLY]),  # type: ignore[valid-type]
    }
    for name, value in attributes.items():
        object.__setattr__(codec, name, value)


_wire(Codec.MSGPACK, msgspec.msgpack)
_wire(Codec.JSON, msgspec.json)
