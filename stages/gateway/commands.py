"""Gateway requests as command records: what one NEW, CANCEL, REPLACE or REDUCE looks like.

Like ``stages/ingest/admin.py`` for operator commands, each function returns unsequenced
``COMMAND_DTYPE`` records, packed as bytes (``records`` makes them a batch: a round's
requests are joined as bytes and become one array, not one array each) (``seq`` and ``ts_ingest`` 0: ingest stamps them with the batch
they join), origin ``SOURCE`` (the gateway is the pipeline's load source), encoded the way
the engine reads them. Nothing here decides anything: the gateway's checks are done by the
time a record is built, and the engine's (funds, limits, tick, lot, ownership...) come back
as events.
"""

from __future__ import annotations

import struct

import numpy as np

from stages.gateway.orders import Order
from stages.gateway.protocol import ORDER_TYPES, SIDES, STPS, TIFS, NewOrder
from stages.records import COMMAND_DTYPE, CommandFlag, CommandOrigin, CommandType

#: a record is its first 24 bytes zero (seq, ts_ingest, ts_risk: ingest and risk stamp
#: them), the order's five numbers (``_NUMBERS``: order_id, price, qty, account, symbol), and
#: ten bytes fixed by the kind of request (``_codes``: kind, side, order_type, tif, stp,
#: flags, reason 0, origin, 2 pad bytes), made once per combination. ``struct`` converts
#: every argument on each call: packing the five numbers and adding the fixed bytes is
#: ~0.45 µs, packing all eighteen fields ~1.05 µs, setting them in a numpy record ~5 µs.
_NUMBERS = struct.Struct("<24xqqqIH")
_CODES_SIZE = 10
assert _NUMBERS.size + _CODES_SIZE == COMMAND_DTYPE.itemsize
assert COMMAND_DTYPE.fields["kind"][1] == _NUMBERS.size  # type: ignore[index]
_SOURCE = int(CommandOrigin.SOURCE)


def records(packed: bytes) -> np.ndarray:
    """Packed records as a writable COMMAND_DTYPE batch (ingest stamps it in place)."""
    return np.frombuffer(bytearray(packed), dtype=COMMAND_DTYPE)


def _codes(*codes: int) -> bytes:
    """The ten bytes after the numbers: kind, side, order_type, tif, stp, flags (0 where not
    given), reason 0, origin ``SOURCE``, padding."""
    kind_to_flags = [int(code) for code in codes] + [0] * (6 - len(codes))
    return bytes([*kind_to_flags, 0, _SOURCE, 0, 0])


_CANCEL, _REPLACE, _REDUCE = (
    _codes(k) for k in (CommandType.CANCEL, CommandType.REPLACE, CommandType.REDUCE)
)


def new_order(order: Order, request: NewOrder) -> bytes:
    """The NEW of ``order`` as ``request`` asked for it (hot: one per new order, so its
    codes come from one lookup, ``_new_codes``)."""
    key = (request.side, request.type, request.tif, request.stp, request.post_only)
    codes = _NEW_CODES.get(key) or _new_codes(key)
    numbers = _NUMBERS.pack(order.order_id, request.price, request.qty, order.account, order.symbol)
    return numbers + codes


#: (side, type, tif, stp, post_only) names -> the record's last ten bytes, as met
_NEW_CODES: dict[tuple, bytes] = {}


def _new_codes(key: tuple) -> bytes:
    side, order_type, tif, stp, post_only = key
    flags = CommandFlag.POST_ONLY if post_only else 0
    codes = _codes(
        CommandType.NEW, SIDES[side], ORDER_TYPES[order_type], TIFS[tif], STPS[stp], flags
    )
    _NEW_CODES[key] = codes
    return codes


def _pack(codes: bytes, order: Order, price: int = 0, qty: int = 0) -> bytes:
    return _NUMBERS.pack(order.order_id, price, qty, order.account, order.symbol) + codes


def cancels(orders: list[Order]) -> bytes:
    """One CANCEL per order (a cancel, a mass cancel, a cancel on disconnect)."""
    return b"".join([_pack(_CANCEL, o) for o in orders])


def replace(order: Order, price: int, qty: int) -> bytes:
    """REPLACE ``order`` to ``price`` with ``qty`` open in total."""
    return _pack(_REPLACE, order, price, qty)


def reduce(order: Order, by: int) -> bytes:
    """REDUCE ``order``'s open quantity by ``by``."""
    return _pack(_REDUCE, order, 0, by)
