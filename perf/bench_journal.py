"""Journal write throughput per fsync policy and batch size, against the raw disk rate.

Answers the issue's targets: with fsync per batch (group commit) >= 2 M records/s, and
without fsync within 2x of the disk's raw sequential write rate. The peers are measured in
the same run on the same directory: plain ``os.write`` of the same bytes in 1 MiB chunks,
once with a single fsync at the end ("raw+fsync") and once without ("raw"), and ``os.write``
+ ``fdatasync`` per batch of the same size as the journal's ("raw per-batch fsync"), which
is the floor a group-committing journal cannot beat.

    python perf/bench_journal.py [--quick] [--json PATH] [--dir DIR]

Each figure is the median of ``--runs`` runs (>= 3), taken round-robin over the journal's
policies and the raw peer of the same batch size. Records are 64-byte COMMAND_DTYPE.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import harness
import numpy as np

from stages.persistence import JournalWriter
from stages.records import COMMAND_DTYPE

MB = 1e6


def make_records(n: int) -> np.ndarray:
    records = np.zeros(n, dtype=COMMAND_DTYPE)
    records["seq"] = np.arange(1, n + 1)
    records["order_id"] = np.arange(n) * 3 + 1
    records["price"] = 10_000 + np.arange(n) % 97
    records["qty"] = 1 + np.arange(n) % 13
    return records


def bench_journal(
    root: Path, records: np.ndarray, batch: int, policy: str, interval_ms: float
) -> float:
    """Seconds to append ``records`` in batches of ``batch`` and close (which syncs)."""
    directory = Path(tempfile.mkdtemp(prefix="j-", dir=root))
    try:
        start = time.perf_counter()
        writer = JournalWriter(
            directory, COMMAND_DTYPE, fsync=policy, fsync_interval_ms=interval_ms
        )
        for i in range(0, len(records), batch):
            writer.append(records[i : i + batch])
        writer.close()
        return time.perf_counter() - start
    finally:
        shutil.rmtree(directory)


def bench_raw(root: Path, data: np.ndarray, chunk: int, sync_each: bool, sync_end: bool) -> float:
    """Seconds to write ``data`` with os.write in ``chunk``-byte pieces (+ the fsyncs asked)."""
    path = root / "raw.bin"
    raw = data.view(np.uint8)
    try:
        start = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for i in range(0, len(raw), chunk):
            os.write(fd, raw[i : i + chunk])
            if sync_each:
                os.fdatasync(fd)
        if sync_end:
            os.fdatasync(fd)
        os.close(fd)
        return time.perf_counter() - start
    finally:
        path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser("journal", __doc__)
    parser.add_argument(
        "--dir", help="directory on the disk to measure (default: the system temp dir)"
    )
    parser.add_argument("--interval-ms", type=float, default=5.0, help="the interval policy's N")
    args = harness.parse(parser, argv)
    runs = args.runs
    batches = harness.by_mode(
        args,
        smoke=[64, 1024, 16384],
        quick=[64, 1024, 16384],
        full=[16, 64, 256, 1024, 4096, 16384, 65536],
    )
    total_bytes = harness.by_mode(args, smoke=1, quick=32, full=256) * 1024 * 1024
    max_fsyncs = harness.by_mode(args, smoke=8, quick=300, full=2000)  # bounds small batches
    n_total = total_bytes // COMMAND_DTYPE.itemsize
    records = make_records(n_total)

    root = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    print(f"journal benchmark in {root} ({runs} runs each, median)")
    results: list[dict[str, object]] = []
    peers: list[dict[str, object]] = []
    rows = []
    try:
        raw = harness.round_robin(
            {
                "raw": partial(bench_raw, root, records, 1 << 20, False, False),
                "raw+fsync": partial(bench_raw, root, records, 1 << 20, False, True),
            },
            runs,
        )
        raw_nosync = n_total * 64 / harness.median(raw["raw"])
        raw_sync = n_total * 64 / harness.median(raw["raw+fsync"])
        peers.append({"peer": "raw", "mb_per_s": raw_nosync / MB})
        peers.append({"peer": "raw+fsync", "mb_per_s": raw_sync / MB})
        print(
            f"raw sequential write, 1 MiB chunks: {raw_nosync / MB:.0f} MB/s (no fsync), "
            f"{raw_sync / MB:.0f} MB/s (one fsync at the end)"
        )
        print()
        for batch in batches:
            synced_records = min(n_total, batch * max_fsyncs)
            subset = records[:synced_records]
            data = {"batch": subset, "interval": records, "never": records}
            cases = {"peer": partial(bench_raw, root, subset, batch * 64, True, False)}
            for policy in POLICIES:
                cases[policy] = partial(
                    bench_journal, root, data[policy], batch, policy, args.interval_ms
                )
            seconds = {
                name: harness.median(s) for name, s in harness.round_robin(cases, runs).items()
            }
            per_batch_peer = synced_records / seconds["peer"]
            peers.append(
                {"peer": "raw per-batch fsync", "batch": batch, "records_per_s": per_batch_peer}
            )
            for policy in POLICIES:
                rps = len(data[policy]) / seconds[policy]
                mbps = rps * 64 / MB
                results.append(
                    {
                        "fsync": policy,
                        "batch": batch,
                        "records_per_s": rps,
                        "mb_per_s": mbps,
                        "records": len(data[policy]),
                    }
                )
                peer_cells = ["", ""]
                if policy == "batch":
                    peer_cells = [f"{per_batch_peer:,.0f}", f"{rps / per_batch_peer:.2f}x"]
                rows.append(
                    [policy, str(batch), f"{rps:,.0f}", f"{mbps:.0f}", *peer_cells,
                     f"{mbps * MB / raw_nosync:.2f}x", f"{mbps * MB / raw_sync:.2f}x"]
                )  # fmt: skip
                harness.progress(f"  {policy:>8} {batch:>6}: {rps:12,.0f} records/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    best_batch = max(r["records_per_s"] for r in results if r["fsync"] == "batch")
    best_never = max(r["mb_per_s"] for r in results if r["fsync"] == "never")
    met_batch = "met" if best_batch >= 2e6 else "NOT met"
    met_never = "met" if best_never * MB * 2 >= raw_sync else "NOT met"
    harness.print_table(
        f"journal write rate per fsync policy and batch size, median of {runs} runs",
        COLUMNS,
        rows,
        [
            "vs raw: over plain os.write without fsync (the page cache); vs disk: over plain",
            "os.write + one fsync at the end (the disk's sequential write rate)",
            f"target fsync per batch >= 2,000,000 records/s: best {best_batch:,.0f} ({met_batch})",
            f"target never within 2x of the disk ({raw_sync / MB:.0f} MB/s): best "
            f"{best_never:.0f} MB/s ({met_never}); {best_never * MB / raw_nosync:.2f}x of the "
            f"page-cache write rate ({raw_nosync / MB:.0f} MB/s)",
        ],
    )
    return harness.finish(args, {"results": results, "peers": peers})


POLICIES = ("batch", "interval", "never")
COLUMNS = ("fsync", "batch", "records/s", "MB/s", "raw per-batch fsync rec/s", "vs that",
           "vs raw", "vs disk")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
