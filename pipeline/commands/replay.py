"""``tradepipe replay``: drive the matching engine from recorded input and report what happened.

One sub-command, several input modes. Each mode is a ``ReplayMode``: it adds its own
arguments, says whether the parsed arguments select it, and runs; each lives in its own
module of ``pipeline.replay``. A new mode is one more entry in ``MODES``; the shared
argument parsing and dispatch below do not change.

Modes: ``--format lobster MESSAGE_FILE`` and ``--format itch50 FILE``
(``pipeline.replay.feeds``); ``--journal DIR`` (``pipeline.replay.journal``: rebuild the
engine from snapshot + journal and print its state hash).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.replay import feeds, journal


@dataclass(frozen=True)
class ReplayMode:
    """One kind of replay input: its arguments, how it is selected, how it runs."""

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    selected: Callable[[argparse.Namespace], bool]
    run: Callable[[argparse.Namespace], int]


#: Every input mode, checked in order; the first whose ``selected`` is true runs.
MODES: list[ReplayMode] = [
    ReplayMode("--format lobster|itch50 FILE", feeds.add_arguments, feeds.selected, feeds.run),
    ReplayMode(
        "--journal DIR [--snapshots DIR]", journal.add_arguments, journal.selected, journal.run
    ),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay recorded input (market data or a journal) and summarise it",
        description="Replay recorded input into tradepipe's engines. Modes: "
        + "; ".join(m.name for m in MODES),
    )
    for mode in MODES:
        mode.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for mode in MODES:
        if mode.selected(args):
            return mode.run(args)
    print(
        "tradepipe replay: say what to replay: --format lobster|itch50 FILE or --journal DIR",
        file=sys.stderr,
    )
    return 2
