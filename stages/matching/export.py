"""The canonical form of the book state: every resting order, in priority order.

``export_orders`` is what the state hash covers and what a snapshot stores, so it does not
depend on which pool rows the orders happen to occupy; ``import_orders`` rests those rows
again in the same order, which restores every FIFO priority. Both are cold (called by
``MatchingEngine.state_hash`` / ``snapshot`` / ``restore``), entry points taking the state
arrays one by one as ``run_batch`` does.
"""

from __future__ import annotations

from .jit import njit
from .layout import (
    B_NLEVELS,
    L_HEAD,
    O_ACCT,
    O_FLAGS,
    O_ID,
    O_NEXT,
    O_PRICE,
    O_QTY,
    O_STP,
    X_ACCOUNT,
    X_BOOK,
    X_FLAGS,
    X_ORDER_ID,
    X_PRICE,
    X_QTY,
    X_SIDE,
    X_STP,
    OrderPool,
    PriceLevels,
)
from .levels import attach, side_row
from .order_pool import allocate


@njit()
def export_orders(books, side_levels, level_rows, order_rows, out):
    """Write every resting order into ``out`` (``X_*`` columns, EXPORT_WIDTH wide) in
    canonical order: book, bids then asks, best level first, oldest first; return the count.
    """
    r = 0
    for b in range(books.shape[0]):
        for side in range(2):
            row = side_row(b, side)
            for j in range(books[b, B_NLEVELS + side] - 1, -1, -1):
                o = level_rows[side_levels[row, j], L_HEAD]
                while o != -1:
                    out[r, X_BOOK] = b
                    out[r, X_SIDE] = side
                    out[r, X_PRICE] = order_rows[o, O_PRICE]
                    out[r, X_ORDER_ID] = order_rows[o, O_ID]
                    out[r, X_ACCOUNT] = order_rows[o, O_ACCT]
                    out[r, X_QTY] = order_rows[o, O_QTY]
                    out[r, X_STP] = order_rows[o, O_STP]
                    out[r, X_FLAGS] = order_rows[o, O_FLAGS]
                    r += 1
                    o = order_rows[o, O_NEXT]
    return r


@njit()
def import_orders(
    books, side_keys, side_levels, level_rows, level_free, order_rows, order_free, order_index,
    counters, rows,
):  # fmt: skip
    """Rest the rows of ``export_orders`` again, in order (restores FIFO priority)."""
    levels = PriceLevels(books, side_keys, side_levels, level_rows, level_free, counters)
    pool = OrderPool(order_rows, order_free, order_index, counters)
    for r in range(rows.shape[0]):
        o = allocate(pool, rows[r, X_ORDER_ID], rows[r, X_ACCOUNT], rows[r, X_PRICE],
                     rows[r, X_QTY], rows[r, X_SIDE], rows[r, X_BOOK], rows[r, X_STP],
                     rows[r, X_FLAGS])  # fmt: skip
        attach(levels, order_rows, o)
