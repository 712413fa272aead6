"""The gateway's command records, byte for byte against a record set field by field.

``stages.gateway.commands`` packs records by hand for speed (the order's numbers, then ten
bytes of codes made once per combination); the reference here is a ``COMMAND_DTYPE`` record
built the obvious way, one numpy field at a time.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from stages.gateway import commands
from stages.gateway import protocol as P
from stages.gateway.orders import Order
from stages.records import COMMAND_DTYPE, CommandFlag, CommandOrigin, CommandType

ints64 = st.integers(0, 2**63 - 1)
orders = st.builds(
    Order,
    client_order_id=st.just("c"),
    order_id=ints64,
    account=st.integers(1, 2**32 - 1),
    symbol=st.integers(0, 2**16 - 1),
    side=st.sampled_from(["buy", "sell"]),
    price=ints64,
    qty=st.integers(1, 2**63 - 1),
    leaves_qty=st.integers(1, 2**63 - 1),
)


def reference(order: Order, kind: int, price: int = 0, qty: int = 0, **codes: int) -> bytes:
    record = np.zeros(1, dtype=COMMAND_DTYPE)
    record["order_id"], record["price"], record["qty"] = order.order_id, price, qty
    record["account"], record["symbol"], record["kind"] = order.account, order.symbol, kind
    record["origin"] = CommandOrigin.SOURCE
    for name, value in codes.items():
        record[name] = value
    return record.tobytes()


@given(
    orders,
    ints64,
    st.integers(1, 2**63 - 1),
    st.sampled_from(sorted(P.SIDES)),
    st.sampled_from(sorted(P.ORDER_TYPES)),
    st.sampled_from(sorted(P.TIFS)),
    st.sampled_from(sorted(P.STPS)),
    st.booleans(),
)
def test_a_new_order_is_the_record_its_request_names(order, price, qty, side, kind, tif, stp, post):
    request = P.NewOrder("c", 1, side, qty, price, kind, tif, post, stp)
    expected = reference(
        order, CommandType.NEW, price, qty,
        side=P.SIDES[side], order_type=P.ORDER_TYPES[kind], tif=P.TIFS[tif], stp=P.STPS[stp],
        flags=CommandFlag.POST_ONLY if post else 0,
    )  # fmt: skip
    assert commands.new_order(order, request) == expected


@given(st.lists(orders, max_size=5), ints64, st.integers(1, 2**63 - 1))
def test_cancels_replace_and_reduce_are_the_records_they_name(many, price, qty):
    expected = b"".join(reference(o, CommandType.CANCEL) for o in many)
    assert commands.cancels(many) == expected
    for order in many:
        assert commands.replace(order, price, qty) == reference(
            order, CommandType.REPLACE, price, qty
        )
        assert commands.reduce(order, qty) == reference(order, CommandType.REDUCE, 0, qty)
    batch = commands.records(expected)
    assert batch.flags.writeable and len(batch) == len(many)
