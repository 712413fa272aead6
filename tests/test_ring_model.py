"""Hypothesis stateful test: any interleaving of producer and consumer calls matches a model.

The model is a plain list of published records plus each consumer's read position; the
ring must deliver exactly the model's records, in order, to every consumer, never let the
producer overwrite a record a consumer has not released, and never show a consumer
declared ``after`` another anything that one has not released.
"""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ringbuffer import ConsumerSpec, Ring
from tests.ringhelpers import RECORD, fill_records, verify

CAPACITY = 16
NAMES = ("a", "b", "c")  # b runs after a


class RingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ring = Ring.create(
            "model", RECORD, CAPACITY, consumers=["a", ConsumerSpec("b", after=("a",)), "c"]
        )
        self.producer = self.ring.producer()
        self.consumers = {name: self.ring.consumer(name) for name in NAMES}
        self.published = 0  # model: records 0..published-1 exist
        self.claimed = 0
        self.released = dict.fromkeys(NAMES, 0)  # model: next record each consumer reads
        self.pending = dict.fromkeys(NAMES, 0)  # records seen by the last poll, not released

    def teardown(self) -> None:
        self.ring.close()
        self.ring.unlink()

    def free_slots(self) -> int:
        return CAPACITY - (self.claimed - min(self.released.values()))

    @rule(n=st.integers(1, CAPACITY))
    def try_claim_and_publish(self, n):
        views = self.producer.try_claim(n)
        expected = min(n, self.free_slots())
        assert sum(len(v) for v in views) == expected
        for view in views:
            fill_records(view, self.claimed)
            self.claimed += len(view)
        self.producer.publish()
        self.published = self.claimed

    @precondition(lambda self: self.free_slots() == 0)
    @rule()
    def offer_when_full_is_refused(self):
        assert self.producer.offer(bytes(64)) is False

    @rule(name=st.sampled_from(NAMES), limit=st.one_of(st.none(), st.integers(1, CAPACITY)))
    def poll(self, name, limit):
        views = self.consumers[name].poll(limit)
        start = self.released[name]
        visible = self.published if name != "b" else min(self.published, self.released["a"])
        expected = visible - start if limit is None else min(limit, visible - start)
        got = sum(len(v) for v in views)
        assert got == expected, f"{name} saw {got}, model says {expected}"
        first = start
        for view in views:
            verify(view, first)
            first += len(view)
        self.pending[name] = got

    @rule(name=st.sampled_from(NAMES))
    def release(self, name):
        self.consumers[name].release()
        self.released[name] += self.pending[name]
        self.pending[name] = 0

    @invariant()
    def cursors_match_model(self):
        status = self.ring.status()
        assert status["published"] == self.published - 1
        for name in NAMES:
            assert status["consumers"][name]["cursor"] == self.released[name] - 1


TestRingModel = RingMachine.TestCase
TestRingModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_model_helper_records_are_distinct():
    records = np.zeros(4, dtype=RECORD)
    fill_records(records, 100)
    assert len(set(records["check"].tolist())) == 4
