"""Byte-level record copies equal numpy's field-by-field ones."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ringbuffer.records import clone_records, concat_records, copy_records
from stages.records import COMMAND_DTYPE, EVENT_DTYPE


def some_events(n: int) -> np.ndarray:
    events = np.zeros(n, dtype=EVENT_DTYPE)
    raw = events.view(np.uint8)
    raw[:] = np.random.default_rng(n).integers(0, 256, raw.size, dtype=np.uint8)
    return events


def test_copy_clone_and_concat_match_numpy():
    events = some_events(100)
    target = np.zeros(100, dtype=EVENT_DTYPE)
    copy_records(target, events)
    assert target.tobytes() == events.tobytes()
    clone = clone_records(events[10:20])
    assert clone.tobytes() == events[10:20].copy().tobytes()
    assert not np.shares_memory(clone, events)
    joined = concat_records([events[:30], events[30:31], events[31:]])
    assert joined.tobytes() == events.tobytes()


@pytest.mark.parametrize("sizes", [[1] * 200, [0, 1, 0, 3], [5000, 1, 7000], [1, 9000]])
def test_concat_of_many_small_or_a_few_large_parts_is_writable_and_equal(sizes):
    events = some_events(sum(sizes))
    bounds = np.cumsum([0, *sizes])
    parts = [events[a:b] for a, b in itertools.pairwise(bounds)]
    joined = concat_records(parts)
    assert joined.dtype == EVENT_DTYPE and joined.tobytes() == events.tobytes()
    joined["seq"] = 1  # writable, whichever way it was joined (ingest stamps in place)


def test_read_only_sources_are_fine():
    events = some_events(8)
    events.flags.writeable = False
    assert clone_records(events).flags.writeable
    assert concat_records([events]).tobytes() == events.tobytes()


def test_mismatches_are_refused():
    with pytest.raises(TypeError, match="record layouts differ"):
        copy_records(np.zeros(4, COMMAND_DTYPE), some_events(4))
    with pytest.raises(ValueError, match="copy of 4 records into 5 slots"):
        copy_records(np.zeros(5, EVENT_DTYPE), some_events(4))
    with pytest.raises(TypeError, match="record layouts differ"):
        concat_records([some_events(2), np.zeros(2, COMMAND_DTYPE)])
