"""The Engine's state is a function of the sequenced commands' content, never of their stamps.

The multiprocess pipeline compares its final ``state_hash()`` with an in-process Engine run
over the journal it wrote, and two runs of the same seeded load must agree: so the same
stream stamped at other times (``ts_ingest``, and the ``dt_match`` latency matching derives
from it) must hash the same, however it is batched and whatever the settlement window
(events of an open window wait in the engine with their stamps). Throttling is off here:
with it on, ``ts_ingest`` is the throttles' clock, an input, and does change state.
"""

from __future__ import annotations

import itertools

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.engine import Engine, EngineConfig
from stages.ingest import synthetic
from stages.ingest.throttle import ThrottleConfig
from tests.engine_streams import CONFIG as PROPERTY_CONFIG
from tests.engine_streams import batches_strategy, build

BATCH_SIZES = (1, 7, 300, 5000)
SETTLE_EVERY = (1, 5, 64, 1024)
STREAM = 3001  # commands after the funding: most windows leave an open one at the end


class FakeClock:
    """A ``time`` stand-in for the stamper: ``perf_counter_ns`` from ``start`` by ``step``."""

    def __init__(self, start: int, step: int) -> None:
        self._ticks = itertools.count(start, step)

    def perf_counter_ns(self) -> int:
        return next(self._ticks)


def stamped_stream(monkeypatch: pytest.MonkeyPatch, clock: FakeClock | None) -> np.ndarray:
    """Funding, then the seeded synthetic flow, stamped in chunks by ``Stamper`` under
    ``clock`` (None: the real one); the same commands and seqs whatever the clock."""
    with monkeypatch.context() as patch:
        if clock is not None:
            patch.setattr(synthetic, "time", clock)
        flow = synthetic.SyntheticFlow([1], accounts=40, seed=11)
        stamper = synthetic.Stamper()
        chunks = [stamper.stamp(flow.funding([0, 1], 10**9))]
        rng = np.random.default_rng(11)
        left = STREAM
        while left:
            n = min(left, int(rng.integers(1, 400)))
            chunks.append(stamper.stamp(flow.next(n)))
            left -= n
    return np.concatenate(chunks)


def run(stream: np.ndarray, batch: int, settle_every: int) -> Engine:
    engine = Engine(EngineConfig(settle_every=settle_every))
    for start in range(0, len(stream), batch):
        engine.process(stream[start : start + batch].copy())
    return engine


def test_the_same_stream_stamped_by_other_clocks_hashes_the_same(monkeypatch):
    real = stamped_stream(monkeypatch, None)
    other = stamped_stream(monkeypatch, FakeClock(start=7 * 10**15, step=977_123))
    unstamped = real.copy()
    unstamped["ts_ingest"] = 0
    assert not np.array_equal(real["ts_ingest"], other["ts_ingest"])
    content = [name for name in real.dtype.names if name != "ts_ingest"]
    assert np.array_equal(real[content], other[content])
    open_windows = 0
    for settle_every in SETTLE_EVERY:
        hashes = set()
        for stream, batch in itertools.product((real, other, unstamped), BATCH_SIZES):
            engine = run(stream, batch, settle_every)
            open_windows += engine.unsettled_events > 0
            hashes.add(engine.state_hash())
        assert len(hashes) == 1, f"settle_every={settle_every}: {len(hashes)} hashes"
    assert open_windows > 0  # some runs end with stamped events waiting in the engine


def test_a_restored_engine_continued_under_another_clock_ends_like_the_uninterrupted_run(
    monkeypatch,
):
    real = stamped_stream(monkeypatch, None)
    other = stamped_stream(monkeypatch, FakeClock(start=1, step=3))
    expected = run(real, 300, 64).state_hash()
    cut = 1200 + 17  # inside a settlement window: stamped events wait in the engine
    engine = run(real[:cut], 300, 64)
    assert engine.unsettled_events > 0
    snap = engine.snapshot()
    twin = Engine.restore(snap)
    assert twin.snapshot() == snap  # stamps and all: the restored buffers are the same bytes
    twin.process(other[cut:].copy())
    assert twin.state_hash() == expected


def test_stamps_do_not_reach_the_matching_or_risk_hash_either(monkeypatch):
    real = stamped_stream(monkeypatch, None)
    other = stamped_stream(monkeypatch, FakeClock(start=5, step=5))
    a, b = run(real, 300, 64), run(other, 300, 64)
    assert a.matching.state_hash() == b.matching.state_hash()
    assert a.risk.state_hash() == b.risk.state_hash()
    assert a.throttle.state_hash() == b.throttle.state_hash()  # throttling off


UNTHROTTLED = msgspec.structs.replace(PROPERTY_CONFIG, throttle=ThrottleConfig())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=batches_strategy,
    stamps=st.lists(st.integers(0, 2**63 - 1), min_size=1),
    cuts=st.lists(st.integers(0, 200)),
    settle_every=st.sampled_from([1, 2, 3, 7, 1024]),
)
def test_random_stamps_never_change_the_events_content_or_the_hash(
    batches, stamps, cuts, settle_every
):
    config = msgspec.structs.replace(UNTHROTTLED, settle_every=settle_every)
    stream = np.concatenate(build(batches))
    reference = Engine(config)
    expected = reference.process(stream.copy()).copy()
    restamped = stream.copy()
    restamped["ts_ingest"] = np.resize(np.asarray(stamps, dtype=np.int64), len(stream))
    engine = Engine(config)
    edges = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    got = np.concatenate(
        [engine.process(restamped[a:b].copy()).copy() for a, b in itertools.pairwise(edges)]
    )
    content = [name for name in expected.dtype.names if name not in ("ts_ingest", "dt_match")]
    assert np.array_equal(got[content], expected[content])
    assert engine.state_hash() == reference.state_hash()
