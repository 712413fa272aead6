"""``tradepipe top [--run-dir DIR] [--interval SECONDS] [--once]``: a live view of the
running pipeline, refreshed in place: per stage its state, pid, core, CPU %, records/s and
backlog, every ring's fill, and the latencies the stages measure (``pipeline.top_view``
draws the frames; this module samples, waits and reads the keyboard).

It asks the supervisor for its ``PipelineStatus`` every ``--interval`` seconds, as
``tradepipe status`` does once. ``q`` or Ctrl-C quits (exit 0); the keyboard is read in
cbreak mode only when standard input is a terminal, and the terminal's mode is restored on
every way out. ``--once`` takes two samples ``--interval`` apart and prints one frame (so
it has rates) without touching the terminal: for scripts. No pipeline running: the same
line and exit status as ``status`` (1). The pipeline ending while watched: one line saying
so, exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console, RenderableType
from rich.live import Live

from pipeline import control_messages as m
from pipeline.commands.status import (
    STATUS_TIMEOUT,
    add_run_dir_argument,
    answered,
    pipeline_status,
)
from pipeline.control import ControlTimeout, NoPipelineError, PipelineClient, find_pipeline
from pipeline.exitcodes import CommandError, ExitStatus
from pipeline.top_view import render

#: --interval bounds, seconds: each refresh has the supervisor ask every stage
MIN_INTERVAL, MAX_INTERVAL = 0.1, 3600.0
#: a status request waits this long before checking whether the pipeline still runs (its
#: supervisor stops answering while it writes its report, then removes its manifest), and
#: asks again, up to STATUS_TIMEOUT in all
ANSWER_SLICE = 1.0
QUIT_KEYS = frozenset(b"qQ")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "top",
        help="a live view of the running pipeline: stages, rates, ring fill, latency (q quits)",
    )
    add_run_dir_argument(parser)
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help=f"seconds between refreshes ({MIN_INTERVAL:g}..{MAX_INTERVAL:g}; "
        "default: %(default)g)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="print one frame (two samples --interval apart, for the rates) and exit",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    interval = args.interval
    if not (math.isfinite(interval) and MIN_INTERVAL <= interval <= MAX_INTERVAL):
        raise CommandError(
            f"--interval {interval:g} is invalid: expected {MIN_INTERVAL:g}..{MAX_INTERVAL:g} "
            "seconds"
        )
    console = Console()
    with PipelineClient(args.run_dir) as client:  # none running: NoPipelineError, exit 1
        watch = _Watch(client, args.run_dir)
        try:
            ended = (
                _once(watch, console, interval) if args.once else _live(watch, console, interval)
            )
        except KeyboardInterrupt:
            return ExitStatus.OK  # Ctrl-C is how a live view is left
    if ended:
        console.print(
            f"the pipeline ended (supervisor pid {client.manifest.supervisor_pid})", highlight=False
        )
    return ExitStatus.OK


class _Watch:
    """Samples of one pipeline's status, with the time each was taken."""

    def __init__(self, client: PipelineClient, run_dir: str | Path) -> None:
        self.client = client
        self.run_dir = run_dir
        self.previous: m.PipelineStatus | None = None
        self.current: m.PipelineStatus | None = None
        self.elapsed = 0.0
        self._taken = 0.0

    def sample(self) -> bool:
        """Take the next sample; False once the pipeline has ended (nothing taken)."""
        status = self._ask()
        if status is None:
            return False
        now = time.monotonic()
        self.previous, self.current = self.current, status
        self.elapsed, self._taken = (now - self._taken if self.previous else 0.0), now
        return True

    def render(self, caption: str = "") -> RenderableType:
        assert self.current is not None
        return render(self.previous, self.current, self.elapsed, caption)

    def _ask(self) -> m.PipelineStatus | None:
        deadline = time.monotonic() + STATUS_TIMEOUT
        while self._running():
            left = deadline - time.monotonic()
            if left <= 0:
                raise ControlTimeout(
                    f"the pipeline (supervisor pid {self.client.manifest.supervisor_pid}) did "
                    f"not answer Status within {STATUS_TIMEOUT:g} s"
                )
            try:
                reply = self.client.request(m.Status(), min(ANSWER_SLICE, left))
            except ControlTimeout:
                continue  # still running? then ask again (a late answer is skipped)
            return pipeline_status(answered(reply))
        return None

    def _running(self) -> bool:
        """Whether the pipeline this client reached still runs (not another one since)."""
        try:
            return find_pipeline(self.run_dir) == self.client.manifest
        except NoPipelineError:
            return False


def _once(watch: _Watch, console: Console, interval: float) -> bool:
    """Print one frame; whether the pipeline ended meanwhile."""
    if not watch.sample():
        return True
    time.sleep(interval)
    ended = not watch.sample()
    console.print(watch.render())
    return ended


def _live(watch: _Watch, console: Console, interval: float) -> bool:
    """Refresh in place until q; whether it stopped because the pipeline ended."""
    caption = f"every {interval:g} s; q or Ctrl-C quits"
    if not watch.sample():
        return True
    display = (
        Live(console=console, auto_refresh=False)
        if console.is_terminal
        else contextlib.nullcontext(_Frames(console))
    )
    with _keyboard() as quit_within, display as live:
        live.update(watch.render(caption), refresh=True)
        while not quit_within(interval):
            if not watch.sample():
                return True
            live.update(watch.render(caption), refresh=True)
    return False


class _Frames:
    """``Live.update`` for an output that is not a terminal (a file, a pipe): each frame is
    printed after the last, as ``top -b`` does, instead of drawn over it."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def update(self, renderable: RenderableType, refresh: bool = False) -> None:
        self.console.print(renderable)


@contextlib.contextmanager
def _keyboard() -> Iterator[Callable[[float], bool]]:
    """A function ``quit_within(seconds)``: waits that long, True as soon as q is pressed.

    Standard input is read (in cbreak mode: keys arrive unbuffered, not echoed, Ctrl-C
    still interrupts) only when it is a terminal, whose mode is restored on the way out,
    whatever the way. Otherwise it is left alone and the wait is a plain sleep.
    """
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():

        def sleep(seconds: float) -> bool:
            time.sleep(seconds)
            return False

        yield sleep
        return
    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:

        def quit_within(seconds: float) -> bool:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([fd], [], [], left)
                if ready:
                    keys = os.read(fd, 64)
                    if not keys or QUIT_KEYS.intersection(keys):
                        return True  # q, or the terminal went away
            return False

        yield quit_within
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
