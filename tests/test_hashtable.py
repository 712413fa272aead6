"""The compiled order-id hash table (stages.hashtable) against a dict, on tiny crowded tables.

Matching and risk both run on this table; here it is driven directly on 8- and 16-slot
tables filled up to half, where probe runs are long and wrap around the end, so backward-
shift deletion and rehashing meet every case the engines can only hit by chance.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stages import hashtable


def crowding_keys(size: int) -> list[int]:
    """Four keys for each of the last two slots and the first: their probe runs wrap."""
    mask = size - 1
    return [
        key
        for home in (mask - 1, mask, 0)
        for key in [k for k in range(1, 4000) if hashtable.home(k, mask) == home][:4]
    ]


CROWDING = {size: crowding_keys(size) for size in (8, 16)}


def check_same(table: np.ndarray, model: dict[int, int]) -> None:
    assert int(np.count_nonzero(table[:, 0])) == len(model)
    for key, value in model.items():
        assert hashtable.find(table, key) == value
    for key in [-2, -1, 0, *range(1, 64), *CROWDING[len(table)]]:
        if key not in model:
            assert hashtable.find(table, key) == -1


@settings(max_examples=150, deadline=None)
@given(
    size=st.sampled_from([8, 16]),
    ops=st.lists(
        st.tuples(st.booleans(), st.integers(1, 63), st.integers(0, 11), st.booleans()),
        max_size=60,
    ),
)
def test_find_put_delete_behave_like_a_dict(size, ops):
    table = np.zeros((size, 2), np.int64)
    model: dict[int, int] = {}
    for add, any_key, crowding, pick_crowding in ops:
        key = CROWDING[size][crowding] if pick_crowding else any_key
        if add and key not in model and 2 * (len(model) + 1) <= size:
            hashtable.put(table, key, 1000 + key)
            model[key] = 1000 + key
        elif not add and key in model:
            assert hashtable.delete(table, key) == model.pop(key)
        check_same(table, model)


@settings(max_examples=50, deadline=None)
@given(keys=st.sets(st.integers(1, 10**12), max_size=8))
def test_rehash_into_a_larger_table_keeps_every_pair(keys):
    small = np.zeros((16, 2), np.int64)
    for key in keys:
        hashtable.put(small, key, key % 997)
    large = np.zeros((64, 2), np.int64)
    hashtable.rehash(small, large)
    assert int(np.count_nonzero(large[:, 0])) == len(keys)
    for key in keys:
        assert hashtable.find(large, key) == key % 997
