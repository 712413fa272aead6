"""Recovery: newest valid snapshot + journal replay gives the uninterrupted run's state hash."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from stages.persistence.journal_errors import TornTailWarning
from stages.persistence.journal_segments import list_segments, prune_segments
from stages.persistence.journal_writer import JournalWriter
from stages.persistence.recovery import (
    RecoveryError,
    Replayable,
    Snapshotter,
    recover,
    replay_journal,
)
from stages.persistence.snapshots import (
    HEADER_SIZE,
    SnapshotCorruptWarning,
    SnapshotStore,
    snapshot_name,
    write_initial_state,
)
from stages.records import COMMAND_DTYPE, CommandType, EventType
from tests.builders import Counter, commands

SIZES = [5, 17, 1, 64, 30, 3, 100, 9]


def run_and_journal(
    journal_dir: Path,
    snapshot_dir: Path | None,
    machine: Replayable,
    sizes: list[int],
    *,
    every: int = 50,
    stream=commands,
    segment_bytes: int = 4096,
    crash: bool = False,
) -> str:
    """The uninterrupted run: journal each batch, process it, snapshot every ``every``. With
    ``crash`` the writer stops as a crash leaves it (no clean close, no final durable mark)."""
    snapshotter = Snapshotter(SnapshotStore(snapshot_dir, keep=3), every) if snapshot_dir else None
    seq = 1
    writer = JournalWriter(journal_dir, COMMAND_DTYPE, segment_bytes=segment_bytes)
    try:
        for n in sizes:
            batch = stream(seq, n)
            writer.append(batch)
            machine.process(batch)
            seq += n
            if snapshotter is not None:
                snapshotter.after_batch(machine, seq - 1)
    finally:
        writer.close_quietly() if crash else writer.close()
    return machine.state_hash()


def test_counter_restored_from_its_snapshot_continues_like_the_original() -> None:
    original = Counter()
    original.process(commands(1, 10))
    restored = Counter.restore(original.snapshot())
    assert restored.state_hash() == original.state_hash()
    for machine in (original, restored):
        machine.process(commands(11, 5))
    assert restored.state_hash() == original.state_hash()
    assert original.state_hash().startswith("15:15:")
    with pytest.raises(AssertionError, match="seq 12, 11 expected"):
        Counter.restore(Counter(10, 10, 0).snapshot()).process(commands(12, 1))


def test_replay_without_snapshots(tmp_path: Path) -> None:
    expected = run_and_journal(tmp_path / "j", None, Counter(), SIZES)
    state, last = recover(tmp_path / "j", None, Counter)
    assert state.state_hash() == expected
    assert last == sum(SIZES)


def test_replay_from_the_newest_snapshot(tmp_path: Path) -> None:
    expected = run_and_journal(tmp_path / "j", tmp_path / "s", Counter(), SIZES)
    store = SnapshotStore(tmp_path / "s")
    newest = store.latest()
    assert newest is not None and 0 < newest.seq < sum(SIZES)
    result = replay_journal(tmp_path / "j", tmp_path / "s", Counter)
    assert result.state_hash == expected
    assert result.snapshot_seq == newest.seq
    assert result.replayed == sum(SIZES) - newest.seq
    assert result.last_seq == sum(SIZES)


def test_corrupt_newest_snapshot_uses_the_previous_one(tmp_path: Path) -> None:
    expected = run_and_journal(tmp_path / "j", tmp_path / "s", Counter(), SIZES, every=20)
    paths = SnapshotStore(tmp_path / "s").paths()
    assert len(paths) >= 2
    data = bytearray(paths[-1].read_bytes())
    data[HEADER_SIZE] ^= 1
    paths[-1].write_bytes(bytes(data))
    with pytest.warns(SnapshotCorruptWarning, match=str(paths[-1])):
        result = replay_journal(tmp_path / "j", tmp_path / "s", Counter)
    assert result.state_hash == expected
    assert result.snapshot_path == paths[-2]


def test_torn_tail_is_cut_and_writing_resumes(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    run_and_journal(journal, tmp_path / "s", Counter(), SIZES, segment_bytes=1 << 20, crash=True)
    last_segment = list_segments(journal)[-1]
    os.truncate(last_segment, last_segment.stat().st_size - 5)  # the last batch (9) is torn
    with pytest.warns(TornTailWarning, match=f"{last_segment} at offset"):
        state, last = recover(journal, tmp_path / "s", Counter)
    assert last == sum(SIZES) - 9
    with JournalWriter(journal, COMMAND_DTYPE) as writer:
        assert writer.next_seq == last + 1
        batch = commands(last + 1, 9)
        writer.append(batch)
        state.process(batch)
    uninterrupted = Counter()
    uninterrupted.process(commands(1, sum(SIZES)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again, _ = recover(journal, tmp_path / "s", Counter)
    assert again.state_hash() == state.state_hash() == uninterrupted.state_hash()


def test_recovery_after_pruning_the_segments_a_snapshot_covers(tmp_path: Path) -> None:
    expected = run_and_journal(tmp_path / "j", tmp_path / "s", Counter(), SIZES, every=40)
    oldest_kept = SnapshotStore(tmp_path / "s").paths()[0]
    removed = prune_segments(tmp_path / "j", int(oldest_kept.name[9:29]))
    assert removed  # the test means something only if the journal now starts later
    result = replay_journal(tmp_path / "j", tmp_path / "s", Counter)
    assert result.state_hash == expected


def test_replay_up_to_a_seq(tmp_path: Path) -> None:
    run_and_journal(tmp_path / "j", tmp_path / "s", Counter(), SIZES, every=10)
    result = replay_journal(tmp_path / "j", tmp_path / "s", Counter, to_seq=100)
    partial = Counter()
    partial.process(commands(1, 100))
    assert result.state_hash == partial.state_hash()
    assert result.last_seq == 100


def test_journal_gap_after_the_snapshot_is_refused(tmp_path: Path) -> None:
    with JournalWriter(tmp_path / "j", COMMAND_DTYPE, first_seq=50) as writer:
        writer.append(commands(50, 10))
    (tmp_path / "s").mkdir()
    with pytest.raises(RecoveryError, match="starts at seq 50 and no valid snapshot"):
        recover(tmp_path / "j", tmp_path / "s", Counter)
    SnapshotStore(tmp_path / "s").save(40, Counter(40, 40, 0).snapshot())
    with pytest.raises(RecoveryError, match=r"seqs 41\.\.49 are missing"):
        recover(tmp_path / "j", tmp_path / "s", Counter)
    SnapshotStore(tmp_path / "s").save(49, Counter(49, 49, 0).snapshot())
    state, last = recover(tmp_path / "j", tmp_path / "s", Counter)
    assert (state.count, last) == (59, 59)


def test_snapshot_ahead_of_the_journal_is_refused(tmp_path: Path) -> None:
    with JournalWriter(tmp_path / "j", COMMAND_DTYPE) as writer:
        writer.append(commands(1, 10))
    SnapshotStore(tmp_path / "s").save(20, Counter(20, 20, 0).snapshot())
    with pytest.raises(RecoveryError, match=r"covers up to seq 20 but journal .* ends at seq 10"):
        recover(tmp_path / "j", tmp_path / "s", Counter)


def test_empty_journal_recovers_an_empty_state(tmp_path: Path) -> None:
    JournalWriter(tmp_path / "j", COMMAND_DTYPE).close()
    state, last = recover(tmp_path / "j", None, Counter)
    assert (state.count, last) == (0, 0)


def test_snapshotter_cadence(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=10)
    snapshotter = Snapshotter(store, every_records=100)
    machine = Counter()
    taken = []
    for first in range(1, 1000, 30):
        machine.process(commands(first, 30))
        if snapshotter.after_batch(machine, first + 29) is not None:
            taken.append(first + 29)
    assert taken == [120, 240, 360, 480, 600, 720, 840, 960]
    assert [s for s in taken if s] == [int(p.name[9:29]) for p in store.paths()][-len(taken) :]


# --------------------------------------------------------------------------------------------
# the real matching engine


def matching_stream(first_seq: int, n: int) -> np.ndarray:
    """Crossing limit orders on three symbols, with cancels of earlier orders mixed in."""
    batch = commands(first_seq, n)
    cancel = batch["seq"] % 7 == 0
    batch["kind"][cancel] = CommandType.CANCEL
    batch["order_id"][cancel] = np.maximum(batch["order_id"][cancel] - 30, 1)
    batch["account"][cancel] = ((batch["order_id"][cancel] - 1) // 3 % 5).astype(np.uint32)
    return batch


def test_matching_engine_recovers_to_the_same_state_hash(tmp_path: Path) -> None:
    engine_mod = pytest.importorskip("stages.matching.engine")
    from stages.matching.symbols import SymbolSpec

    def factory():
        return engine_mod.MatchingEngine([SymbolSpec(symbol=s) for s in range(3)])

    sizes = [50, 200, 7, 300, 1, 120, 400, 33]
    uninterrupted = factory()
    expected = run_and_journal(
        tmp_path / "j", tmp_path / "s", uninterrupted, sizes, every=300, stream=matching_stream
    )
    assert uninterrupted.open_orders() > 0
    result = replay_journal(tmp_path / "j", tmp_path / "s", factory)
    assert result.snapshot_seq is not None and result.replayed > 0
    assert result.state_hash == expected
    from_scratch = replay_journal(tmp_path / "j", None, factory)
    assert from_scratch.state_hash == expected
    assert from_scratch.replayed == sum(sizes)


# --------------------------------------------------------------------------------------------
# the whole in-process chain (ingest checks, risk, matching, settlement)


def engine_batches(count: int, seed: int = 5) -> list[np.ndarray]:
    """Funding, then synthetic flow cut into batches of varied sizes, sequenced from 1."""
    synthetic = pytest.importorskip("stages.ingest.synthetic")
    flow = synthetic.SyntheticFlow([1], accounts=40, seed=seed)
    stamper = synthetic.Stamper()
    rng = np.random.default_rng(seed)
    batches = [stamper.stamp(flow.funding([0, 1], 10**9))]
    for _ in range(count):
        batches.append(stamper.stamp(flow.next(int(rng.integers(1, 300)))))
    return batches


def test_engine_recovers_to_the_uninterrupted_state_hash(tmp_path: Path) -> None:
    engine_mod = pytest.importorskip("stages.engine")
    batches = engine_batches(60)
    crash_after = 37

    uninterrupted = engine_mod.Engine()
    trades = 0
    for batch in batches:
        trades += int((uninterrupted.process(batch.copy())["kind"] == EventType.TRADE).sum())
    expected = uninterrupted.state_hash()
    assert trades > 0 and uninterrupted.matching.open_orders() > 0  # a state worth comparing

    # the run that "crashes": journal first (write-ahead), then process, snapshot now and then
    journal, snapshots = tmp_path / "journal", tmp_path / "snapshots"
    engine = engine_mod.Engine()
    snapshotter = Snapshotter(SnapshotStore(snapshots, keep=2), every_records=1500)
    with JournalWriter(journal, COMMAND_DTYPE, segment_bytes=64 * 1024) as writer:
        for batch in batches[:crash_after]:
            writer.append(batch)
            engine.process(batch.copy())
            snapshotter.after_batch(engine, writer.written_seq)
    hash_at_crash = engine.state_hash()
    del engine

    recovered, last_seq = recover(journal, snapshots, engine_mod.Engine)
    assert SnapshotStore(snapshots).latest() is not None  # it did start from a snapshot
    assert last_seq == int(batches[crash_after - 1]["seq"][-1])
    assert recovered.state_hash() == hash_at_crash

    # ... and carries on: the same future as the run that never stopped
    with JournalWriter(journal, COMMAND_DTYPE, segment_bytes=64 * 1024) as writer:
        assert writer.next_seq == last_seq + 1
        for batch in batches[crash_after:]:
            writer.append(batch)
            recovered.process(batch.copy())
    assert recovered.state_hash() == expected
    from_scratch = replay_journal(journal, None, engine_mod.Engine)
    assert from_scratch.state_hash == expected


# --------------------------------------------------------------------------------------------
# where replay starts when the caller does not know the configuration (factory=None)


def _journal_with_snapshots(tmp_path: Path, *, keep: int = 3) -> str:
    """A run as ``tradepipe run`` makes it: initial state beside the journal and as snapshot 0."""
    machine = Counter()
    (tmp_path / "j").mkdir()
    write_initial_state(tmp_path / "j", machine.snapshot())
    store = SnapshotStore(tmp_path / "s", keep=keep)
    store.save(0, machine.snapshot())
    snapshotter = Snapshotter(store, 50)
    seq = 1
    with JournalWriter(tmp_path / "j", COMMAND_DTYPE, segment_bytes=4096) as writer:
        for n in SIZES * 3:
            batch = commands(seq, n)
            writer.append(batch)
            machine.process(batch)
            seq += n
            snapshotter.after_batch(machine, seq - 1)
    return machine.state_hash()


def test_without_a_factory_replay_starts_from_a_snapshot_or_the_stored_initial_state(
    tmp_path: Path,
) -> None:
    expected = _journal_with_snapshots(tmp_path, keep=1)
    assert SnapshotStore(tmp_path / "s").paths()[0].name == snapshot_name(0)  # never pruned
    newest = replay_journal(tmp_path / "j", tmp_path / "s", None, restore=Counter.restore)
    assert newest.state_hash == expected and newest.snapshot_seq > 0
    # before the first periodic snapshot: seq 0 was never pruned
    early = replay_journal(tmp_path / "j", tmp_path / "s", None, restore=Counter.restore, to_seq=3)
    assert (early.snapshot_seq, early.last_seq) == (0, 3)
    # no snapshot directory at all: the initial state kept beside the journal
    whole = replay_journal(tmp_path / "j", None, None, restore=Counter.restore)
    assert whole.state_hash == expected and whole.snapshot_seq == 0
    assert whole.snapshot_path == tmp_path / "j" / "initial-state.tps"


@pytest.mark.parametrize("damage", ["pruned", "corrupt", "no snapshot dir"])
def test_without_a_factory_an_unknown_configuration_is_refused(tmp_path: Path, damage: str) -> None:
    _journal_with_snapshots(tmp_path)
    (tmp_path / "j" / "initial-state.tps").unlink()  # a journal from before it was kept
    paths = SnapshotStore(tmp_path / "s").paths()
    snapshot_dir: Path | None = tmp_path / "s"
    if damage == "pruned":
        paths[0].unlink()  # seq 0 gone (as keep= pruned it before it was protected)
        to_seq = 3  # before the first snapshot that is left
    elif damage == "corrupt":
        for path in paths:
            path.write_bytes(path.read_bytes()[:-1])
        to_seq = None
    else:
        snapshot_dir, to_seq = None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SnapshotCorruptWarning)
        with pytest.raises(
            RecoveryError, match=r"cannot tell which engine configuration.*--config"
        ):
            replay_journal(
                tmp_path / "j", snapshot_dir, None, restore=Counter.restore, to_seq=to_seq
            )
    # with the configuration given (a factory), it replays from the initial state
    result = replay_journal(tmp_path / "j", None, Counter, to_seq=to_seq)
    assert result.snapshot_seq is None


def test_a_missing_snapshot_directory_is_an_error(tmp_path: Path) -> None:
    run_and_journal(tmp_path / "j", None, Counter(), SIZES)
    with pytest.raises(RecoveryError, match=r"snapshot directory .*nope does not exist"):
        replay_journal(tmp_path / "j", tmp_path / "nope", Counter)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RecoveryError, match="is not a directory"):
        replay_journal(tmp_path / "j", tmp_path / "afile", Counter)


def test_replay_to_a_negative_seq_is_refused(tmp_path: Path) -> None:
    run_and_journal(tmp_path / "j", None, Counter(), SIZES)
    with pytest.raises(RecoveryError, match="seq -5 is impossible"):
        replay_journal(tmp_path / "j", None, Counter, to_seq=-5)
