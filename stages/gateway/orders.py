"""The gateway's orders: order-id allocation, client order ids, and what each order awaits.

**Order ids are the gateway's.** A client names its orders with its own strings; the
engine needs int64 ids unique among open orders of all sources. The gateway allocates
them from one increasing counter (``OrderIds``) and never hands one out twice, so a report
about an id can only be about one order of one client, ever. The counter starts at
``FIRST_ORDER_ID`` (2**40) so gateway ids stay clear of the ids the synthetic load and the
file feeds number from 1; after a restart ``resume(highest)`` continues above the highest
id the journal holds (the process that owns the gateway reads it there: every NEW is
journaled before its answer leaves).

**Client order ids** are unique among an account's *open* orders (sent and not yet done):
a NEW reusing one is refused, a client order id is free again once its order is done
(filled, cancelled or rejected). Lookups go through the account (``AccountOrders``), so an
account can never name another account's order: it is simply unknown to it.

**What an order awaits.** Commands of one account reach the engine in the order the
gateway sent them, and each of NEW, CANCEL, REPLACE, REDUCE produces exactly one first
answer about its order (ACCEPTED / REJECTED, CANCELLED(USER_CANCEL) / REJECTED,
REPLACED / REJECTED). So each order keeps a FIFO of the requests it has in flight and an
answer pops the oldest: that is how a REJECTED is told to be the cancel's and not the
order's. A done order is forgotten once nothing of it is in flight.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from stages.gateway.protocol import INT64_MAX, OpenOrder, SideName

#: the first id the gateway allocates; below it are the ids other sources use
FIRST_ORDER_ID = 1 << 40


class OrderIds:
    """A monotonically increasing int64 order-id counter that never reuses an id."""

    def __init__(self, next_id: int = FIRST_ORDER_ID) -> None:
        if not 1 <= next_id <= INT64_MAX:
            raise ValueError(f"next order id {next_id} is out of range: expected 1..2**63-1")
        self.next_id = next_id

    def allocate(self) -> int:
        """A fresh id."""
        order_id = self.next_id
        if order_id > INT64_MAX:
            raise OverflowError("the gateway ran out of int64 order ids")
        self.next_id = order_id + 1
        return order_id

    def resume(self, highest_seen: int) -> None:
        """Continue above ``highest_seen`` (an id in a journal, a snapshot): never below."""
        self.next_id = max(self.next_id, highest_seen + 1)

    @property
    def highest(self) -> int:
        """The highest id allocated so far (``next_id - 1``): what to persist."""
        return self.next_id - 1


@dataclass(slots=True)
class Order:
    """One order the gateway sent, as its reports describe it."""

    client_order_id: str
    order_id: int
    account: int
    symbol: int
    side: SideName
    price: int
    qty: int
    leaves_qty: int
    filled_qty: int = 0
    accepted: bool = False
    done: bool = False
    #: requests sent about this order whose first answer has not come back, oldest first
    pending: deque[str] = field(default_factory=deque)

    def view(self) -> OpenOrder:
        """The ``OpenOrder`` a client is shown."""
        return OpenOrder(
            client_order_id=self.client_order_id,
            order_id=self.order_id,
            symbol=self.symbol,
            side=self.side,
            price=self.price,
            qty=self.qty,
            leaves_qty=self.leaves_qty,
            filled_qty=self.filled_qty,
            accepted=self.accepted,
        )


class AccountOrders:
    """One account's open orders by client order id, oldest first."""

    def __init__(self) -> None:
        self.open: dict[str, Order] = {}  # insertion order = oldest first

    def find(self, client_order_id: str) -> Order | None:
        """The account's open order of that client order id, None if it has none."""
        return self.open.get(client_order_id)

    def add(self, order: Order) -> None:
        """Register a new open order; the caller checked its client order id is free."""
        self.open[order.client_order_id] = order

    def close(self, order: Order) -> None:
        """The order is done: its client order id is free again."""
        if self.open.get(order.client_order_id) is order:
            del self.open[order.client_order_id]

    def orders(self, symbol: int | None = None) -> list[Order]:
        """The open orders (of ``symbol`` only, if given), oldest first."""
        return [o for o in self.open.values() if symbol is None or o.symbol == symbol]
