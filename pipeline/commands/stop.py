"""``tradepipe stop [--run-dir DIR]``: drain and stop the running pipeline, then wait until
its supervisor has reaped every stage and removed its run-directory files.

The supervisor asks ingest to stop; the other stages finish what was sequenced, as at the
end of a load. No pipeline running there is said in one line, exit 1.
"""

from __future__ import annotations

import argparse
import time

from pipeline import control_messages as m
from pipeline.commands.status import ask
from pipeline.config import PipelineConfig
from pipeline.control import NoPipelineError, find_pipeline
from pipeline.exitcodes import CommandError, ExitStatus

REQUEST_TIMEOUT = 5.0
#: seconds to wait for the pipeline to drain and its supervisor to clean up
STOP_TIMEOUT = 120.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stop", help="drain and stop the running pipeline (tradepipe run)"
    )
    parser.add_argument(
        "--run-dir",
        metavar="DIR",
        default=PipelineConfig().run_dir,
        help="the pipeline's run directory ([pipeline] run_dir; default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    pid = find_pipeline(args.run_dir).supervisor_pid  # none running: says so, exit 1
    reply = ask(args.run_dir, m.Stop(), REQUEST_TIMEOUT)
    print(f"stopping the pipeline (supervisor pid {pid}): {getattr(reply, 'detail', '')}")
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            find_pipeline(args.run_dir)
        except NoPipelineError:
            print("stopped")
            return ExitStatus.OK
        time.sleep(0.1)  # the supervisor removes its manifest last
    raise CommandError(
        f"the pipeline (supervisor pid {pid}) is still draining after {STOP_TIMEOUT:.0f} s; "
        "tradepipe status shows where it is",
        ExitStatus.FAILED,
    )
