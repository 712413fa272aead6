"""``tradepipe feed stats``: what is in a market-data file, as JSON, before replaying it."""

from __future__ import annotations

import argparse
import json

import numpy as np

from pipeline.exitcodes import CommandError, ExitStatus
from pipeline.replay import feeds
from stages.ingest import itch50, lobster

FORMATS = ("itch50", "lobster")
MAX_CHUNK_MB = 4096


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("feed", help="inspect market-data files (ITCH 5.0, LOBSTER)")
    actions = parser.add_subparsers(dest="feed_command", metavar="ACTION", required=True)
    stats = actions.add_parser(
        "stats",
        help="print JSON: messages, messages by type, add orders per stock, first/last timestamp",
    )
    stats.add_argument("--format", choices=FORMATS, required=True, help="file format")
    stats.add_argument(
        "file",
        help="ITCH 5.0 binary file, or LOBSTER message CSV; gzip (recognised by its first "
        "bytes), a pipe or FIFO, or - for stdin",
    )
    stats.add_argument(
        "--chunk-mb",
        type=int,
        help=f"itch50: read this many MiB at a time, 1..{MAX_CHUNK_MB} (default 64)",
    )
    stats.set_defaults(func=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    """Print the stats JSON. A damaged file: the JSON of everything before the damage, then
    ``CommandError`` (FAILED); an input that is not a feed: ``CommandError`` (USAGE)."""
    if args.chunk_mb is not None:
        if args.format != "itch50":
            raise CommandError("--chunk-mb is an option of --format itch50")
        if not 1 <= args.chunk_mb <= MAX_CHUNK_MB:
            raise CommandError(
                f"--chunk-mb {args.chunk_mb} is out of range: expected 1..{MAX_CHUNK_MB}"
            )
    chunk_mb = 64 if args.chunk_mb is None else args.chunk_mb
    try:
        if args.format == "itch50":
            summary = itch50.file_stats(args.file, chunk_mb << 20).as_dict()
        else:
            summary = lobster_stats(args.file)
    except feeds.INPUT_ERRORS as error:
        raise feeds.input_error(error, args.file) from None
    print(json.dumps(summary, indent=2))
    if "error" in summary:
        error = summary["error"]
        raise CommandError(
            f"{args.file}: stopped at byte offset {error['offset']}: {error['problem']}",
            ExitStatus.FAILED,
        )
    feeds.warn_if_empty(args.file, int(summary["messages"]))
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
