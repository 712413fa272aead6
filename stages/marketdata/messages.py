"""The market-data messages, their wire encoding and the per-symbol topic.

Every message is a frozen, tagged msgspec ``Struct`` encoded as a msgpack *array* (the tag
first, then the fields in order): a depth update of three levels is ~40 bytes instead of
~150 as a map, and the feed is the widest fan-out of the pipeline. ``docs/market_data.md``
documents each message and the sequence rule.

Each update message (``Depth``, ``Trades``, ``BBO``, ``Status``) carries:

* ``epoch``: which run of the publisher numbered it; a client that sees another epoch
  throws its book away and waits for a snapshot of the new one (sequence numbers start
  again at 1 when a publisher restarts, so they alone cannot tell "old" from "new"). It
  must differ from every earlier run's: a restart counter or a start time, not something
  two restarts from the same state would share;
* ``symbol``: the symbol id;
* ``seq``: the per-symbol message sequence number, +1 per message of that symbol, from 1;
  a client that sees a jump missed something and must resynchronise;
* ``cmd_seq``: the matching engine's command seq of the last event the message reflects,
  so a client can line the market up with its own execution reports.

The Structs are ``gc=False``: they hold ints and tuples of such Structs, never a cycle, so
the garbage collector need not track the thousands a busy batch creates.

``Snapshot`` carries the same ``epoch`` / ``symbol`` and the ``seq`` it is valid at (the
book after applying every message up to and including that seq); it takes no number.
"""

from __future__ import annotations

from typing import Union

import msgspec

from stages.records import Side

#: Every market-data topic starts with this; subscribing to it alone receives every symbol.
TOPIC_PREFIX = b"md."


class Level(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One price level of a snapshot: total open qty and number of orders at ``price``."""

    price: int
    qty: int
    count: int


class LevelUpdate(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The new state of one level of the top N: ``qty == 0`` means it left the top N
    (emptied, or pushed below the N-th level); ``count`` is its number of orders."""

    side: Side
    price: int
    qty: int
    count: int


class TradeTick(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One trade as the public sees it: no order ids and no accounts.

    ``price`` is the resting order's price, ``side`` the aggressor's side, ``ts`` the
    command's ``ts_ingest`` (``perf_counter_ns`` of the ingest host: a latency stamp, not
    a wall-clock time), ``cmd_seq`` the command that traded.
    """

    price: int
    qty: int
    side: Side
    ts: int
    cmd_seq: int


class Depth(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="depth"):
    """Incremental update of the top N levels of both sides (only the levels that changed)."""

    epoch: int
    symbol: int
    seq: int
    cmd_seq: int
    updates: tuple[LevelUpdate, ...]


class Trades(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="trades"):
    """The trades of one released batch in this symbol, in the order they happened."""

    epoch: int
    symbol: int
    seq: int
    cmd_seq: int
    trades: tuple[TradeTick, ...]


class BBO(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="bbo"):
    """Best bid and offer after the batch, sent when either changed (price 0 = side empty)."""

    epoch: int
    symbol: int
    seq: int
    cmd_seq: int
    bid_price: int
    bid_qty: int
    ask_price: int
    ask_qty: int


class Status(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="status"):
    """Trading halted or resumed in the symbol (sent when it changed)."""

    epoch: int
    symbol: int
    seq: int
    cmd_seq: int
    halted: bool


class Snapshot(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="snapshot"):
    """The whole top ``levels`` of both sides, best first, valid at message ``seq``."""

    epoch: int
    symbol: int
    seq: int
    cmd_seq: int
    levels: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    halted: bool


#: Everything a market-data subscriber can receive.
Message = Union[Depth, Trades, BBO, Status, Snapshot]  # noqa: UP007 - msgspec decodes a Union
#: The messages that take a sequence number (a snapshot does not).
UPDATES = (Depth, Trades, BBO, Status)

_msgpack_encoder = msgspec.msgpack.Encoder()
_msgpack_decoder = msgspec.msgpack.Decoder(Message)
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder(Message)


def encode(message: Message) -> bytes:
    """msgpack bytes of ``message`` (the feed's default encoding)."""
    return _msgpack_encoder.encode(message)


def decode(data: bytes) -> Message:
    """The message in msgpack ``data``; ``msgspec.ValidationError`` / ``DecodeError`` if
    it is not one."""
    return _msgpack_decoder.decode(data)


def encode_json(message: Message) -> bytes:
    """JSON bytes of ``message`` (for people and tools reading the feed by eye)."""
    return _json_encoder.encode(message)


def decode_json(data: bytes) -> Message:
    return _json_decoder.decode(data)


def topic(symbol: int | str) -> bytes:
    """The PUB/SUB topic of one symbol's messages, by id or by name.

    It ends with a dot, so subscribing to ``topic(1)`` (``b"md.1."``) does not also receive
    symbol 12 (``b"md.12."``): ZeroMQ matches topics by prefix. The publisher sends a
    symbol's messages under its configured name when it has one, else under its id, and
    a client computes the same bytes here.
    """
    if isinstance(symbol, bool) or not isinstance(symbol, int | str):
        raise TypeError(f"a symbol is an id (int) or a name (str), not {symbol!r}")
    if isinstance(symbol, int):
        if not 0 <= symbol < 2**16:
            raise ValueError(f"symbol id {symbol} is out of range 0..65535")
        text = str(symbol)
    else:
        if not symbol or not symbol.isprintable() or any(c in symbol for c in ". "):
            raise ValueError(f"symbol name {symbol!r} must be printable, without dots or spaces")
        text = symbol
    return TOPIC_PREFIX + text.encode() + b"."
