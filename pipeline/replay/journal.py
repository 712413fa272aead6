"""``tradepipe replay --journal DIR``: rebuild the engine from snapshot + journal, print its hash.

The state hash printed must be the state of the run that wrote the journal, so the engine
configuration is never guessed: replay starts from the newest valid snapshot in
``--snapshots``, or from the initial state the run kept beside the journal, or, with
``--config``, from that configuration's initial state. When none of these is there it
stops and says so; it never falls back to the embedded defaults.

Exit statuses (``pipeline.exitcodes``): 0 replayed (a torn tail is a ``warning:`` line); 1
the journal or snapshots are damaged or do not fit together; 2 a wrong option or path
(missing ``--snapshots`` directory, negative ``--to-seq``, a feed FILE or ``--format`` with
``--journal``, a configuration that cannot be known without ``--config``); 4 the system
refused (no permission, a live writer holds the journal).
"""

from __future__ import annotations

import argparse
import errno
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pipeline.config import load_config
from pipeline.exitcodes import CommandError, ExitStatus
from stages.engine import Engine
from stages.persistence.journal_errors import (
    JournalAccessError,
    JournalBusyError,
    JournalError,
    JournalFullError,
)
from stages.persistence.recovery import (
    SnapshotDirectoryError,
    UnknownStartError,
    replay_journal,
)
from stages.persistence.snapshots import INITIAL_STATE_NAME, SnapshotError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    journal = parser.add_argument_group("a tradepipe journal (--journal)")
    journal.add_argument("--journal", metavar="DIR", help="journal directory to replay")
    journal.add_argument(
        "--snapshots",
        metavar="DIR",
        help="the run's snapshot directory: start from its newest valid snapshot "
        "(default: the initial state kept with the journal)",
    )
    journal.add_argument(
        "--from-start",
        action="store_true",
        help="start from the initial state (seq 0): replay the whole journal",
    )
    journal.add_argument(
        "--config",
        metavar="TOML",
        help="the run's configuration, for a journal whose initial state is not known "
        "otherwise (no snapshot, none kept with the journal)",
    )
    journal.add_argument("--to-seq", type=int, help="stop after this sequence number (>= 0)")


def selected(args: argparse.Namespace) -> bool:
    return getattr(args, "journal", None) is not None


def _check_options(args: argparse.Namespace) -> None:
    feed = []
    if getattr(args, "format", None) is not None:
        feed.append(f"--format {args.format}")
    if getattr(args, "file", None) is not None:
        feed.append(f"FILE {args.file}")
    if feed:
        raise CommandError(
            f"--journal replays a journal; {' and '.join(feed)} belong to a market-data "
            "replay: give one or the other"
        )
    if args.to_seq is not None and args.to_seq < 0:
        raise CommandError(f"--to-seq {args.to_seq} is invalid: expected a seq >= 0")


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Print each warning raised inside (torn tail, corrupt snapshot) once, as one line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen: set[str] = set()
            for w in caught:
                text = str(w.message)
                if text not in seen:
                    seen.add(text)
                    print(f"warning: {text}", file=sys.stderr)


def _status(error: JournalError | SnapshotError) -> ExitStatus:
    """The exit status a domain error means for this command."""
    if isinstance(error, JournalBusyError | JournalFullError):
        return ExitStatus.REFUSED
    if isinstance(error, JournalAccessError):
        return (
            ExitStatus.USAGE if error.errno in (errno.ENOENT, errno.ENOTDIR) else ExitStatus.REFUSED
        )
    if isinstance(error, UnknownStartError | SnapshotDirectoryError):
        return ExitStatus.USAGE
    return ExitStatus.FAILED  # corrupt, another layout, a gap, snapshots that do not fit


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    factory: Callable[[], Engine] | None = None
    if args.config is not None:
        engine_config = load_config(args.config).engine  # ConfigError is a CommandError

        def factory() -> Engine:
            return Engine(engine_config)

    with _warnings_as_lines():
        try:
            result = replay_journal(
                args.journal,
                args.snapshots,
                factory,
                restore=Engine.restore,
                to_seq=args.to_seq,
                snapshot_max_seq=0 if args.from_start else None,
            )
        except (JournalError, SnapshotError) as error:
            raise CommandError(str(error), _status(error)) from None
    if result.snapshot_path is not None and result.snapshot_path.name == INITIAL_STATE_NAME:
        start = "the initial state kept with the journal"
    elif result.snapshot_seq is not None:
        start = f"snapshot @ seq {result.snapshot_seq}"
    else:
        start = f"the initial state of config {args.config}"
    print(f"replayed {result.replayed} journal records from {start} up to seq {result.last_seq}")
    print(f"state hash {result.state_hash}")
    return 0
