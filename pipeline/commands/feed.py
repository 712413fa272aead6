"""``tradepipe feed stats``: what is in a market-data file, as JSON, before replaying it."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from stages.ingest import itch50, lobster

FORMATS = ("itch50", "lobster")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("feed", help="inspect market-data files (ITCH 5.0, LOBSTER)")
    actions = parser.add_subparsers(dest="feed_command", metavar="ACTION", required=True)
    stats = actions.add_parser(
        "stats",
        help="print JSON: messages, messages by type, add orders per stock, first/last timestamp",
    )
    stats.add_argument("--format", choices=FORMATS, required=True, help="file format")
    stats.add_argument("file", help="ITCH 5.0 binary file, or LOBSTER message CSV")
    stats.add_argument(
        "--chunk-mb", type=int, default=64, help="read ITCH files this many MiB at a time"
    )
    stats.set_defaults(func=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    """Print the stats JSON; exit 1 (with the JSON of everything before it) on a bad file."""
    if args.chunk_mb < 1:
        print(f"--chunk-mb {args.chunk_mb} is invalid: expected >= 1", file=sys.stderr)
        return 2
    try:
        if args.format == "itch50":
            summary = itch50.file_stats(args.file, args.chunk_mb << 20).as_dict()
        else:
            summary = lobster_stats(args.file)
    except (OSError, lobster.LobsterFormatError) as error:
        print(f"tradepipe feed stats: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    if "error" in summary:
        error = summary["error"]
        print(
            f"tradepipe feed stats: stopped at byte offset {error['offset']}: {error['problem']}",
            file=sys.stderr,
        )
        return 1
    return 0


def lobster_stats(path: str) -> dict[str, object]:
    """Messages by LOBSTER event type and the time span of a LOBSTER message file."""
    rows = lobster.read_messages(path)
    kinds, counts = np.unique(rows["type"], return_counts=True)
    return {
        "messages": len(rows),
        "by_type": {str(k): int(c) for k, c in zip(kinds.tolist(), counts, strict=True)},
        "symbols": {},
        "first_ts_ns": int(rows["time_ns"][0]) if len(rows) else None,
        "last_ts_ns": int(rows["time_ns"][-1]) if len(rows) else None,
    }
