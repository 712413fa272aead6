"""Record layout and checks shared by the ring tests (a plain 64-byte record)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

RECORD = np.dtype([("seq", "<i8"), ("check", "<u8"), ("payload", "u1", (48,))])
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def make_records(first: int, count: int) -> np.ndarray:
    """``count`` records numbered from ``first``, each with a checksum of its number."""
    records = np.zeros(count, dtype=RECORD)
    fill_records(records, first)
    return records


def fill_records(view: np.ndarray, first: int) -> None:
    seqs = np.arange(first, first + len(view), dtype=np.int64)
    view["seq"] = seqs
    view["check"] = checksum(seqs)
    view["payload"][:, 0] = (seqs & 0xFF).astype(np.uint8)


def checksum(seqs: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return seqs.astype(np.uint64) * GOLDEN ^ np.uint64(0xDEADBEEF)


def verify(view: np.ndarray, first: int) -> None:
    """Raise AssertionError unless ``view`` holds exactly records first.. in order."""
    expected = np.arange(first, first + len(view), dtype=np.int64)
    if not np.array_equal(view["seq"], expected):
        bad = int(np.flatnonzero(view["seq"] != expected)[0])
        raise AssertionError(f"record {first + bad}: got seq {int(view['seq'][bad])}")
    if not np.array_equal(view["check"], checksum(expected)):
        raise AssertionError(f"checksum mismatch in records {first}..{first + len(view) - 1}")
    if not np.array_equal(view["payload"][:, 0], (expected & 0xFF).astype(np.uint8)):
        raise AssertionError(f"payload mismatch in records {first}..{first + len(view) - 1}")


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` (an observable state, e.g. a parked flag in the ring) until it
    holds; fail naming ``what`` after ``timeout`` seconds. The sleep paces the polling only:
    what happens next never depends on how long it took."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


def reap(processes: list) -> None:
    """Join every process a test started (30 s each), killing any still alive: a failed
    test leaves nothing running."""
    for process in processes:
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()
