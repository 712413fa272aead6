"""Torn last append or corruption: every partial-write shape a power loss leaves is a torn tail.

After a power loss, any page of the last, never-acknowledged append may be missing (zeros)
or hold stale bytes while later pages of it reached the disk. In the last segment a bad
block with no valid block after it is that torn append: it is cut off with a warning and the
writer continues. A bad block followed by a valid one is damage to data that may have been
acknowledged: corruption, never cut off.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from stages.persistence import journal_blocks
from stages.persistence.journal_errors import JournalCorruptError, TornTailWarning
from stages.persistence.journal_reader import JournalReader
from stages.persistence.journal_segments import list_segments
from stages.persistence.journal_verify import verify_journal
from stages.persistence.journal_writer import JournalWriter
from stages.records import COMMAND_DTYPE
from tests.builders import commands

PAGE = 4096


def write(directory: Path, sizes: list[int], **kwargs: object) -> tuple[np.ndarray, list[int]]:
    """Write appends of ``sizes`` from seq 1 and stop as a crash does (no clean close, so the
    durable mark stays at the last rotation); return the records and each append's offset."""
    offsets = []
    seq = 1
    writer = JournalWriter(directory, COMMAND_DTYPE, **kwargs)
    try:
        for n in sizes:
            offsets.append(writer._offset)
            writer.append(commands(seq, n))
            seq += n
    finally:
        writer.close_quietly()
    return commands(1, seq - 1), offsets


def damage(path: Path, start: int, end: int, fill: bytes | None = None) -> None:
    """Overwrite ``path[start:end]`` with zeros (a page never written) or ``fill``."""
    data = bytearray(path.read_bytes())
    end = min(end, len(data))
    data[start:end] = fill[: end - start] if fill is not None else bytes(end - start)
    path.write_bytes(bytes(data))


def garbage(n: int) -> bytes:
    return np.random.default_rng(7).integers(0, 256, n, dtype=np.uint8).tobytes()


def assert_torn_then_resumes(directory: Path, expected: np.ndarray, torn_offset: int) -> None:
    """The reader returns exactly ``expected`` with one warning; the writer reopens after it."""
    with pytest.warns(TornTailWarning, match=f"at offset {torn_offset} "):
        got = JournalReader(directory, COMMAND_DTYPE).read()
    assert np.array_equal(got, expected)
    next_seq = len(expected) + 1
    with pytest.warns(TornTailWarning, match="; truncated"):
        writer = JournalWriter(directory, COMMAND_DTYPE)
    with writer:
        assert writer.next_seq == next_seq
        writer.append(commands(next_seq, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = verify_journal(directory)
    assert (report.last_seq, report.torn) == (next_seq + 2, [])


# --------------------------------------------------------------------------------------------
# torn: nothing valid after the bad block


def test_lost_first_page_of_a_multi_page_last_append_is_torn(tmp_path: Path) -> None:
    written, offsets = write(tmp_path, [5, 200])  # the last append spans four pages
    segment = list_segments(tmp_path)[0]
    damage(segment, offsets[1], offsets[1] + PAGE)
    assert_torn_then_resumes(tmp_path, written[:5], offsets[1])


def test_garbage_first_page_of_the_last_append_is_torn(tmp_path: Path) -> None:
    written, offsets = write(tmp_path, [5, 200])
    segment = list_segments(tmp_path)[0]
    damage(segment, offsets[1], offsets[1] + PAGE, garbage(PAGE))
    assert_torn_then_resumes(tmp_path, written[:5], offsets[1])


def test_lost_middle_page_of_the_last_append_is_torn(tmp_path: Path) -> None:
    written, offsets = write(tmp_path, [5, 200])
    segment = list_segments(tmp_path)[0]
    damage(segment, offsets[1] + PAGE, offsets[1] + 2 * PAGE)
    assert_torn_then_resumes(tmp_path, written[:5], offsets[1])


def test_lost_middle_page_of_a_multi_block_last_append_is_torn(tmp_path: Path) -> None:
    # an append larger than max_block_bytes is several blocks: its later blocks survive
    written, offsets = write(tmp_path, [5, 300], max_block_bytes=32 + 64 * 64)
    segment = list_segments(tmp_path)[0]
    damage(segment, offsets[1] + PAGE, offsets[1] + 2 * PAGE)
    assert_torn_then_resumes(tmp_path, written[:5], offsets[1])


def test_lost_first_block_of_a_multi_block_last_append_is_torn(tmp_path: Path) -> None:
    written, offsets = write(tmp_path, [5, 300], max_block_bytes=32 + 64 * 64)
    segment = list_segments(tmp_path)[0]
    damage(segment, offsets[1], offsets[1] + PAGE, garbage(PAGE))
    assert_torn_then_resumes(tmp_path, written[:5], offsets[1])


def test_lost_header_page_of_a_fresh_last_segment_is_a_torn_segment(tmp_path: Path) -> None:
    # the rotation wrote the header and the first append's start into one page, then lost it
    written, _ = write(tmp_path, [40, 40, 200], segment_bytes=8192)
    segments = list_segments(tmp_path)
    assert len(segments) == 2 and segments[1].name == "00000000000000000081.tpj"
    damage(segments[1], 0, PAGE)
    with pytest.warns(TornTailWarning, match="creation was cut off"):
        assert np.array_equal(JournalReader(tmp_path, COMMAND_DTYPE).read(), written[:80])
    with pytest.warns(TornTailWarning):
        writer = JournalWriter(tmp_path, COMMAND_DTYPE, segment_bytes=8192)
    with writer:
        assert writer.next_seq == 81
        writer.append(commands(81, 3))
    assert np.array_equal(JournalReader(tmp_path, COMMAND_DTYPE).read(), commands(1, 83))


# --------------------------------------------------------------------------------------------
# corruption: a valid block follows the bad one


def test_bad_block_followed_by_a_valid_block_is_corruption(tmp_path: Path) -> None:
    _, offsets = write(tmp_path, [5, 5, 5])
    segment = list_segments(tmp_path)[0]
    damage(segment, offsets[1], offsets[1] + 32)  # the middle append's header zeroed
    before = segment.read_bytes()
    with pytest.raises(JournalCorruptError, match=f"valid block follows at offset {offsets[2]}"):
        JournalReader(tmp_path, COMMAND_DTYPE, repair=True).read()
    with pytest.raises(JournalCorruptError) as info:
        JournalWriter(tmp_path, COMMAND_DTYPE)
    assert (info.value.offset, info.value.seq) == (offsets[1], 6)
    assert segment.read_bytes() == before  # never cut off


def test_bad_records_followed_by_a_valid_block_is_corruption(tmp_path: Path) -> None:
    _, offsets = write(tmp_path, [5, 200, 5])
    segment = list_segments(tmp_path)[0]
    damage(segment, offsets[1] + PAGE, offsets[1] + 2 * PAGE)
    with pytest.raises(JournalCorruptError, match=r"records checksum mismatch.*valid block"):
        verify_journal(tmp_path)


def test_bad_multi_block_append_followed_by_another_append_is_corruption(tmp_path: Path) -> None:
    _, offsets = write(tmp_path, [5, 300, 7], max_block_bytes=32 + 64 * 64)
    segment = list_segments(tmp_path)[0]
    damage(segment, offsets[1], offsets[1] + 32)
    with pytest.raises(JournalCorruptError, match=f"offset {offsets[2]} \\(seq 306\\)"):
        verify_journal(tmp_path)


def test_lost_segment_header_with_a_later_append_after_it_is_corruption(tmp_path: Path) -> None:
    write(tmp_path, [60, 60, 2, 100], segment_bytes=8192)
    last = list_segments(tmp_path)[-1]
    assert last.name == "00000000000000000121.tpj"
    damage(last, 0, 64)  # the header alone; the appends of seq 121.. and 123.. are intact
    with pytest.raises(JournalCorruptError, match="file header is missing but a valid block"):
        JournalReader(tmp_path, COMMAND_DTYPE)
    with pytest.raises(JournalCorruptError, match="file header is missing"):
        JournalWriter(tmp_path, COMMAND_DTYPE, segment_bytes=8192)
    assert last.exists()


def test_zeroed_page_in_an_earlier_segment_is_corruption(tmp_path: Path) -> None:
    write(tmp_path, [60, 60, 60], segment_bytes=8192)
    first, _last = list_segments(tmp_path)
    size = first.stat().st_size
    damage(first, size - 100, size)
    with pytest.raises(JournalCorruptError):
        verify_journal(tmp_path)
    assert os.path.getsize(first) == size


@pytest.mark.parametrize("chunk", [37, 64, 100, 4096])
def test_the_search_finds_a_valid_block_across_read_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # the search reads the rest of the segment in chunks; a header may straddle two
    monkeypatch.setattr(journal_blocks, "_SCAN_CHUNK", chunk)
    _, offsets = write(tmp_path, [5, 200, 1])
    segment = list_segments(tmp_path)[0]
    damage(segment, offsets[1], offsets[1] + 32, garbage(32))
    with pytest.raises(JournalCorruptError, match=f"valid block follows at offset {offsets[2]} "):
        verify_journal(tmp_path)
