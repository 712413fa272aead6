"""Journal write throughput per fsync policy and batch size, against the raw disk rate.

Answers the issue's targets: with fsync per batch (group commit) >= 2 M records/s, and
without fsync within 2x of the disk's raw sequential write rate. The peers are measured in
the same run on the same directory: plain ``os.write`` of the same bytes in 1 MiB chunks,
once with a single fsync at the end ("raw+fsync") and once without ("raw"), and ``os.write``
+ ``fdatasync`` per batch of the same size as the journal's ("raw per-batch fsync"), which
is the floor a group-committing journal cannot beat.

    python perf/bench_journal.py [--quick] [--json PATH] [--dir DIR]

Each figure is the median of ``--runs`` runs (>= 3). Records are 64-byte COMMAND_DTYPE.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.persistence.journal import JournalWriter
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


def median_of(runs: int, fn, *args) -> float:
    return statistics.median(fn(*args) for _ in range(runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, less data (< 60 s)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    parser.add_argument(
        "--dir", help="directory on the disk to measure (default: the system temp dir)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median; >= 3)")
    parser.add_argument("--interval-ms", type=float, default=5.0, help="the interval policy's N")
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error(f"--runs {args.runs} is too few: the median needs >= 3")

    if args.quick:
        batches = [64, 1024, 16384]
        total_bytes = 32 * 1024 * 1024
        max_fsyncs = 300  # bounds the small-batch fsync runs
    else:
        batches = [16, 64, 256, 1024, 4096, 16384, 65536]
        total_bytes = 256 * 1024 * 1024
        max_fsyncs = 2000
    n_total = total_bytes // COMMAND_DTYPE.itemsize
    records = make_records(n_total)

    root = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    print(f"journal benchmark in {root} ({args.runs} runs each, median)")
    results: list[dict[str, object]] = []
    peers: list[dict[str, object]] = []
    try:
        raw_nosync = (
            n_total * 64 / median_of(args.runs, bench_raw, root, records, 1 << 20, False, False)
        )
        raw_sync = (
            n_total * 64 / median_of(args.runs, bench_raw, root, records, 1 << 20, False, True)
        )
        peers.append({"peer": "raw", "mb_per_s": raw_nosync / MB})
        peers.append({"peer": "raw+fsync", "mb_per_s": raw_sync / MB})
        print(
            f"raw sequential write, 1 MiB chunks: {raw_nosync / MB:.0f} MB/s (no fsync), "
            f"{raw_sync / MB:.0f} MB/s (one fsync at the end)"
        )
        print()
        header = (
            f"{'fsync':>9} {'batch':>7} {'records/s':>12} {'MB/s':>8} "
            f"{'raw per-batch fsync rec/s':>26} {'vs that':>8} {'vs raw':>7} {'vs disk':>8}"
        )
        print(header)
        print("-" * len(header))
        for batch in batches:
            synced_records = min(n_total, batch * max_fsyncs)
            subset = records[:synced_records]
            per_batch_peer = synced_records / median_of(
                args.runs, bench_raw, root, subset, batch * 64, True, False
            )
            peers.append(
                {"peer": "raw per-batch fsync", "batch": batch, "records_per_s": per_batch_peer}
            )
            for policy in ("batch", "interval", "never"):
                data = subset if policy == "batch" else records
                seconds = median_of(
                    args.runs, bench_journal, root, data, batch, policy, args.interval_ms
                )
                rps = len(data) / seconds
                mbps = rps * 64 / MB
                results.append(
                    {
                        "fsync": policy,
                        "batch": batch,
                        "records_per_s": rps,
                        "mb_per_s": mbps,
                        "records": len(data),
                    }
                )
                if policy == "batch":
                    peer_text = f"{per_batch_peer:26,.0f} {rps / per_batch_peer:7.2f}x"
                else:
                    peer_text = " " * 35
                print(
                    f"{policy:>9} {batch:>7} {rps:12,.0f} {mbps:8.0f} {peer_text} "
                    f"{mbps * MB / raw_nosync:6.2f}x {mbps * MB / raw_sync:7.2f}x"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print()
    print("vs raw: over plain os.write without fsync (the page cache); vs disk: over plain")
    print("os.write + one fsync at the end (the disk's sequential write rate)")
    best_batch = max(r["records_per_s"] for r in results if r["fsync"] == "batch")
    best_never = max(r["mb_per_s"] for r in results if r["fsync"] == "never")
    met = "met" if best_batch >= 2e6 else "NOT met"
    print(f"target fsync per batch >= 2,000,000 records/s: best {best_batch:,.0f} ({met})")
    met = "met" if best_never * MB * 2 >= raw_sync else "NOT met"
    print(
        f"target never within 2x of the disk ({raw_sync / MB:.0f} MB/s): best "
        f"{best_never:.0f} MB/s ({met}); {best_never * MB / raw_nosync:.2f}x of the page-cache"
        f" write rate ({raw_nosync / MB:.0f} MB/s)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "peers": peers}, indent=2))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
