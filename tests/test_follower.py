"""The snapshot replica: following a journal in bounded steps up to a durable seq gives the
state an uninterrupted Engine has, never reads past the durable seq, and its snapshots are
ones a replay starts from to the same state."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.engine import Engine
from stages.ingest.synthetic import Stamper, SyntheticFlow
from stages.persistence.follower import JournalFollower
from stages.persistence.journal_writer import JournalWriter
from stages.persistence.recovery import Snapshotter, replay_journal
from stages.persistence.snapshots import SnapshotStore
from stages.records import COMMAND_DTYPE


def _batches(count: int, seed: int = 3) -> list[np.ndarray]:
    flow = SyntheticFlow([1], accounts=30, seed=seed)
    stamper = Stamper()
    rng = np.random.default_rng(seed)
    batches = [stamper.stamp(flow.funding([0, 1], 10**9))]
    for _ in range(count):
        batches.append(stamper.stamp(flow.next(int(rng.integers(1, 400)))))
    return batches


def _journal(tmp_path: Path, batches: list[np.ndarray]) -> Path:
    journal = tmp_path / "journal"
    with JournalWriter(journal, COMMAND_DTYPE, segment_bytes=64 * 1024) as writer:
        for batch in batches:
            writer.append(batch)
    return journal


def test_following_in_small_steps_reaches_the_engines_state_and_snapshots_on_schedule(tmp_path):
    batches = _batches(80)
    journal = _journal(tmp_path, batches)
    last = int(batches[-1]["seq"][-1])
    reference = Engine()
    for batch in batches:
        reference.process(batch.copy())

    store = SnapshotStore(tmp_path / "snapshots", keep=100)
    follower = JournalFollower(journal, Engine(), Snapshotter(store, every_records=2000))
    durable = 0
    while follower.applied < last:
        durable = min(last, durable + 777)  # the durable seq moves on in uneven steps
        follower.advance(durable, budget=500)
        assert follower.applied <= durable  # never past what is durable
    assert follower.engine.state_hash() == reference.state_hash()
    assert len(follower.snapshots) == len(store.paths())
    seqs = [int(path.stem.split("-")[1]) for path in follower.snapshots]
    assert seqs == list(range(2000, last + 1, 2000))  # each at the seq it fell due at
    for path in follower.snapshots:  # each one a start a replay arrives from at the same end
        seq = int(path.stem.split("-")[1])
        replayed = replay_journal(journal, store.directory, Engine, snapshot_max_seq=seq)
        assert replayed.snapshot_seq == seq
        assert replayed.state_hash == reference.state_hash()


def test_snapshot_now_catches_up_to_the_durable_seq_first(tmp_path):
    batches = _batches(20)
    journal = _journal(tmp_path, batches)
    store = SnapshotStore(tmp_path / "snapshots")
    follower = JournalFollower(journal, Engine(), Snapshotter(store, every_records=10**9))
    durable = int(batches[12]["seq"][-1])
    seq, path = follower.snapshot_now(durable)
    assert seq == durable == follower.applied
    partial = Engine()
    for batch in batches[:13]:
        partial.process(batch.copy())
    restored = Engine.restore(store.load(path).payload)
    assert restored.state_hash() == partial.state_hash()


def test_nothing_durable_yet_applies_nothing(tmp_path):
    journal = _journal(tmp_path, _batches(3))
    follower = JournalFollower(journal, Engine(), Snapshotter(SnapshotStore(tmp_path), 10))
    assert follower.advance(0) == 0 and follower.applied == 0


def test_a_step_is_one_engine_pass_per_snapshot_period_it_touches(tmp_path):
    """Not one pass per journal block: each pass costs kernel dispatches, and per block
    they were most of the replica's time."""
    batches = _batches(60)
    journal = _journal(tmp_path, batches)
    last = int(batches[-1]["seq"][-1])
    engine = Engine()
    passes: list[int] = []
    process = engine.process

    def counted(commands: np.ndarray) -> np.ndarray:
        passes.append(len(commands))
        return process(commands)

    engine.process = counted  # type: ignore[method-assign]
    store = SnapshotStore(tmp_path / "snapshots", keep=100)
    every = last // 2
    follower = JournalFollower(journal, engine, Snapshotter(store, every_records=every))
    assert follower.advance(last, budget=last) == last
    periods = last // every + (1 if last % every else 0)  # up to each snapshot seq, the rest
    assert len(batches) > 50 and len(passes) == periods
    assert sum(passes) == last
    reference = Engine()
    for batch in batches:
        reference.process(batch.copy())
    assert engine.state_hash() == reference.state_hash()
