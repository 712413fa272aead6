"""Per-hop latency from the stamps records carry: ingest→risk, →durable, →match, →ack.

Every command carries ``ts_ingest`` (``time.perf_counter_ns``, one clock in every process
on a host), so each stage can measure how long after ingest a record reached it, in
production, not only in benchmarks. A ``HopLatency`` is one such hop in an HDR histogram:
ingest stamps a whole batch at once, so a batch costs one ``record_value`` per distinct
stamp (usually one), never one per record. Many distinct values at once (the events'
``dt_match``, a batch holding many ingest batches) go in with one vectorised pass over the
histogram's counts (``record_values``): ``record_value`` is pure Python, ~1.5 µs a value,
which made the output stage's ingest→match hop cost one such call per event.
"""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram

#: the most a latency can be (ns) for the histogram: one minute
MAX_LATENCY_NS = 60_000_000_000
#: from this many values on, ``record_values`` beats one ``record_value`` per value
VECTOR_FROM = 16


def new_histogram() -> HdrHistogram:
    """1 ns .. one minute, 3 significant digits (what every hop and report uses)."""
    return HdrHistogram(1, MAX_LATENCY_NS, 3)


class HopLatency:
    """The latency of one hop, ``name`` (e.g. ``"ingest→ack"``), measured at ``now``."""

    def __init__(
        self, name: str, resent_until: int = 0, histogram: HdrHistogram | None = None
    ) -> None:
        self.name = name
        self.histogram = new_histogram() if histogram is None else histogram
        self.resent_until = resent_until  # seqs up to it are sent again after a restart
        self._counts: np.ndarray | None = None  # a numpy view of the histogram's counts
        self._counts_of: object = None

    def record_fresh(self, records: np.ndarray, now: int) -> None:
        """``record_stamps`` of the records' ``ts_ingest``, but those of commands sent again
        after a restart (seq up to ``resent_until``: stamped before the crash, their delay
        is not a latency of this pipeline)."""
        if len(records) and int(records["seq"][0]) <= self.resent_until:
            records = records[records["seq"] > self.resent_until]
        self.record_stamps(records["ts_ingest"], now)

    def record_stamps(self, stamps: np.ndarray, now: int) -> None:
        """Record ``now - stamp`` for every stamp (ns; clamped to the histogram's range)."""
        if len(stamps) == 0:
            return
        first = int(stamps[0])
        if len(stamps) == 1 or (first == int(stamps[-1]) and (stamps == first).all()):
            self.record(now - first, len(stamps))
            return
        if len(stamps) >= VECTOR_FROM:
            self.record_values(now - stamps.astype(np.int64, copy=False))
            return
        values, counts = np.unique(stamps, return_counts=True)
        for stamp, count in zip(values.tolist(), counts.tolist(), strict=True):
            self.record(now - stamp, count)

    def record_durations(self, durations: np.ndarray) -> None:
        """Record durations already measured (ns), e.g. the events' ``dt_match``."""
        if len(durations) >= VECTOR_FROM:
            self.record_values(durations.astype(np.int64, copy=False))
            return
        for value in durations.tolist():
            self.record(value)

    def record_values(self, values: np.ndarray) -> None:
        """Record every value (ns, int64; clamped like ``record``) in one numpy pass: the
        counts index ``HdrHistogram.record_value`` computes per value, for all at once."""
        if len(values) == 0:
            return
        h = self.histogram
        values = np.minimum(np.maximum(values, 1), MAX_LATENCY_NS)  # np.clip: ~25 µs more
        # bit_length(v | sub_bucket_mask): exact through float64 for v < 2**53
        magnitude = np.frexp((values | h.sub_bucket_mask).astype(np.float64))[1]
        bucket = magnitude - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
        sub_bucket = values >> (bucket + h.unit_magnitude)
        index = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + (
            sub_bucket - h.sub_bucket_half_count
        )
        if self._counts is None or self._counts_of is not h.counts:
            self._counts = np.ctypeslib.as_array(h.counts)  # ~20 µs: made once
            self._counts_of = h.counts
        np.add.at(self._counts, index, 1)
        h.total_count += len(values)
        h.min_value = min(h.min_value, int(values.min()))
        h.max_value = max(h.max_value, int(values.max()))

    def record(self, ns: int, count: int = 1) -> None:
        self.histogram.record_value(min(max(1, ns), MAX_LATENCY_NS), count)

    def counters(self) -> dict[str, int]:
        """``hop_<name>_p50_ns`` / ``_p99_ns`` for ``status`` (``tradepipe top``)."""
        key = self.name.replace("→", "_to_").replace("-", "_")
        h = self.histogram
        return {
            f"hop_{key}_p50_ns": int(h.get_value_at_percentile(50)),
            f"hop_{key}_p99_ns": int(h.get_value_at_percentile(99)),
        }

    def encode(self) -> bytes:
        return self.histogram.encode()
