"""``stages.outcomes.Outcomes`` against a plain ``collections.Counter`` of the same events."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.outcomes import Outcomes
from stages.records import EVENT_DTYPE, EventType, Reason

_event = st.tuples(st.sampled_from(list(EventType)), st.sampled_from(list(Reason)))


def _batch(pairs: list[tuple[EventType, Reason]]) -> np.ndarray:
    events = np.zeros(len(pairs), EVENT_DTYPE)
    for i, (kind, reason) in enumerate(pairs):
        events["kind"][i], events["reason"][i] = kind, reason
    return events


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_event, max_size=20), max_size=4))
def test_counts_match_a_counter_of_the_same_events(batches):
    outcomes = Outcomes()
    for pairs in batches:
        outcomes.add(_batch(pairs))
    everything = [pair for pairs in batches for pair in pairs]
    kinds = Counter(kind for kind, _ in everything)
    reasons = Counter(everything)
    for kind in EventType:
        assert outcomes.count(kind) == kinds[kind]
    for kind in (EventType.REJECTED, EventType.CANCELLED):
        for reason in Reason:
            assert outcomes.count(kind, reason) == reasons[(kind, reason)]
    rows = dict(outcomes.rows())
    assert {label for label in rows if label.startswith("events:")} == {
        f"events: {kind.name.lower()}" for kind in kinds
    }
    assert sum(rows[f"events: {k.name.lower()}"] for k in kinds) == len(everything)


def test_rows_name_each_reason_under_its_kind():
    outcomes = Outcomes()
    outcomes.add(
        _batch(
            [
                (EventType.REJECTED, Reason.INSUFFICIENT_FUNDS),
                (EventType.REJECTED, Reason.INSUFFICIENT_FUNDS),
                (EventType.CANCELLED, Reason.USER_CANCEL),
                (EventType.TRADE, Reason.OK),
            ]
        )
    )
    assert list(outcomes.rows()) == [
        ("events: rejected", 2),
        ("  rejected: insufficient_funds", 2),
        ("events: trade", 1),
        ("events: cancelled", 1),
        ("  cancelled: user_cancel", 1),
    ]
