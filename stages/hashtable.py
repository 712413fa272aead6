"""The order id -> row hash table of compiled code: one implementation for matching and risk.

Both engines find an order by id on every cancel, replace and fill, inside numba code, and
both keep the table as a plain ``(size, 2)`` int64 array of ``(key, value)`` pairs so a
snapshot or a growth step is an array operation: size a power of two, key 0 = empty slot,
keys > 0, linear probing from a Fibonacci hash, and backward-shift deletion (no tombstones,
so lookups never slow down as keys come and go). Callers keep the table at most half full
and count what they store; nothing here allocates or grows anything.

These functions are hot. They are inlined into the callers' compiled loops
(``inline="always"``) and compiled without the runtime's reference counting: they must never
allocate or call back into Python. The probe sequence is part of the risk snapshot format
(the risk engine saves its table as is), so ``home`` must not change.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed int64 (Fibonacci hashing)


@njit(cache=True, inline="always", _nrt=False)
def home(key: int, mask: int) -> int:
    """The first slot probed for ``key`` in a table of ``mask + 1`` slots."""
    h = key * _GOLDEN
    return (h ^ (h >> 31)) & mask


@njit(cache=True, inline="always", _nrt=False)
def find(table: np.ndarray, key: int) -> int:
    """The value stored for ``key``, or -1 when it is absent (always for keys <= 0). Hot."""
    if key <= 0:
        return -1
    mask = table.shape[0] - 1
    i = home(key, mask)
    while True:
        k = table[i, 0]
        if k == key:
            return table[i, 1]
        if k == 0:
            return -1
        i = (i + 1) & mask


@njit(cache=True, inline="always", _nrt=False)
def put(table: np.ndarray, key: int, value: int) -> None:
    """Store ``key`` (> 0, absent; the table has a free slot) -> ``value``. Hot."""
    mask = table.shape[0] - 1
    i = home(key, mask)
    while table[i, 0] != 0:
        i = (i + 1) & mask
    table[i, 0] = key
    table[i, 1] = value


@njit(cache=True, inline="always", _nrt=False)
def delete(table: np.ndarray, key: int) -> int:
    """Remove ``key`` and return its value, or -1 (table unchanged) when it is absent (always
    for keys <= 0); later probe entries shift back. Hot.

    The search stops at the first empty slot, as ``find`` does: with backward-shift
    deletion there are no tombstones, so an empty slot ends every probe run, and a key
    absent from a table with a free slot is answered instead of probed for forever.
    """
    if key <= 0:
        return -1
    mask = table.shape[0] - 1
    hole = home(key, mask)
    while True:
        k = table[hole, 0]
        if k == key:
            break
        if k == 0:
            return -1
        hole = (hole + 1) & mask
    value = table[hole, 1]
    j = hole
    while True:
        j = (j + 1) & mask
        k = table[j, 0]
        if k == 0:
            break
        h = home(k, mask)
        # entry j stays where it is if its home lies cyclically in (hole, j]
        if hole <= j:
            if hole < h <= j:
                continue
        elif h > hole or h <= j:
            continue
        table[hole, 0] = k
        table[hole, 1] = table[j, 1]
        hole = j
    table[hole, 0] = 0
    table[hole, 1] = 0
    return value


@njit(cache=True, _nrt=False)
def rehash(old: np.ndarray, new: np.ndarray) -> None:
    """Put every ``(key, value)`` of ``old`` into the empty (larger) ``new``."""
    for j in range(old.shape[0]):
        k = old[j, 0]
        if k != 0:
            put(new, k, old[j, 1])
