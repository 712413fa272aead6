"""The risk engine's open-order table: order id -> row, an open-addressing hash over a pool.

Risk must find an order by id for every event that settles it, in compiled code, and a
snapshot must be a plain dump; so the table is preallocated arrays: ``rows`` (a pool of
int64 rows, see ``layout.O_*``; free rows chained through ``O_NEW_SEQ``, the head in
``glob[G_FREE_HEAD]``) and ``keys`` (a power-of-two hash of ``(order id, row)`` pairs, id 0 =
empty) with linear probing and backward-shift deletion (no tombstones, so lookups never slow
down as orders come and go). Rows are reused last-freed first, so the live orders stay in a
compact, cache-friendly part of the pool whatever the capacity. Order ids must be > 0.
These functions are hot: they never allocate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stages.risk.layout import G_FREE_HEAD, O_COLUMNS, O_NEW_SEQ

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed int64 (Fibonacci hashing)


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


@njit(cache=True, inline="always", _nrt=False)
def _home(order_id: int, mask: int) -> int:
    h = order_id * _GOLDEN
    return (h ^ (h >> 31)) & mask


def hash_size_for(entries: int, size: int) -> int:
    """The hash size (a power of two, >= ``size``) that keeps ``entries`` at most half full."""
    while size < 2 * entries:
        size *= 2
    return size


@njit(cache=True, _nrt=False)
def rehash(old: np.ndarray, new: np.ndarray) -> None:
    """Insert every ``(order id, row)`` of ``old`` into the empty, larger ``new``."""
    mask = new.shape[0] - 1
    for j in range(old.shape[0]):
        k = old[j, 0]
        if k != 0:
            i = _home(k, mask)
            while new[i, 0] != 0:
                i = (i + 1) & mask
            new[i, 0] = k
            new[i, 1] = old[j, 1]


@njit(cache=True, _nrt=False)
def find(keys: np.ndarray, order_id: int) -> int:
    """Pool row of ``order_id``, or -1. Hot: no allocation."""
    mask = keys.shape[0] - 1
    i = _home(order_id, mask)
    while True:
        k = keys[i, 0]
        if k == order_id:
            return keys[i, 1]
        if k == 0:
            return -1
        i = (i + 1) & mask


@njit(cache=True, _nrt=False)
def insert(keys: np.ndarray, rows: np.ndarray, glob: np.ndarray, order_id: int) -> int:
    """A zeroed pool row for a new ``order_id`` (absent; a free row exists). Hot."""
    row = glob[G_FREE_HEAD]
    glob[G_FREE_HEAD] = rows[row, O_NEW_SEQ]
    rows[row, O_NEW_SEQ] = 0
    mask = keys.shape[0] - 1
    i = _home(order_id, mask)
    while keys[i, 0] != 0:
        i = (i + 1) & mask
    keys[i, 0] = order_id
    keys[i, 1] = row
    return row


@njit(cache=True, _nrt=False)
def remove(keys: np.ndarray, rows: np.ndarray, glob: np.ndarray, order_id: int) -> None:
    """Forget ``order_id`` (present): free its row, shift later probe entries back. Hot."""
    mask = keys.shape[0] - 1
    hole = _home(order_id, mask)
    while keys[hole, 0] != order_id:
        hole = (hole + 1) & mask
    row = keys[hole, 1]
    for c in range(rows.shape[1]):
        rows[row, c] = 0
    rows[row, O_NEW_SEQ] = glob[G_FREE_HEAD]
    glob[G_FREE_HEAD] = row
    j = hole
    while True:
        j = (j + 1) & mask
        k = keys[j, 0]
        if k == 0:
            break
        home = _home(k, mask)
        # entry j may move into the hole unless its home lies cyclically in (hole, j]
        stays = (hole < home <= j) if hole <= j else (home > hole or home <= j)
        if not stays:
            keys[hole, 0] = k
            keys[hole, 1] = keys[j, 1]
            hole = j
    keys[hole, 0] = 0
    keys[hole, 1] = 0
