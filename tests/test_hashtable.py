"""The compiled order-id hash table (stages.hashtable) against a dict, on tiny crowded tables.

Matching and risk both run on this table; here it is driven directly on 8- and 16-slot
tables filled up to half, where probe runs are long and wrap around the end, so backward-
shift deletion and rehashing meet every case the engines can only hit by chance.
"""

from __future__ import annotations

import numpy as np
import pytest
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


def crowded_table(size: int) -> tuple[np.ndarray, dict[int, int]]:
    """A table filled to half with keys whose probe runs wrap past the end."""
    table = np.zeros((size, 2), np.int64)
    model: dict[int, int] = {}
    for key in CROWDING[size][: size // 2]:
        hashtable.put(table, key, 1000 + key)
        model[key] = 1000 + key
    return table, model


def check_absent_keys_delete_nothing(delete, size: int) -> None:
    """``delete`` of absent keys on a crowded table answers -1 and leaves it unchanged."""
    table, model = crowded_table(size)
    before = table.copy()
    # an absent key for every home slot (the crowded runs among them), and keys <= 0
    by_home: dict[int, int] = {}
    for key in range(1, 4000):
        if key not in model:
            by_home.setdefault(hashtable.home(key, size - 1), key)
    assert len(by_home) == size
    for key in [*by_home.values(), *CROWDING[size][size // 2 :], 0, -5]:
        assert key not in model
        assert delete(table, key) == -1
        assert np.array_equal(table, before)
    check_same(table, model)
    for key in list(model):  # and the present keys still delete
        assert delete(table, key) == model.pop(key)
        check_same(table, model)


# A loop in compiled code never returns to the interpreter (and holds the GIL): no
# pytest-timeout method can end it. So the same function first runs as plain Python
# (``py_func``), where a regression to an endless probe fails on the timeout instead of
# hanging the run, and the compiled function only after that has passed.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [8, 16])
def test_delete_of_an_absent_key_answers_minus_one_and_changes_nothing(size):
    check_absent_keys_delete_nothing(hashtable.delete.py_func, size)
    check_absent_keys_delete_nothing(hashtable.delete, size)
