"""``tradepipe clean``: remove shared-memory segments a crashed run left behind."""

from __future__ import annotations

import argparse

from ringbuffer.segments import remove_stale_segments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "clean", help="remove this project's stale shared-memory segments from /dev/shm"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="also remove segments whose creating process is still alive",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    removed = remove_stale_segments(include_live=args.all)
    for name in removed:
        print(f"removed /dev/shm/{name}")
    print(f"{len(removed)} segment(s) removed")
    return 0
