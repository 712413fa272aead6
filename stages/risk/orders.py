"""The risk engine's open-order table: order id -> row, an open-addressing hash in arrays.

Risk must find an order by id for every event that settles it, in compiled code, and a
snapshot must be a plain dump; so the table is two preallocated arrays (``keys``: order ids,
0 = empty slot; ``rows``: int64 columns, see ``layout.O_*``) with linear probing and
backward-shift deletion (no tombstones, so lookups never slow down as orders come and go).
Order ids must be > 0. These functions are hot: they never allocate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed int64 (Fibonacci hashing)


def new_table(capacity: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Empty ``(keys, rows, load_limit)`` for at least ``capacity`` open orders."""
    size = 16
    while size * 3 // 4 < capacity:
        size *= 2
    from stages.risk.layout import O_COLUMNS

    return np.zeros(size, np.int64), np.zeros((size, O_COLUMNS), np.int64), size * 3 // 4


@njit(cache=True, inline="always")
def _home(order_id: int, mask: int) -> int:
    h = order_id * _GOLDEN
    return (h ^ (h >> 31)) & mask


@njit(cache=True)
def find(keys: np.ndarray, order_id: int) -> int:
    """Slot of ``order_id``, or -1. Hot: no allocation."""
    mask = keys.shape[0] - 1
    i = _home(order_id, mask)
    while True:
        k = keys[i]
        if k == order_id:
            return i
        if k == 0:
            return -1
        i = (i + 1) & mask


@njit(cache=True)
def insert(keys: np.ndarray, order_id: int) -> int:
    """Slot for a new ``order_id`` (absent, table below its load limit). Hot: no allocation."""
    mask = keys.shape[0] - 1
    i = _home(order_id, mask)
    while keys[i] != 0:
        i = (i + 1) & mask
    keys[i] = order_id
    return i


@njit(cache=True)
def remove(keys: np.ndarray, rows: np.ndarray, slot: int) -> None:
    """Empty ``slot``, shifting later entries of its probe run back. Hot: no allocation."""
    mask = keys.shape[0] - 1
    hole = slot
    j = slot
    while True:
        j = (j + 1) & mask
        k = keys[j]
        if k == 0:
            break
        home = _home(k, mask)
        # entry j may move into the hole unless its home lies cyclically in (hole, j]
        stays = (hole < home <= j) if hole <= j else (home > hole or home <= j)
        if not stays:
            keys[hole] = k
            rows[hole, :] = rows[j, :]
            hole = j
    keys[hole] = 0
    rows[hole, :] = 0
