"""The risk engine's open-order table: order id -> row, an open-addressing hash over a pool.

Risk must find an order by id for every event that settles it, in compiled code, and a
snapshot must be a plain dump; so the table is preallocated arrays: ``rows`` (a pool of
int64 rows, see ``layout.O_*``; free rows chained through ``O_NEW_SEQ``, the head in
``glob[G_FREE_HEAD]``) and ``keys`` (a power-of-two hash of ``(order id, row)`` pairs, id 0 =
empty) with linear probing and backward-shift deletion (no tombstones, so lookups never slow
down as orders come and go). Rows are reused last-freed first, so the live orders stay in a
compact, cache-friendly part of the pool whatever the capacity. Order ids must be > 0.
The hash table code itself is ``stages.hashtable``, shared with the matching core.
These functions are hot: they never allocate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stages import hashtable
from stages.hashtable import find, rehash
from stages.risk.layout import G_FREE_HEAD, O_COLUMNS, O_NEW_SEQ

__all__ = ["MIN_HASH_SIZE", "find", "hash_size_for", "insert", "new_table", "rehash", "remove"]

MIN_HASH_SIZE = 1024


def new_table(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty ``(keys, rows)`` for ``capacity`` open orders; set ``glob[G_FREE_HEAD] = 0``.

    The hash starts small and is grown by the caller (``hash_size_for`` / ``rehash``) before
    a batch that could fill it past half: sized by use, it stays in cache.
    """
    keys = np.zeros((MIN_HASH_SIZE, 2), np.int64)
    rows = np.zeros((capacity, O_COLUMNS), np.int64)
    rows[:, O_NEW_SEQ] = np.arange(1, capacity + 1)
    rows[-1, O_NEW_SEQ] = -1
    return keys, rows


def hash_size_for(entries: int, size: int) -> int:
    """The hash size (a power of two, >= ``size``) that keeps ``entries`` at most half full."""
    while size < 2 * entries:
        size *= 2
    return size


@njit(cache=True, _nrt=False)
def insert(keys: np.ndarray, rows: np.ndarray, glob: np.ndarray, order_id: int) -> int:
    """A zeroed pool row for a new ``order_id`` (absent; a free row exists). Hot."""
    row = glob[G_FREE_HEAD]
    glob[G_FREE_HEAD] = rows[row, O_NEW_SEQ]
    rows[row, O_NEW_SEQ] = 0
    hashtable.put(keys, order_id, row)
    return row


@njit(cache=True, _nrt=False)
def remove(keys: np.ndarray, rows: np.ndarray, glob: np.ndarray, order_id: int) -> None:
    """Forget ``order_id``: free its row, shift later probe entries back (an absent id
    changes nothing). Hot."""
    row = hashtable.delete(keys, order_id)
    if row < 0:
        return
    for c in range(rows.shape[1]):
        rows[row, c] = 0
    rows[row, O_NEW_SEQ] = glob[G_FREE_HEAD]
    glob[G_FREE_HEAD] = row
