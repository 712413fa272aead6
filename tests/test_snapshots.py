"""Snapshot store: atomic checksummed saves, newest valid one wins, pruning to keep-N."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from stages.persistence.snapshots import (
    HEADER_SIZE,
    SnapshotCorruptWarning,
    SnapshotError,
    SnapshotStore,
    decode_snapshot,
    encode_snapshot,
    snapshot_name,
)


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


def test_a_save_cut_off_by_a_crash_leaves_no_snapshot(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save(5, b"good")
    (tmp_path / f".{snapshot_name(9)}.1234.tmp").write_bytes(b"half of a snapsh")
    reopened = SnapshotStore(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        latest = reopened.latest()
    assert latest is not None and latest.seq == 5


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
