"""Journal properties (hypothesis): what goes in comes out, and every bit flip is detected.

The reference is the obvious one: the concatenation of the batches written, sliced by seq.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.persistence.journal_errors import JournalError, TornTailWarning
from stages.persistence.journal_reader import JournalReader
from stages.persistence.journal_segments import list_segments
from stages.persistence.journal_writer import JournalWriter
from stages.records import COMMAND_DTYPE
from tests.builders import commands

SEGMENT_BYTES = 1500
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(
    sizes=st.lists(st.integers(1, 300), min_size=0, max_size=12),
    segment_bytes=st.integers(1024, 40_000),
    reopen_every=st.integers(1, 5),
    block_records=st.integers(1, 400),
    lo=st.integers(0, 2000),
    span=st.integers(0, 2000),
)
def test_what_goes_in_comes_out(
    sizes: list[int],
    segment_bytes: int,
    reopen_every: int,
    block_records: int,
    lo: int,
    span: int,
) -> None:
    options = {"segment_bytes": segment_bytes, "max_block_bytes": 32 + 64 * block_records}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        seq = 1
        writer = JournalWriter(directory, COMMAND_DTYPE, **options)
        for i, n in enumerate(sizes):
            if i and i % reopen_every == 0:
                writer.close()
                writer = JournalWriter(directory, COMMAND_DTYPE, **options)
                assert writer.next_seq == seq
            writer.append(commands(seq, n))
            seq += n
        writer.close()
        total = seq - 1
        reference = commands(1, total)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            reader = JournalReader(directory, COMMAND_DTYPE)
            assert np.array_equal(reader.read(), reference)
            assert reader.last_seq == total
            hi = lo + span
            expected = reference[(reference["seq"] >= lo) & (reference["seq"] <= hi)]
            assert np.array_equal(reader.read(lo, hi), expected)
        largest = 64 * max(sizes, default=0) + 32 * -(-max(sizes, default=0) // block_records)
        for header in reader.segments:  # within bounds, unless one append alone is larger
            assert header.path.stat().st_size <= max(segment_bytes, header.header_size + largest)
        assert [len(b) for b in reader.batches()] == sizes  # appends come back whole


def _base_journal() -> tuple[dict[str, bytes], np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        seq = 1
        with JournalWriter(
            directory, COMMAND_DTYPE, segment_bytes=SEGMENT_BYTES, max_block_bytes=32 + 64 * 4
        ) as writer:
            for n in [3, 1, 12, 7, 20, 2, 9]:  # several blocks per append, the last one too
                writer.append(commands(seq, n))
                seq += n
        files = {p.name: p.read_bytes() for p in list_segments(directory)}
    return files, commands(1, seq - 1)


BASE_FILES, BASE_RECORDS = _base_journal()
NAMES = sorted(BASE_FILES)


def test_base_journal_spans_several_segments() -> None:
    assert len(NAMES) >= 3


def flips() -> st.SearchStrategy[tuple[str, int, int]]:
    """(segment name, byte offset, bit) anywhere in the base journal."""
    return st.sampled_from(NAMES).flatmap(
        lambda name: st.tuples(
            st.just(name), st.integers(0, len(BASE_FILES[name]) - 1), st.integers(0, 7)
        )
    )


@settings(max_examples=400, deadline=None)
@given(flip=flips())
def test_every_bit_flip_is_detected(flip: tuple[str, int, int]) -> None:
    check_flip_is_detected(*flip)


@pytest.mark.slow
@settings(max_examples=4000, deadline=None)
@given(flip=flips())
def test_every_bit_flip_is_detected_long(flip: tuple[str, int, int]) -> None:
    check_flip_is_detected(*flip)


def check_flip_is_detected(name: str, offset: int, bit: int) -> None:
    """Flip one bit: reading must raise, or warn of a torn tail and return a true prefix."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for other, content in BASE_FILES.items():
            if other == name:
                flipped = bytearray(content)
                flipped[offset] ^= 1 << bit
                content = bytes(flipped)
            (directory / other).write_bytes(content)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                got = JournalReader(directory, COMMAND_DTYPE).read()
            except JournalError:
                return  # detected, and nothing was replayed past it
        torn = [w for w in caught if issubclass(w.category, TornTailWarning)]
        assert torn, f"a flip at {name}:{offset} bit {bit} went unnoticed"
        # only the torn tail was dropped: what was returned is exactly the original prefix
        assert len(got) < len(BASE_RECORDS)
        assert np.array_equal(got, BASE_RECORDS[: len(got)])


@settings(max_examples=80, deadline=None)
@given(cut=st.integers(1, 2000), extra=st.integers(1, 40))
def test_writer_resumes_after_any_torn_tail(cut: int, extra: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name, content in BASE_FILES.items():
            (directory / name).write_bytes(content)
        last = directory / NAMES[-1]
        size = last.stat().st_size
        header_size = JournalReader(directory).segments[-1].header_size
        # a crash tears blocks; segment headers are fsynced before the segment is renamed in
        os.truncate(last, max(header_size, size - cut))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TornTailWarning)
            writer = JournalWriter(
                directory, COMMAND_DTYPE, segment_bytes=SEGMENT_BYTES, max_block_bytes=32 + 64 * 4
            )
        with writer:
            kept = writer.next_seq - 1
            assert np.array_equal(JournalReader(directory).read(), BASE_RECORDS[:kept])
            writer.append(commands(kept + 1, extra))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert np.array_equal(JournalReader(directory).read(), commands(1, kept + extra))
