"""``tradepipe replay --journal DIR``: rebuild the engine from snapshot + journal, print its hash."""

from __future__ import annotations

import argparse
import sys

from pipeline.config import ConfigError, load_config
from stages.engine import Engine
from stages.persistence.journal import JournalError
from stages.persistence.recovery import replay_journal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    journal = parser.add_argument_group("a tradepipe journal (--journal)")
    journal.add_argument("--journal", metavar="DIR", help="journal directory to replay")
    journal.add_argument(
        "--snapshots",
        metavar="DIR",
        help="snapshot directory: start from its newest valid snapshot (default: none)",
    )
    journal.add_argument(
        "--from-start",
        action="store_true",
        help="start from the snapshot of the initial state (seq 0): replay the whole journal",
    )
    journal.add_argument(
        "--config",
        metavar="TOML",
        help="engine configuration when no snapshot is used (default: embedded defaults)",
    )
    journal.add_argument("--to-seq", type=int, help="stop after this sequence number")


def selected(args: argparse.Namespace) -> bool:
    return getattr(args, "journal", None) is not None


def run(args: argparse.Namespace) -> int:
    try:
        engine_config = load_config(args.config).engine
    except ConfigError as error:
        print(f"tradepipe replay: {error}", file=sys.stderr)
        return 2
    try:
        result = replay_journal(
            args.journal,
            args.snapshots,
            lambda: Engine(engine_config),
            to_seq=args.to_seq,
            snapshot_max_seq=0 if args.from_start else None,
        )
    except (JournalError, OSError, ValueError) as error:
        print(f"tradepipe replay: {error}", file=sys.stderr)
        return 1
    if result.snapshot_seq is None:
        start = f"the initial state (config: {args.config or 'embedded defaults'})"
    else:
        start = f"snapshot @ seq {result.snapshot_seq}"
    print(f"replayed {result.replayed} journal records from {start} up to seq {result.last_seq}")
    for torn in result.torn:
        print(f"  torn tail: {torn.describe()}")
    print(f"state hash {result.state_hash}")
    return 0
