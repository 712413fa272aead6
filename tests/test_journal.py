"""Journal: round trips, rotation, contiguity, layouts, fsync policies, torn tails, ENOSPC."""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from stages.persistence import journal_writer
from stages.persistence.journal_durability import FsyncPolicy
from stages.persistence.journal_errors import (
    JournalCorruptError,
    JournalError,
    JournalFullError,
    JournalLayoutError,
    TornTailWarning,
)
from stages.persistence.journal_reader import JournalReader
from stages.persistence.journal_segments import BLOCK_HEADER, list_segments, prune_segments
from stages.persistence.journal_verify import verify_journal
from stages.persistence.journal_writer import JournalWriter
from stages.records import COMMAND_DTYPE, EVENT_DTYPE
from tests.builders import commands

# --------------------------------------------------------------------------------------------
# helpers


def write_journal(
    directory: Path,
    sizes: list[int],
    *,
    segment_bytes: int = 1 << 20,
    crash: bool = False,
    **kwargs: object,
) -> np.ndarray:
    """Write batches of ``sizes`` records from seq 1; return everything written. With
    ``crash`` the writer stops as a crash leaves it: no clean close, no final durable mark
    (a torn tail after a clean close would be a loss of acknowledged records)."""
    seq = 1
    parts = []
    w = JournalWriter(directory, COMMAND_DTYPE, segment_bytes=segment_bytes, **kwargs)
    try:
        for n in sizes:
            batch = commands(seq, n)
            assert w.append(batch) == seq + n - 1
            parts.append(batch)
            seq += n
    finally:
        w.close_quietly() if crash else w.close()
    return np.concatenate(parts) if parts else np.empty(0, COMMAND_DTYPE)


def read_all(directory: Path, **kwargs: object) -> np.ndarray:
    return JournalReader(directory, COMMAND_DTYPE, **kwargs).read()


# --------------------------------------------------------------------------------------------
# round trips


def test_round_trip_across_segments(tmp_path: Path) -> None:
    written = write_journal(tmp_path, [1, 5, 100, 37, 200, 3], segment_bytes=8192)
    segments = list_segments(tmp_path)
    assert len(segments) > 2
    assert segments[0].name == "00000000000000000001.tpj"
    assert np.array_equal(read_all(tmp_path), written)
    report = verify_journal(tmp_path, COMMAND_DTYPE)
    assert (report.first_seq, report.last_seq, report.records) == (1, len(written), len(written))
    assert report.segments == len(segments)
    assert report.torn == []


def test_segment_names_follow_contiguous_first_seqs(tmp_path: Path) -> None:
    write_journal(tmp_path, [50] * 10, segment_bytes=4096)
    reader = JournalReader(tmp_path)
    firsts = [h.first_seq for h in reader.segments]
    assert firsts == sorted(firsts)
    # each segment begins right after the previous one's last record
    ends = [int(b["seq"][-1]) for b in reader.batches()]
    starts = [int(b["seq"][0]) for b in reader.batches()]
    assert starts[1:] == [e + 1 for e in ends[:-1]]
    for first in firsts:
        assert first in starts


def test_reader_without_dtype_uses_the_stored_layout(tmp_path: Path) -> None:
    written = write_journal(tmp_path, [10])
    reader = JournalReader(tmp_path)
    assert reader.dtype == COMMAND_DTYPE
    assert np.array_equal(reader.read(), written)


@pytest.mark.parametrize(("lo", "hi"), [(1, 1), (7, 300), (40, 41), (None, 12), (330, None)])
def test_read_ranges(tmp_path: Path, lo: int | None, hi: int | None) -> None:
    written = write_journal(tmp_path, [13, 29, 1, 100, 200], segment_bytes=6000)
    got = JournalReader(tmp_path, COMMAND_DTYPE).read(lo, hi)
    seqs = written["seq"]
    mask = np.ones(len(written), bool)
    if lo is not None:
        mask &= seqs >= lo
    if hi is not None:
        mask &= seqs <= hi
    assert np.array_equal(got, written[mask])


def test_records_iterates_one_by_one(tmp_path: Path) -> None:
    write_journal(tmp_path, [3, 4])
    seqs = [int(r["seq"]) for r in JournalReader(tmp_path).records(2, 5)]
    assert seqs == [2, 3, 4, 5]


def test_reopen_continues_at_next_seq(tmp_path: Path) -> None:
    write_journal(tmp_path, [10, 10], segment_bytes=2048)
    with JournalWriter(tmp_path, COMMAND_DTYPE, segment_bytes=2048) as w:
        assert w.next_seq == 21
        assert w.durable_seq == 20
        w.append(commands(21, 30))
    assert np.array_equal(read_all(tmp_path), commands(1, 50))


def test_first_seq_of_a_new_journal(tmp_path: Path) -> None:
    with JournalWriter(tmp_path, COMMAND_DTYPE, first_seq=1000) as w:
        w.append(commands(1000, 5))
    assert JournalReader(tmp_path).first_seq == 1000
    assert list_segments(tmp_path)[0].name == "00000000000000001000.tpj"


def test_non_contiguous_column_batch_is_accepted(tmp_path: Path) -> None:
    wide = commands(1, 20)[::2].copy()
    wide["seq"] = np.arange(1, 11)
    strided = np.zeros(20, COMMAND_DTYPE)
    strided[::2] = wide
    view = strided[::2]
    assert not view.flags.c_contiguous
    with JournalWriter(tmp_path, COMMAND_DTYPE) as w:
        w.append(view)
    assert np.array_equal(read_all(tmp_path), wide)


# --------------------------------------------------------------------------------------------
# refusals


@pytest.mark.parametrize(
    ("first", "n", "tamper"), [(2, 5, None), (1, 5, 3), (1, 1, None), (0, 3, None)]
)
def test_non_contiguous_seqs_are_refused(
    tmp_path: Path, first: int, n: int, tamper: int | None
) -> None:
    with JournalWriter(tmp_path, COMMAND_DTYPE) as w:
        w.append(commands(1, 3))
        batch = commands(first if first != 1 else 4, n)
        if tamper is not None:
            batch["seq"][tamper] += 10
        if (first, n) == (1, 1):
            batch = commands(3, 1)  # a repeat of seq 3
        with pytest.raises(ValueError, match="not contiguous from the expected next seq 4"):
            w.append(batch)
        assert w.next_seq == 4
    assert np.array_equal(read_all(tmp_path), commands(1, 3))


def test_other_layout_is_refused_with_what_differs(tmp_path: Path) -> None:
    write_journal(tmp_path, [4])
    with pytest.raises(JournalLayoutError) as info:
        JournalReader(tmp_path, EVENT_DTYPE)
    message = str(info.value)
    assert "another record layout" in message
    assert "ts_risk" in message  # only in the journal
    assert "other_id" in message  # missing from the journal
    with pytest.raises(JournalLayoutError, match="another record layout"):
        JournalWriter(tmp_path, EVENT_DTYPE)


def test_changed_field_type_is_named(tmp_path: Path) -> None:
    write_journal(tmp_path, [4])
    changed = np.dtype(
        [(n, "<f8" if n == "price" else COMMAND_DTYPE.fields[n][0]) for n in COMMAND_DTYPE.names]
    )
    with pytest.raises(JournalLayoutError, match=r"field 'price' is .*<i8.* in the journal"):
        JournalReader(tmp_path, changed)


def test_dtype_without_seq_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JournalLayoutError, match="no 'seq' field"):
        JournalWriter(tmp_path, np.dtype([("x", "<i8")]))


def test_batch_of_another_dtype_is_refused(tmp_path: Path) -> None:
    with JournalWriter(tmp_path, COMMAND_DTYPE) as w, pytest.raises(JournalLayoutError):
        w.append(np.zeros(2, EVENT_DTYPE))


def test_bad_settings_say_what_is_right(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync policy 'sometimes' is unknown; use one of batch"):
        JournalWriter(tmp_path, COMMAND_DTYPE, fsync="sometimes")
    with pytest.raises(ValueError, match="segment_bytes=100 is too small: at least"):
        JournalWriter(tmp_path / "x", COMMAND_DTYPE, segment_bytes=100)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="does not exist"):
        JournalReader(tmp_path / "nope")


# --------------------------------------------------------------------------------------------
# fsync policies and durable_seq


class _SyncCounter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        os.fdatasync(fd)


def test_batch_policy_syncs_every_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _SyncCounter()
    monkeypatch.setattr(journal_writer, "_fdatasync", counter)
    with JournalWriter(tmp_path, COMMAND_DTYPE, fsync="batch") as w:
        before = counter.calls
        for i in range(5):
            w.append(commands(1 + 10 * i, 10))
            assert w.durable_seq == w.synced_seq == 10 * (i + 1)
        assert counter.calls - before == 5


def test_interval_policy_holds_durable_seq_until_a_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = _SyncCounter()
    monkeypatch.setattr(journal_writer, "_fdatasync", counter)
    with JournalWriter(tmp_path, COMMAND_DTYPE, fsync="interval", fsync_interval_ms=1e9) as w:
        before = counter.calls
        w.append(commands(1, 10))
        w.append(commands(11, 10))
        assert w.written_seq == 20
        assert w.durable_seq == 0
        assert w.maybe_sync() == 0  # the interval has not passed
        assert counter.calls == before
        assert w.sync() == 20
        assert counter.calls == before + 1
    with JournalWriter(tmp_path, COMMAND_DTYPE, fsync="interval", fsync_interval_ms=1e-6) as w:
        w.append(commands(21, 1))
        assert w.durable_seq == 21  # any interval has passed by the next check


def test_never_policy_never_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _SyncCounter()
    monkeypatch.setattr(journal_writer, "_fdatasync", counter)
    with JournalWriter(tmp_path, COMMAND_DTYPE, fsync=FsyncPolicy.NEVER, segment_bytes=4096) as w:
        for i in range(10):
            w.append(commands(1 + 20 * i, 20))
        assert w.durable_seq == w.written_seq == 200
        assert w.synced_seq == 0
    assert counter.calls == 0
    assert len(read_all(tmp_path)) == 200


# --------------------------------------------------------------------------------------------
# torn tails and corruption


def _last_block_offset(path: Path) -> int:
    """The file offset of the last block of a segment (walking the block headers)."""
    reader = JournalReader(path.parent)
    header = next(h for h in reader.segments if h.path == path)
    data = path.read_bytes()
    offset = header.header_size
    last = offset
    while offset < len(data):
        last = offset
        (length,) = np.frombuffer(data, "<u4", 1, offset + 4)
        offset += int(length)
    return last


def test_torn_tail_of_every_length_is_truncated_with_a_warning(tmp_path: Path) -> None:
    base = tmp_path / "base"
    written = write_journal(base, [7, 3, 2])
    segment = list_segments(base)[0]
    data = segment.read_bytes()
    cut_from = _last_block_offset(segment)
    assert len(data) - cut_from == BLOCK_HEADER.size + 2 * COMMAND_DTYPE.itemsize
    for keep in range(cut_from + 1, len(data)):
        case = tmp_path / f"cut{keep}"
        case.mkdir()
        (case / segment.name).write_bytes(data[:keep])
        with pytest.warns(TornTailWarning) as record:
            got = read_all(case, repair=True)
        message = str(record[0].message)
        assert str(case / segment.name) in message
        assert f"at offset {cut_from}" in message
        assert np.array_equal(got, written[:10])
        assert (case / segment.name).stat().st_size == cut_from
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert np.array_equal(read_all(case), written[:10])  # repaired: no more warning


def test_torn_tail_is_reported_but_kept_without_repair(tmp_path: Path) -> None:
    write_journal(tmp_path, [5, 5])
    segment = list_segments(tmp_path)[0]
    size = segment.stat().st_size
    os.truncate(segment, size - 10)
    with pytest.warns(TornTailWarning, match="would be truncated"):
        report = verify_journal(tmp_path)
    assert report.last_seq == 5
    assert len(report.torn) == 1
    assert segment.stat().st_size == size - 10


def test_writer_reopen_truncates_a_torn_tail_and_continues(tmp_path: Path) -> None:
    write_journal(tmp_path, [5, 5], crash=True)
    segment = list_segments(tmp_path)[0]
    os.truncate(segment, segment.stat().st_size - 1)
    with pytest.warns(TornTailWarning, match="at offset"):
        w = JournalWriter(tmp_path, COMMAND_DTYPE)
    with w:
        assert w.next_seq == 6
        assert len(w.repairs) == 1
        w.append(commands(6, 4))
    assert np.array_equal(read_all(tmp_path), commands(1, 9))


def test_zero_filled_tail_is_torn(tmp_path: Path) -> None:
    written = write_journal(tmp_path, [5, 5])
    segment = list_segments(tmp_path)[0]
    with open(segment, "ab") as f:
        f.write(bytes(4096 + 17))  # pages the file grew by but whose data never reached disk
    with pytest.warns(TornTailWarning, match="zero-filled"):
        assert np.array_equal(read_all(tmp_path, repair=True), written)


def test_zeroed_last_block_is_torn(tmp_path: Path) -> None:
    written = write_journal(tmp_path, [5, 5])
    segment = list_segments(tmp_path)[0]
    data = bytearray(segment.read_bytes())
    cut = _last_block_offset(segment)
    data[cut + BLOCK_HEADER.size :] = bytes(len(data) - cut - BLOCK_HEADER.size)
    segment.write_bytes(bytes(data))
    with pytest.warns(TornTailWarning, match="records checksum mismatch"):
        assert np.array_equal(read_all(tmp_path, repair=True), written[:5])


def test_garbage_after_the_last_block_is_a_torn_tail(tmp_path: Path) -> None:
    # a page of the last, unacknowledged append that held other bytes than it was given:
    # no valid block follows, so it is torn (tests/test_journal_torn.py has the other shapes)
    written = write_journal(tmp_path, [5, 5])
    segment = list_segments(tmp_path)[0]
    size = segment.stat().st_size
    with open(segment, "ab") as f:
        f.write(b"\x01" * 100)
    with pytest.warns(TornTailWarning, match=f"offset {size} \\(from seq 11\\)"):
        assert np.array_equal(read_all(tmp_path), written)


def test_corruption_before_the_tail_names_file_offset_and_seq(tmp_path: Path) -> None:
    write_journal(tmp_path, [5, 5, 5])
    segment = list_segments(tmp_path)[0]
    data = bytearray(segment.read_bytes())
    header_size = JournalReader(tmp_path).segments[0].header_size
    second = header_size + BLOCK_HEADER.size + 5 * 64
    data[second + BLOCK_HEADER.size + 70] ^= 0x10  # a bit of seq 7's record
    segment.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError) as info:
        read_all(tmp_path, repair=True)
    error = info.value
    assert (error.path, error.offset, error.seq) == (segment, second, 6)
    assert str(segment) in str(error) and f"offset {second}" in str(error)
    assert "seq 6" in str(error)
    assert segment.read_bytes() == bytes(data)  # never "repaired" away
    with pytest.raises(JournalCorruptError):
        JournalWriter(tmp_path, COMMAND_DTYPE)


def test_corrupt_earlier_segment_stops_the_reader(tmp_path: Path) -> None:
    write_journal(tmp_path, [40] * 5, segment_bytes=4096)
    first = list_segments(tmp_path)[0]
    data = bytearray(first.read_bytes())
    data[-1] ^= 1  # last block of a segment that is not the last one: not a tail
    first.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match="records checksum mismatch"):
        read_all(tmp_path)


def test_missing_middle_segment_is_a_gap(tmp_path: Path) -> None:
    write_journal(tmp_path, [40] * 5, segment_bytes=4096)
    segments = list_segments(tmp_path)
    assert len(segments) >= 3
    segments[1].unlink()
    with pytest.raises(JournalCorruptError, match="previous segment ends before seq"):
        read_all(tmp_path)


def test_segment_torn_at_creation_is_dropped(tmp_path: Path) -> None:
    written = write_journal(tmp_path, [10])
    (tmp_path / "00000000000000000011.tpj").write_bytes(b"TPJ")
    with pytest.warns(TornTailWarning, match="creation was cut off"):
        w = JournalWriter(tmp_path, COMMAND_DTYPE)
    with w:
        assert w.next_seq == 11
        w.append(commands(11, 2))
    assert np.array_equal(read_all(tmp_path), commands(1, 12))
    assert np.array_equal(written, commands(1, 10))


# --------------------------------------------------------------------------------------------
# a full disk (injected ENOSPC)


class _FullDiskAfter:
    """A writev that accepts ``budget`` bytes, writes part of the next block, then ENOSPC."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def __call__(self, fd: int, buffers: list) -> int:
        total = sum(memoryview(b).nbytes for b in buffers)
        if total <= self.budget:
            self.budget -= total
            return os.writev(fd, buffers)
        if self.budget > 0:  # a short write first, as a real filling disk does
            data = b"".join(bytes(memoryview(b).cast("B")) for b in buffers)[: self.budget]
            self.budget = 0
            return os.write(fd, data)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_is_a_clear_error_and_the_journal_stays_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = BLOCK_HEADER.size + 10 * 64
    w = JournalWriter(tmp_path, COMMAND_DTYPE)
    monkeypatch.setattr(journal_writer, "_writev", _FullDiskAfter(3 * block + 100))
    for i in range(3):
        w.append(commands(1 + 10 * i, 10))
    with pytest.raises(JournalFullError) as info:
        w.append(commands(31, 10))
    error = info.value
    assert "disk full (ENOSPC)" in str(error)
    assert "valid up to seq 30" in str(error)
    assert str(list_segments(tmp_path)[0]) in str(error)
    # what an operator can do (the CLI cannot "reopen the journal")
    assert "reopen" not in str(error)
    assert f"free space on its file system; 'tradepipe journal verify {tmp_path}'" in str(error)
    assert (error.valid_seq, error.durable_seq) == (30, 30)
    with pytest.raises(JournalError, match="closed for writing"):
        w.append(commands(31, 1))
    w.close()
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torn tail: the partial block was removed
        assert np.array_equal(read_all(tmp_path), commands(1, 30))
    with JournalWriter(tmp_path, COMMAND_DTYPE) as again:
        assert again.next_seq == 31
        again.append(commands(31, 10))
    assert np.array_equal(read_all(tmp_path), commands(1, 40))


def test_full_disk_at_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = JournalWriter(tmp_path, COMMAND_DTYPE, segment_bytes=2048)
    w.append(commands(1, 20))
    monkeypatch.setattr(journal_writer, "_writev", _FullDiskAfter(0))
    with pytest.raises(JournalFullError, match="creating segment") as info:
        w.append(commands(21, 40))  # does not fit: a new segment is needed first
    assert info.value.valid_seq == 20
    monkeypatch.undo()
    assert not list(tmp_path.glob(".*.tmp"))
    assert np.array_equal(read_all(tmp_path), commands(1, 20))


def test_full_disk_in_a_multi_block_append_removes_the_whole_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = JournalWriter(tmp_path, COMMAND_DTYPE, max_block_bytes=32 + 10 * 64)
    w.append(commands(1, 25))  # three blocks
    monkeypatch.setattr(journal_writer, "_writev", _FullDiskAfter(2 * (32 + 640) + 50))
    with pytest.raises(JournalFullError, match="valid up to seq 25"):
        w.append(commands(26, 30))  # two blocks fit, the third is cut: the append goes
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(read_all(tmp_path), commands(1, 25))


def test_appends_come_back_as_the_batches_written(tmp_path: Path) -> None:
    sizes = [1, 25, 7, 40, 10, 3]
    with JournalWriter(
        tmp_path, COMMAND_DTYPE, segment_bytes=3000, max_block_bytes=32 + 10 * 64
    ) as w:
        seq = 1
        for n in sizes:
            w.append(commands(seq, n))
            seq += n
    reader = JournalReader(tmp_path)
    assert [len(b) for b in reader.batches()] == sizes
    assert len(reader.segments) >= 3
    # an append never spans segments; one larger than a segment has a segment of its own
    ranges = [(int(b["seq"][0]), int(b["seq"][-1])) for b in reader.batches()]
    firsts = [h.first_seq for h in reader.segments]
    assert all(first in {lo for lo, _ in ranges} for first in firsts)
    assert [len(b) for b in reader.batches(from_seq=30, to_seq=40)] == [4, 7]


def test_append_missing_its_final_block_is_torn_from_its_start(tmp_path: Path) -> None:
    with JournalWriter(tmp_path, COMMAND_DTYPE, max_block_bytes=32 + 10 * 64) as w:
        w.append(commands(1, 5))
        w.append(commands(6, 25))  # blocks of 10, 10, 5
    segment = list_segments(tmp_path)[0]
    header_size = JournalReader(tmp_path).segments[0].header_size
    append_start = header_size + 32 + 5 * 64
    os.truncate(segment, segment.stat().st_size - (32 + 5 * 64))  # drop the final block whole
    with pytest.warns(TornTailWarning, match=f"at offset {append_start} .*final block is missing"):
        assert np.array_equal(read_all(tmp_path, repair=True), commands(1, 5))
    assert segment.stat().st_size == append_start


def test_failed_fsync_closes_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    w = JournalWriter(tmp_path, COMMAND_DTYPE)
    monkeypatch.setattr(journal_writer, "_fdatasync", broken)
    with pytest.raises(JournalError, match=r"fsync of .* failed"):
        w.append(commands(1, 5))
    assert w.durable_seq == 0
    with pytest.raises(JournalError, match="closed for writing"):
        w.append(commands(6, 5))


# --------------------------------------------------------------------------------------------
# one writer per journal


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    with JournalWriter(tmp_path, COMMAND_DTYPE) as w:
        w.append(commands(1, 3))
        with pytest.raises(JournalError, match=rf"open for writing by pid {os.getpid()};"):
            JournalWriter(tmp_path, COMMAND_DTYPE)
    with JournalWriter(tmp_path, COMMAND_DTYPE) as again:  # released on close
        assert again.next_seq == 4


def test_repair_is_refused_while_a_writer_runs(tmp_path: Path) -> None:
    write_journal(tmp_path, [5, 5], crash=True)
    segment = list_segments(tmp_path)[0]
    os.truncate(segment, segment.stat().st_size - 1)
    with pytest.warns(TornTailWarning):
        writer = JournalWriter(tmp_path, COMMAND_DTYPE)
    with writer:
        writer.append(commands(6, 2))
        with open(segment, "ab") as f:
            f.write(b"\x00" * 7)  # what a reader might see of a block being written
        with pytest.raises(JournalError, match="open for writing"):
            read_all(tmp_path, repair=True)
        with pytest.warns(TornTailWarning, match="would be truncated"):
            assert np.array_equal(read_all(tmp_path), commands(1, 7))  # reading is fine
        os.truncate(segment, segment.stat().st_size - 7)


def test_a_writer_that_fails_to_open_releases_the_lock(tmp_path: Path) -> None:
    write_journal(tmp_path, [5])
    with pytest.raises(JournalLayoutError):
        JournalWriter(tmp_path, EVENT_DTYPE)
    with JournalWriter(tmp_path, COMMAND_DTYPE) as w:
        assert w.next_seq == 6


def test_prune_segments_keeps_what_recovery_needs(tmp_path: Path) -> None:
    write_journal(tmp_path, [40] * 6, segment_bytes=4096)
    firsts = [int(p.name[:20]) for p in list_segments(tmp_path)]
    assert len(firsts) >= 4
    assert prune_segments(tmp_path, firsts[1] - 2) == []  # segment 0 still has seq firsts[1]-1
    removed = prune_segments(tmp_path, firsts[2] - 1)
    assert [int(p.name[:20]) for p in removed] == firsts[:2]
    assert np.array_equal(read_all(tmp_path), commands(firsts[2], 240 - firsts[2] + 1))
    prune_segments(tmp_path, 10**9)
    assert [int(p.name[:20]) for p in list_segments(tmp_path)] == firsts[-1:]  # never the last
    with JournalWriter(tmp_path, COMMAND_DTYPE, segment_bytes=4096) as w:
        assert w.next_seq == 241
