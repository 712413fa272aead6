"""Gateway requests as command records: what one NEW, CANCEL, REPLACE or REDUCE looks like.

Like ``stages/ingest/admin.py`` for operator commands, each function returns unsequenced
``COMMAND_DTYPE`` records (``seq`` and ``ts_ingest`` 0: ingest stamps them with the batch
they join), origin ``SOURCE`` (the gateway is the pipeline's load source), encoded the way
the engine reads them. Nothing here decides anything: the gateway's checks are done by the
time a record is built, and the engine's (funds, limits, tick, lot, ownership...) come back
as events.
"""

from __future__ import annotations

import numpy as np

from stages.gateway.orders import Order
from stages.gateway.protocol import ORDER_TYPES, SIDES, STPS, TIFS, NewOrder
from stages.records import COMMAND_DTYPE, CommandFlag, CommandOrigin, CommandType


def new_order(order: Order, request: NewOrder) -> np.ndarray:
    """The NEW of ``order`` as ``request`` asked for it."""
    record = np.zeros(1, dtype=COMMAND_DTYPE)
    record["kind"] = CommandType.NEW
    record["order_id"] = order.order_id
    record["account"] = order.account
    record["symbol"] = order.symbol
    record["side"] = SIDES[request.side]
    record["order_type"] = ORDER_TYPES[request.type]
    record["tif"] = TIFS[request.tif]
    record["stp"] = STPS[request.stp]
    record["flags"] = CommandFlag.POST_ONLY if request.post_only else 0
    record["price"] = request.price
    record["qty"] = request.qty
    record["origin"] = CommandOrigin.SOURCE
    return record


def cancels(orders: list[Order]) -> np.ndarray:
    """One CANCEL per order (a cancel, a mass cancel, a cancel on disconnect)."""
    records = np.zeros(len(orders), dtype=COMMAND_DTYPE)
    records["kind"] = CommandType.CANCEL
    records["order_id"] = [o.order_id for o in orders]
    records["account"] = [o.account for o in orders]
    records["symbol"] = [o.symbol for o in orders]
    records["origin"] = CommandOrigin.SOURCE
    return records


def replace(order: Order, price: int, qty: int) -> np.ndarray:
    """REPLACE ``order`` to ``price`` with ``qty`` open in total."""
    return _amend(order, CommandType.REPLACE, price, qty)


def reduce(order: Order, by: int) -> np.ndarray:
    """REDUCE ``order``'s open quantity by ``by``."""
    return _amend(order, CommandType.REDUCE, 0, by)


def _amend(order: Order, kind: CommandType, price: int, qty: int) -> np.ndarray:
    record = np.zeros(1, dtype=COMMAND_DTYPE)
    record["kind"] = kind
    record["order_id"] = order.order_id
    record["account"] = order.account
    record["symbol"] = order.symbol
    record["price"] = price
    record["qty"] = qty
    record["origin"] = CommandOrigin.SOURCE
    return record
