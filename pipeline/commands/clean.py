"""``tradepipe clean``: remove what a crashed run left behind: shared-memory segments, and
the manifest and sockets a dead supervisor left in its run directory.

The run directory goes first: its manifest names the supervisor and the rings it created,
so those are removed even when the supervisor's pid has since been reused (see
``pipeline.control.clean_run_dir``); then every segment whose creating process is dead.

Anything in /dev/shm that only looks like a segment of ours (any user can create such names:
a directory, a pid that cannot exist) is reported with one ``warning:`` line and left alone;
a segment that cannot be removed is reported too, and the rest are still removed. A run
directory whose supervisor still lives is refused and left as it is.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.config import PipelineConfig
from pipeline.control import clean_run_dir
from pipeline.exitcodes import CommandError, ExitStatus
from ringbuffer.segments import SHM_DIR, clean_segments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "clean",
        help="remove what a crashed run left: stale /dev/shm segments, a dead supervisor's run files",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="also remove segments whose creating process is still alive",
    )
    parser.add_argument(
        "--run-dir",
        metavar="DIR",
        default=PipelineConfig().run_dir,
        help="the pipeline's run directory: remove the manifest and sockets a dead supervisor "
        "left there (default: %(default)s; never a live pipeline's)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rings = 0
    for path in clean_run_dir(args.run_dir):  # refuses a live pipeline's: before anything
        rings += path.parent == SHM_DIR
        print(f"removed {path}")
    report = clean_segments(include_live=args.all)
    for name, why in report.skipped:
        print(f"warning: skipped {SHM_DIR / name}: {why}; not removed", file=sys.stderr)
    for name in report.removed:
        print(f"removed {SHM_DIR / name}")
    print(f"{rings + len(report.removed)} segment(s) removed")
    if report.failed:
        for name, why in report.failed[1:]:
            print(f"warning: could not remove {SHM_DIR / name}: {why}", file=sys.stderr)
        name, why = report.failed[0]
        more = f" (and {len(report.failed) - 1} more, above)" if len(report.failed) > 1 else ""
        raise CommandError(
            f"could not remove {SHM_DIR / name}: {why}{more}; remove it as its owner or as root",
            ExitStatus.REFUSED,
        )
    return 0
