"""``tradepipe status [--run-dir DIR] [--json]``: what every stage of the running pipeline
is doing, asked of its supervisor through the run directory's control socket.

No pipeline running there (no run directory, no manifest, a dead supervisor) is said in one
line, exit 1. ``--json`` prints the supervisor's ``pipeline_status`` message as JSON.
"""

from __future__ import annotations

import argparse

import msgspec
from rich.console import Console
from rich.table import Table

from pipeline import control_messages as m
from pipeline.config import PipelineConfig
from pipeline.control import PipelineClient
from pipeline.exitcodes import CommandError, ExitStatus

#: seconds to wait for the supervisor, which asks every stage (2 s each at most)
STATUS_TIMEOUT = 10.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status", help="show every stage of the running pipeline (tradepipe run)"
    )
    add_run_dir_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(func=run)


def add_run_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--run-dir DIR``: where a verb finds the running pipeline (its manifest), the same
    default for every verb that watches it (``status``, ``top``)."""
    parser.add_argument(
        "--run-dir",
        metavar="DIR",
        default=PipelineConfig().run_dir,
        help="the pipeline's run directory ([pipeline] run_dir; default: %(default)s)",
    )


def ask(run_dir: str, message: m.Message, timeout: float) -> m.Message:
    """Send ``message`` to the supervisor running in ``run_dir``; its reply. ``Refused``
    becomes a ``CommandError`` (exit 1) with the supervisor's reason."""
    with PipelineClient(run_dir) as client:
        return answered(client.request(message, timeout))


def answered(reply: m.Message) -> m.Message:
    """``reply``, unless it is ``Refused``: then a ``CommandError`` (exit 1) with the
    supervisor's reason (shared by the verbs that keep their own client, ``top``)."""
    if isinstance(reply, m.Refused):
        raise CommandError(f"the pipeline refused: {reply.reason}", ExitStatus.FAILED)
    return reply


def pipeline_status(reply: m.Message) -> m.PipelineStatus:
    """``reply`` to a ``Status`` as the ``PipelineStatus`` it must be, or a
    ``CommandError`` (exit 1) saying what came instead (``status``, ``top``)."""
    if not isinstance(reply, m.PipelineStatus):
        raise CommandError(
            f"the pipeline answered status with {reply.kind!r}, not pipeline_status",
            ExitStatus.FAILED,
        )
    return reply


def run(args: argparse.Namespace) -> int:
    reply = pipeline_status(ask(args.run_dir, m.Status(), STATUS_TIMEOUT))
    if args.json:
        print(msgspec.json.encode(reply).decode())
        return ExitStatus.OK
    table = Table(title=f"pipeline (supervisor pid {reply.supervisor_pid})")
    for column in ("stage", "state", "pid", "core", "CPU %", "records", "batches"):
        table.add_column(column, justify="left" if column in ("stage", "state") else "right")
    for stage in reply.stages:
        table.add_row(
            stage.stage,
            stage.state,
            str(stage.pid),
            "-" if stage.core is None else str(stage.core),
            f"{stage.cpu_pct:.0f}",
            f"{stage.counters.get('records', 0):,}",
            f"{stage.counters.get('batches', 0):,}",
        )
    Console().print(table)
    return ExitStatus.OK
