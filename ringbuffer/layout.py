"""Where everything sits in a ring segment, and the checks an attaching process makes.

    offset 0      header line     magic, version, capacity, record size, dtype fingerprint,
                                  consumer count, data offset, alert flag, producer state
    offset 128    producer cursor (its own 128-byte line: written per batch), parked flag,
                                  wake counter
    offset 256    producer line   pid, pid start time, heartbeat
    offset 384    consumer slots  one 128-byte line each: cursor, parked flag, wake counter,
                                  pid, start time, heartbeat, dependency mask, name
    ...           dtype text      ``repr(dtype.descr)``, so a mismatch can say what differs
    data_offset   records         ``capacity * record_size`` bytes, 4096-aligned

128-byte lines (two 64-byte lines) keep each cursor away from its neighbours' lines and from
the adjacent-line prefetcher, so a consumer's cursor writes never invalidate the line the
producer writes (no false sharing).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ringbuffer.errors import LayoutMismatchError

MAGIC = b"TPRING\x00\x01"
LAYOUT_VERSION = 4  # 3: a wake counter after each parked flag; 4: the fingerprint of layout_json
LINE = 128
MAX_CONSUMERS = 64  # dependency sets are a 64-bit mask
NAME_BYTES = 32
DESCR_BYTES = 4096
PAGE = 4096

# producer_state values
PRODUCER_NONE = 0
PRODUCER_ATTACHED = 1
PRODUCER_FINISHED = 2  # end of stream: consumers drain, then get EndOfStreamError

HEADER_DTYPE = np.dtype(
    {
        "names": [
            "magic",
            "version",
            "consumer_count",
            "capacity",
            "record_size",
            "fingerprint",
            "descr_len",
            "alert",
            "data_offset",
            "created_ns",
            "producer_state",
        ],
        "formats": ["S8", "<u4", "<i4", "<i8", "<i8", "S16", "<i4", "<u4", "<i8", "<i8", "<i8"],
        "offsets": [0, 8, 12, 16, 24, 32, 48, 52, 56, 64, 72],
        "itemsize": LINE,
    }
)
PRODUCER_STATE_OFFSET = 72  # an 8-byte field written with a release store (see Producer.finish)

PEER_DTYPE = np.dtype(
    {
        "names": ["pid", "pid_start", "heartbeat_ns"],
        "formats": ["<i8", "<i8", "<i8"],
        "offsets": [0, 8, 16],
        "itemsize": LINE,
    }
)

CONSUMER_DTYPE = np.dtype(
    {
        "names": [
            "cursor",
            "parked",
            "wakes",
            "pid",
            "pid_start",
            "heartbeat_ns",
            "after_mask",
            "name",
        ],
        "formats": ["<i8", "<i8", "<i8", "<i8", "<i8", "<i8", "<u8", f"S{NAME_BYTES}"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56],
        "itemsize": LINE,
    }
)

PRODUCER_CURSOR_OFFSET = LINE
PRODUCER_PEER_OFFSET = 2 * LINE
CONSUMERS_OFFSET = 3 * LINE
CURSOR_FIELD_OFFSET = 0  # within a consumer slot
PARKED_FLAG_DELTA = 8  # every cursor's "someone is parked on me" flag sits right after it
WAKE_COUNTER_DELTA = 16  # then the counter its writer bumps to wake them (``sequence``)


def consumer_offset(index: int) -> int:
    return CONSUMERS_OFFSET + index * LINE


def descr_offset(consumer_count: int) -> int:
    return CONSUMERS_OFFSET + consumer_count * LINE


def data_offset(consumer_count: int) -> int:
    end = descr_offset(consumer_count) + DESCR_BYTES
    return (end + PAGE - 1) // PAGE * PAGE


def segment_size(capacity: int, record_size: int, consumer_count: int) -> int:
    return data_offset(consumer_count) + capacity * record_size


def layout_json(dtype: np.dtype) -> bytes:
    """The canonical description of a record layout: compact JSON, sorted keys, of numpy's
    ``descr`` (names, formats with byte order, padding) and the itemsize.

    ``fingerprint`` hashes it, and the journal stores it in every segment header (so a journal
    can be read without knowing its layout): these bytes are part of a file format and must
    never change. A dtype with overlapping or out-of-order fields has no ``descr`` and raises
    ``ValueError``.
    """
    layout = {"descr": _descr_to_json(dtype.descr), "itemsize": dtype.itemsize}
    return json.dumps(layout, separators=(",", ":"), sort_keys=True).encode()


def _descr_to_json(descr: Any) -> Any:
    if isinstance(descr, list | tuple):
        return [_descr_to_json(item) for item in descr]
    return descr


def fingerprint(dtype: np.dtype) -> bytes:
    """16 bytes that change whenever the record layout does: BLAKE2b-128 of ``layout_json``.

    The ring checks it on attach; the journal writes it into its segment headers.
    """
    return hashlib.blake2b(layout_json(np.dtype(dtype)), digest_size=16).digest()


def describe(dtype: np.dtype) -> str:
    """The text a ring stores of its record layout (field names, formats, offsets, size), so
    a process attaching with another layout is told which field differs."""
    dtype = np.dtype(dtype)
    fields = []
    for name in dtype.names or ():
        field_dtype, offset = dtype.fields[name][:2]
        fields.append(
            (name, field_dtype.str if field_dtype.shape == () else repr(field_dtype.descr), offset)
        )
    return repr({"fields": fields, "itemsize": dtype.itemsize})


def check_capacity(capacity: int) -> None:
    if capacity < 2 or capacity & (capacity - 1):
        raise ValueError(f"ring capacity must be a power of two >= 2, got {capacity}")


def check_header(name: str, header: np.void, descr_text: str, dtype: np.dtype) -> None:
    """Raise ``LayoutMismatchError`` naming what differs between the segment and ``dtype``."""
    if bytes(header["magic"]) != MAGIC:
        raise LayoutMismatchError(
            f"segment {name!r} is not a tradepipe ring (magic {bytes(header['magic'])!r}, "
            f"expected {MAGIC!r})"
        )
    if int(header["version"]) != LAYOUT_VERSION:
        raise LayoutMismatchError(
            f"ring {name!r} has layout version {int(header['version'])}, "
            f"this tradepipe reads version {LAYOUT_VERSION}"
        )
    if bytes(header["fingerprint"]) != fingerprint(dtype):
        raise LayoutMismatchError(
            f"ring {name!r} holds records of another layout: "
            f"{_first_difference(descr_text, describe(dtype))}"
        )


def _first_difference(ring_descr: str, expected_descr: str) -> str:
    import ast

    try:
        ring = ast.literal_eval(ring_descr)
        expected = ast.literal_eval(expected_descr)
    except (ValueError, SyntaxError):
        return f"ring has {ring_descr!r}, caller expects {expected_descr!r}"
    if ring["itemsize"] != expected["itemsize"]:
        return (
            f"record size is {ring['itemsize']} bytes in the ring, "
            f"{expected['itemsize']} bytes expected"
        )
    for index, (have, want) in enumerate(zip(ring["fields"], expected["fields"], strict=False)):
        if tuple(have) != tuple(want):
            return (
                f"field {index} is {tuple(have)} (name, format, offset) in the ring, "
                f"{tuple(want)} expected"
            )
    return (
        f"the ring has {len(ring['fields'])} fields, {len(expected['fields'])} expected "
        f"(ring: {ring['fields']}, expected: {expected['fields']})"
    )
