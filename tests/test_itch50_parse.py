"""ITCH 5.0 decoding: every message type's fields, framing rules, and errors with offsets."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.ingest import itch50
from tests.feedwriters import ITCH_BODIES, ITCH_SPEC_LENGTHS, itch_message, itch_stream


def _sample_fields(kind: str, seed: int) -> dict[str, object]:
    """Distinct, non-trivial values for every field of ``kind`` (so swapped offsets show)."""
    fmt, names = ITCH_BODIES[kind]
    rng = np.random.default_rng(seed)
    fields: dict[str, object] = {}
    codes = re.findall(r"(\d*)([a-zA-Z])", fmt)
    for (size, code), name in zip(codes, names, strict=True):
        if code == "Q":
            fields[name] = int(rng.integers(1, 2**63))
        elif code == "I":
            fields[name] = int(rng.integers(1, 2**32))
        elif code == "c":
            fields[name] = chr(int(rng.integers(ord("A"), ord("Z") + 1)))
        else:
            letters = rng.integers(ord("A"), ord("Z"), min(int(size), 3))
            fields[name] = "".join(chr(int(c)) for c in letters)
    return fields


def _decoded(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode().rstrip()
    return int(value)


def test_lengths_match_the_specification() -> None:
    assert itch50.MESSAGE_LENGTHS == ITCH_SPEC_LENGTHS
    for kind, dtype in itch50.DTYPES.items():
        assert dtype.itemsize == ITCH_SPEC_LENGTHS[kind]


@pytest.mark.parametrize("kind", sorted(ITCH_SPEC_LENGTHS))
def test_every_field_of_every_type_round_trips(kind: str) -> None:
    fields = [_sample_fields(kind, seed) for seed in range(3)]
    raw = [
        itch_message(kind, locate=7 + i, tracking=3, timestamp=(1 << 47) - 5 + i, **f)
        for i, f in enumerate(fields)
    ]
    buf = np.frombuffer(itch_stream(raw), np.uint8)
    framed = itch50.frame(buf)
    assert framed.status == itch50.FRAME_OK
    messages = itch50.split_by_type(buf, framed)
    decoded = messages.by_type[kind]
    assert len(decoded) == 3
    assert list(itch50.timestamps_ns(decoded)) == [(1 << 47) - 5 + i for i in range(3)]
    assert list(decoded["stock_locate"]) == [7, 8, 9]
    assert list(decoded["tracking_number"]) == [3, 3, 3]
    for row, expected in zip(decoded, fields, strict=True):
        for name, value in expected.items():
            assert _decoded(row[name]) == value, (kind, name)


def test_zeroed_length_prefixes_are_accepted() -> None:
    raw = [itch_message("D", order_reference_number=5), itch_message("S", event_code="O")]
    buf = np.frombuffer(itch_stream(raw, zero_prefix=True), np.uint8)
    framed = itch50.frame(buf)
    assert framed.status == itch50.FRAME_OK
    assert bytes(framed.types) == b"DS"
    assert list(framed.offsets) == [2, 2 + 19 + 2]


def test_file_order_is_kept_across_types() -> None:
    kinds = "SRAFAEDAS"
    raw = [itch_message(k, timestamp=i) for i, k in enumerate(kinds)]
    messages = itch50.split_by_type(
        buf := np.frombuffer(itch_stream(raw), np.uint8), itch50.frame(buf)
    )
    assert bytes(messages.types).decode() == kinds
    order = sorted((int(p), k) for k, positions in messages.positions.items() for p in positions)
    assert "".join(k for _, k in order) == kinds
    for kind, positions in messages.positions.items():
        assert list(itch50.timestamps_ns(messages.by_type[kind])) == list(positions)


def _stream_of(kinds: str) -> bytes:
    return itch_stream(itch_message(k, timestamp=i) for i, k in enumerate(kinds))


def test_unknown_type_names_its_offset(tmp_path) -> None:
    good = _stream_of("SAD")
    bad = good + b"\x00\x05Zjunk" + _stream_of("S")
    path = tmp_path / "bad.itch"
    path.write_bytes(bad)
    seen = []
    with pytest.raises(itch50.Itch50FormatError) as info:
        for chunk in itch50.iter_chunks(path):
            seen.append(bytes(chunk.framed.types))
    assert info.value.offset == len(good)
    assert info.value.messages_before == 3
    assert "unknown message type 0x5a" in str(info.value)
    assert b"".join(seen) == b"SAD"


def test_prefix_that_disagrees_with_type_is_an_error() -> None:
    good = _stream_of("S")
    bad = good + b"\x00\x20" + itch_message("D")
    framed = itch50.frame(np.frombuffer(bad, np.uint8))
    assert framed.status == itch50.FRAME_BAD_LENGTH
    assert framed.end == len(good)
    assert framed.detail == 0x20


@pytest.mark.parametrize("cut", [1, 2, 3, 10])
def test_truncated_tail_names_its_offset(tmp_path, cut: int) -> None:
    good = _stream_of("SRA")
    tail = itch_stream([itch_message("F")])
    path = tmp_path / "cut.itch"
    path.write_bytes(good + tail[:cut])
    with pytest.raises(itch50.Itch50FormatError) as info:
        list(itch50.iter_chunks(path))
    assert info.value.offset == len(good)
    assert "truncated" in info.value.problem


def test_messages_cut_by_chunk_boundaries_are_carried(tmp_path) -> None:
    kinds = "SRHYLVWKJhAFECXDUPQBINO" * 5
    path = tmp_path / "all.itch"
    path.write_bytes(_stream_of(kinds))
    seen = bytearray()
    offsets = []
    for chunk in itch50.iter_chunks(path, chunk_bytes=64):
        seen += bytes(chunk.framed.types)
        offsets += list(chunk.messages().offsets)
    assert seen.decode() == kinds
    expected = np.cumsum([0] + [itch50.MESSAGE_LENGTHS[k] + 2 for k in kinds])[:-1] + 2
    assert offsets == list(expected)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(ITCH_SPEC_LENGTHS)), st.integers(0, 2**48 - 1)),
        max_size=40,
    ),
    st.booleans(),
)
def test_any_message_sequence_decodes_to_what_was_written(messages, zero_prefix) -> None:
    raw = [itch_message(k, timestamp=ts, locate=i) for i, (k, ts) in enumerate(messages)]
    buf = np.frombuffer(itch_stream(raw, zero_prefix), np.uint8)
    framed = itch50.frame(buf)
    assert framed.status == itch50.FRAME_OK
    assert bytes(framed.types).decode() == "".join(k for k, _ in messages)
    stamps = itch50.header_timestamps_ns(buf, framed.offsets)
    assert list(stamps) == [ts for _, ts in messages]
    decoded = itch50.split_by_type(buf, framed)
    for kind, rows in decoded.by_type.items():
        assert list(rows["stock_locate"]) == list(decoded.positions[kind])
