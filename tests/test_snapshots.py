"""Snapshot store: atomic checksummed saves, newest valid one wins, pruning to keep-N,
a reader that never deletes, and a full disk that costs a snapshot, not the run."""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path

import pytest

from stages.persistence.recovery import Snapshotter
from stages.persistence.snapshots import (
    HEADER_SIZE,
    SnapshotCorruptWarning,
    SnapshotError,
    SnapshotFailedWarning,
    SnapshotStore,
    SnapshotWriteError,
    decode_snapshot,
    encode_snapshot,
    read_initial_state,
    snapshot_name,
    write_initial_state,
)
from tests.builders import Counter, commands


def test_save_and_latest(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=5)
    assert store.latest() is None
    store.save(10, b"ten")
    store.save(30, b"thirty")
    store.save(20, b"twenty")
    latest = store.latest()
    assert latest is not None
    assert (latest.seq, latest.payload) == (30, b"thirty")
    assert latest.path.name == snapshot_name(30)
    older = store.latest(max_seq=25)
    assert older is not None and (older.seq, older.payload) == (20, b"twenty")


def test_keep_prunes_the_oldest(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    for seq in range(1, 6):
        store.save(seq * 100, bytes([seq]) * seq)
    assert [p.name for p in store.paths()] == [snapshot_name(400), snapshot_name(500)]


def test_corrupt_newest_falls_back_to_the_previous_valid_one(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=3)
    store.save(1, b"a" * 100)
    store.save(2, b"b" * 100)
    newest = store.save(3, b"c" * 100)
    data = bytearray(newest.read_bytes())
    data[HEADER_SIZE + 50] ^= 4
    newest.write_bytes(bytes(data))
    with pytest.warns(SnapshotCorruptWarning, match=f"{newest}.*payload checksum mismatch"):
        latest = store.latest()
    assert latest is not None and (latest.seq, latest.payload) == (2, b"b" * 100)


@pytest.mark.parametrize("cut", [0, 10, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 99])
def test_truncated_snapshot_is_refused(tmp_path: Path, cut: int) -> None:
    path = tmp_path / snapshot_name(7)
    data = encode_snapshot(7, b"x" * 100)
    with pytest.raises(SnapshotError, match=str(path)):
        decode_snapshot(path, data[:cut])


def test_every_single_bit_flip_is_detected(tmp_path: Path) -> None:
    path = tmp_path / snapshot_name(42)
    data = encode_snapshot(42, bytes(range(256)) * 2)
    assert decode_snapshot(path, data).payload == bytes(range(256)) * 2
    for offset in range(len(data)):
        for bit in (0, 3, 7):
            flipped = bytearray(data)
            flipped[offset] ^= 1 << bit
            with pytest.raises(SnapshotError):
                decode_snapshot(path, bytes(flipped))


def _own_start_time() -> int:
    stat = Path(f"/proc/{os.getpid()}/stat").read_bytes()
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def test_a_save_cut_off_by_a_crash_leaves_no_snapshot(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save(5, b"good")
    (tmp_path / f".{snapshot_name(9)}.{os.getpid()}-1.tmp").write_bytes(b"half of a snapsh")
    reopened = SnapshotStore(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        latest = reopened.latest()
    assert latest is not None and latest.seq == 5


def test_opening_and_reading_a_store_changes_nothing(tmp_path: Path) -> None:
    # a reader (tradepipe replay) beside a live run: the writer's temp file must survive
    store = SnapshotStore(tmp_path)
    store.save(5, b"good")
    live = tmp_path / f".{snapshot_name(9)}.{os.getpid()}-{_own_start_time()}.tmp"
    live.write_bytes(b"being written")
    before = sorted(tmp_path.iterdir())
    reader = SnapshotStore(tmp_path)
    assert reader.latest() is not None and reader.paths() == [tmp_path / snapshot_name(5)]
    assert sorted(tmp_path.iterdir()) == before
    missing = tmp_path / "not-there"
    assert SnapshotStore(missing).latest() is None
    assert not missing.exists()


def test_a_save_removes_only_the_temp_files_of_dead_writers(tmp_path: Path) -> None:
    dead = tmp_path / f".{snapshot_name(7)}.{os.getpid()}-1.tmp"  # same pid, other start
    alive = tmp_path / f".{snapshot_name(8)}.{os.getpid()}-{_own_start_time()}.tmp"
    unknown = tmp_path / f".{snapshot_name(9)}.{os.getpid()}.tmp"  # old name: cannot prove
    for path in (dead, alive, unknown):
        path.write_bytes(b"partial")
    SnapshotStore(tmp_path).save(10, b"state")
    assert not dead.exists()
    assert alive.exists() and unknown.exists()


def test_pruning_keeps_the_initial_state(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    for seq in (0, 100, 200, 300):
        store.save(seq, bytes([seq % 256]))
    assert [p.name for p in store.paths()] == [
        snapshot_name(0),
        snapshot_name(200),
        snapshot_name(300),
    ]


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def write(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)


def test_a_save_on_a_full_disk_removes_its_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SnapshotStore(tmp_path)
    store.save(1, b"one")
    _full_disk(monkeypatch)
    with pytest.raises(
        SnapshotWriteError, match=r"snapshot .*snapshot-0+2\.tps.*free space"
    ) as info:
        store.save(2, b"two")
    assert info.value.disk_full
    assert sorted(p.name for p in tmp_path.iterdir()) == [snapshot_name(1)]


def test_a_full_disk_while_snapshotting_does_not_stop_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshotter = Snapshotter(SnapshotStore(tmp_path), every_records=10)
    machine = Counter()
    machine.process(commands(1, 10))
    _full_disk(monkeypatch)
    with pytest.warns(SnapshotFailedWarning, match="not saved, the run goes on") as caught:
        assert snapshotter.after_batch(machine, 10) is None
    assert len(caught) == 1 and len(snapshotter.failures) == 1
    assert snapshotter.after_batch(machine, 15) is None  # not retried at every batch
    monkeypatch.undo()
    machine.process(commands(11, 10))
    assert snapshotter.after_batch(machine, 20) == tmp_path / snapshot_name(20)
    assert sorted(p.name for p in tmp_path.iterdir()) == [snapshot_name(20)]


def test_snapshot_directory_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "snaps"
    afile.write_text("x")
    with pytest.raises(SnapshotWriteError, match=r"snaps is a file, not a directory"):
        SnapshotStore(afile).save(1, b"x")
    with pytest.raises(SnapshotError, match="snaps"):
        SnapshotStore(afile).latest()


def test_initial_state_kept_beside_the_journal(tmp_path: Path) -> None:
    assert read_initial_state(tmp_path) is None
    path = write_initial_state(tmp_path, b"config and empty books")
    assert path.name == "initial-state.tps"
    assert write_initial_state(tmp_path, b"another") == path  # written once
    state = read_initial_state(tmp_path)
    assert state is not None and (state.seq, state.payload) == (0, b"config and empty books")
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(SnapshotError, match=r"initial-state\.tps"):
        read_initial_state(tmp_path)


def test_save_is_durable_and_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))  # Linux: what the fd points at
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    path = SnapshotStore(tmp_path).save(3, b"state")
    assert path.exists()
    assert synced[0].endswith(".tmp")  # the file is synced under its temporary name ...
    assert synced[1] == str(tmp_path)  # ... and the directory after the rename


def test_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep=0 must be >= 1"):
        SnapshotStore(tmp_path, keep=0)
    with pytest.raises(ValueError, match="seq=-1"):
        SnapshotStore(tmp_path).save(-1, b"")
