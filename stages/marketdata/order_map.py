"""The builder's per-event work, compiled: open orders by id, and the level changes events make.

Every book-changing event is about one order, and what it does to a price level depends on
that order's state (resting or not, its price, its open qty — a ``REPLACED`` event gives
only the new ones). Keeping that state per event is a dict operation or two in Python
(~1 µs per event with the interpreter around it), so ``OrderMap`` keeps it in int64 arrays
with the compiled id → row table matching and risk use (``stages/hashtable.py``), and
turns a batch of events into *level deltas* — (symbol × 2 + side, price, Δqty, Δcount)
rows — in one compiled call. The builder nets them per level with numpy and touches its
Python level dicts once per level that changed, not once per event.

The rules are those of ``builder.py``'s docstring: ``ACCEPTED`` and ``REPLACED`` make the
order *pending* (not on a level) until its command's events end — the next command's event
or the end of the batch — and what is left of it then rests; ``TRADE`` and ``CANCELLED``
take qty off the order, and off its level when it rests; an order with nothing left is
forgotten.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stages.hashtable import delete, find, put, rehash
from stages.records import EventType

# order row columns
R_SLOT, R_PRICE, R_QTY, R_REST = 0, 1, 2, 3
ROW_WIDTH = 4
# counters
N_FREE, N_ORDERS, N_PENDING, N_UNKNOWN = 0, 1, 2, 3
#: pending orders at once: one per command (its NEW or REPLACE), so a couple at most
PENDING_MAX = 64

_ACCEPTED = int(EventType.ACCEPTED)
_TRADE = int(EventType.TRADE)
_CANCELLED = int(EventType.CANCELLED)
_REPLACED = int(EventType.REPLACED)


@njit(cache=True, _nrt=False)
def _emit(out, n, slot, price, dqty, dcount):
    out[n, 0] = slot
    out[n, 1] = price
    out[n, 2] = dqty
    out[n, 3] = dcount
    return n + 1


@njit(cache=True, _nrt=False)
def _rest_pending(table, rows, pending, counters, out, n):
    """What is left of the pending orders rests at their prices."""
    for j in range(counters[N_PENDING]):
        r = find(table, pending[j])
        if r >= 0 and rows[r, R_REST] == 0:
            rows[r, R_REST] = 1
            n = _emit(out, n, rows[r, R_SLOT], rows[r, R_PRICE], rows[r, R_QTY], 1)
    counters[N_PENDING] = 0
    return n


@njit(cache=True, _nrt=False)
def _pend(table, rows, pending, counters, out, n, order_id):
    """Make ``order_id`` pending. Matching's events make one order pending per command, so
    the list never fills; events made otherwise (many opened by one seq) rest the pending
    ones early rather than write past the array (compiled code checks no bounds)."""
    if counters[N_PENDING] == pending.shape[0]:
        n = _rest_pending(table, rows, pending, counters, out, n)
    pending[counters[N_PENDING]] = order_id
    counters[N_PENDING] += 1
    return n


@njit(cache=True, _nrt=False)
def level_deltas(seq, oid, price, qty, slot, kind, table, rows, free, pending, counters, out):
    """Apply the events (columns, book-changing kinds only) to the order state; write the
    level deltas to ``out`` (room for 2 per event + PENDING_MAX); return how many.

    The caller made room: a free row and table load < 1/2 for every ACCEPTED here.
    """
    n = 0
    current = -1
    for i in range(seq.shape[0]):
        if seq[i] != current:
            if counters[N_PENDING] > 0:
                n = _rest_pending(table, rows, pending, counters, out, n)
            current = seq[i]
        k = kind[i]
        if k == _TRADE or k == _CANCELLED:  # noqa: SIM109 - two compares, compiled
            r = find(table, oid[i])
            if r < 0:
                counters[N_UNKNOWN] += 1
                continue
            left = rows[r, R_QTY] - qty[i]
            if rows[r, R_REST] != 0:
                n = _emit(
                    out, n, rows[r, R_SLOT], rows[r, R_PRICE], -qty[i], -1 if left <= 0 else 0
                )
            if left <= 0:
                delete(table, oid[i])
                rows[r, R_REST] = 0
                free[counters[N_FREE]] = r
                counters[N_FREE] += 1
                counters[N_ORDERS] -= 1
            else:
                rows[r, R_QTY] = left
        elif k == _ACCEPTED:
            counters[N_FREE] -= 1
            r = free[counters[N_FREE]]
            rows[r, R_SLOT] = slot[i]
            rows[r, R_PRICE] = price[i]
            rows[r, R_QTY] = qty[i]
            rows[r, R_REST] = 0
            put(table, oid[i], r)
            counters[N_ORDERS] += 1
            n = _pend(table, rows, pending, counters, out, n, oid[i])
        elif k == _REPLACED:
            r = find(table, oid[i])
            if r < 0:
                counters[N_UNKNOWN] += 1
                continue
            if rows[r, R_REST] != 0:
                n = _emit(out, n, rows[r, R_SLOT], rows[r, R_PRICE], -rows[r, R_QTY], -1)
                rows[r, R_REST] = 0
            rows[r, R_PRICE] = price[i]
            rows[r, R_QTY] = qty[i]
            n = _pend(table, rows, pending, counters, out, n, oid[i])
    if counters[N_PENDING] > 0:  # a batch ends between commands: the pending ones rest
        n = _rest_pending(table, rows, pending, counters, out, n)
    return n


class OrderMap:
    """Open orders by id in compiled arrays; events in, level deltas out (see the module)."""

    def __init__(self, capacity: int = 1 << 12) -> None:
        capacity = max(16, 1 << (capacity - 1).bit_length())
        self._rows = np.zeros((capacity, ROW_WIDTH), dtype=np.int64)
        self._free = np.arange(capacity - 1, -1, -1, dtype=np.int64)
        self._table = np.zeros((2 * capacity, 2), dtype=np.int64)
        self._pending = np.zeros(PENDING_MAX, dtype=np.int64)
        self._counters = np.zeros(4, dtype=np.int64)
        self._counters[N_FREE] = capacity

    @property
    def unknown_orders(self) -> int:
        """Events about orders never seen open (the builder started late, or was not seeded)."""
        return int(self._counters[N_UNKNOWN])

    def __len__(self) -> int:
        return int(self._counters[N_ORDERS])

    def _reserve(self, new_orders: int) -> None:
        """Room for ``new_orders`` more orders: rows, and the table at most half full."""
        need = int(self._counters[N_ORDERS]) + new_orders
        capacity = len(self._rows)
        if need <= capacity:
            return
        while capacity < need:
            capacity *= 2
        old = len(self._rows)
        rows = np.zeros((capacity, ROW_WIDTH), dtype=np.int64)
        rows[:old] = self._rows
        nfree = int(self._counters[N_FREE])
        free = np.zeros(capacity, dtype=np.int64)
        free[:nfree] = self._free[:nfree]
        free[nfree : nfree + capacity - old] = np.arange(capacity - 1, old - 1, -1)
        table = np.zeros((2 * capacity, 2), dtype=np.int64)
        rehash(self._table, table)
        self._rows, self._free, self._table = rows, free, table
        self._counters[N_FREE] = nfree + capacity - old

    def deltas(self, events: np.ndarray) -> np.ndarray:
        """HOT. The (slot, price, Δqty, Δcount) rows ``events`` (book-changing kinds only,
        in order) make, slot = symbol × 2 + side."""
        kind = events["kind"].astype(np.int64)
        self._reserve(int(np.count_nonzero(kind == _ACCEPTED)))
        slot = events["symbol"].astype(np.int64) * 2 + events["side"]
        out = np.empty((2 * len(events) + PENDING_MAX, 4), dtype=np.int64)
        n = level_deltas(
            np.ascontiguousarray(events["seq"]),
            np.ascontiguousarray(events["order_id"]),
            np.ascontiguousarray(events["price"]),
            np.ascontiguousarray(events["qty"]),
            slot,
            kind,
            self._table,
            self._rows,
            self._free,
            self._pending,
            self._counters,
            out,
        )
        return out[:n]
