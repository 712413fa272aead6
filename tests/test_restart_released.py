"""``ReleasedBefore``: the answers at the front of a restarted stream that left before the
crash, which output drops and the gateway does not report again. Counted off exactly
once, across batches, and a stream that does not begin with them is refused."""

from __future__ import annotations

import numpy as np
import pytest

from stages.restart import ReleasedBefore, RestartPoint


def point(state_seq: int, released: int) -> RestartPoint:
    return RestartPoint("state", state_seq, state_seq + 5, 0, released_of_first=released)


def test_nothing_left_before_a_fresh_start():
    assert ReleasedBefore(None).take(np.array([1, 1, 2])) == 0
    assert ReleasedBefore(point(10, 0)).take(np.array([11, 11])) == 0


def test_counted_off_across_batches_and_only_once():
    before = ReleasedBefore(point(10, 3))
    assert before.take(np.array([11, 11])) == 2
    assert before.left == 1
    assert before.take(np.array([11, 11, 12])) == 1  # the fourth answer of 11 is new
    assert before.left == 0
    assert before.take(np.array([11, 12])) == 0  # never again


def test_a_stream_that_does_not_begin_with_them_is_refused():
    with pytest.raises(RuntimeError, match="should be of seq 11"):
        ReleasedBefore(point(10, 2)).take(np.array([11, 12]))
