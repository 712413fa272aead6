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
"""

from __future__ import annotations

import enum
import re
from typing import Any

import msgspec

from stages.gateway.protocol import REPLY, REQUEST, BusinessReject, Message

#: the largest frame the gateway decodes; a NewOrder is ~200 bytes in JSON, ~130 in msgpack
MAX_FRAME = 4096

_JSON_WHITESPACE = b" \t\r\n"
_AT = re.compile(r"^(?P<text>.*?) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_NAMED_FIELD = re.compile(r"(?:missing required|contains unknown) field `(?P<name>[^`]+)`")


class Codec(enum.Enum):
    """A connection's wire format."""

    MSGPACK = "msgpack"
    JSON = "json"

    def encode(self, message: Message) -> bytes:
        """The frame of ``message`` in this codec (its ``kind`` tag included)."""
        return (_msgpack_encoder if self is Codec.MSGPACK else _json_encoder).encode(message)

    def decode_request(self, frame: bytes) -> Message:
        """The request ``frame`` holds; raises ``ProtocolError`` (only) when it holds none."""
        if len(frame) > MAX_FRAME:
            raise ProtocolError(
                BusinessReject(
                    field="$",
                    text=f"frame of {len(frame)} bytes is over the {MAX_FRAME}-byte limit",
                )
            )
        decoder = _msgpack_requests if self is Codec.MSGPACK else _json_requests
        try:
            return decoder.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProtocolError(self._reject(frame, str(exc))) from None
        except Exception as exc:  # the contract: nothing but ProtocolError
            raise ProtocolError(BusinessReject(field="$", text=f"undecodable: {exc}")) from None

    def decode_reply(self, frame: bytes) -> Message:
        """A reply or report (the client's side); raises msgspec's errors as they come."""
        return (_msgpack_replies if self is Codec.MSGPACK else _json_replies).decode(frame)

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
            decoded: Any = (msgspec.msgpack if self is Codec.MSGPACK else msgspec.json).decode(
                frame
            )
        except Exception:  # undecodable: nothing to name
            return None, None
        if not isinstance(decoded, dict):
            return None, None
        kind, cid = decoded.get("kind"), decoded.get("client_order_id")
        return (
            kind[:64] if isinstance(kind, str) else None,
            cid[:64] if isinstance(cid, str) else None,
        )


class ProtocolError(Exception):
    """A frame the gateway cannot act on; ``reject`` is the answer to send."""

    def __init__(self, reject: BusinessReject) -> None:
        super().__init__(f"{reject.field}: {reject.text}")
        self.reject = reject


def sniff(frame: bytes) -> Codec:
    """The codec a frame is written in: JSON if its first non-blank byte is ``{``, else
    msgpack (whose decoder then says what is wrong with anything else)."""
    stripped = frame[:64].lstrip(_JSON_WHITESPACE)
    return Codec.JSON if stripped[:1] == b"{" else Codec.MSGPACK


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


_msgpack_encoder = msgspec.msgpack.Encoder()
_json_encoder = msgspec.json.Encoder()
_msgpack_requests = msgspec.msgpack.Decoder(REQUEST)
_json_requests = msgspec.json.Decoder(REQUEST)
_msgpack_replies = msgspec.msgpack.Decoder(REPLY)
_json_replies = msgspec.json.Decoder(REPLY)
