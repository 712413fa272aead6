"""``tradepipe run [CONFIG.toml]``: the main job on embedded defaults, ending with a summary.

By default the supervisor (``pipeline.supervisor``) runs one pinned process per stage over
the shared-memory rings: synthetic load, ingest checks, risk, matching, settlement, a
journal with group-commit fsync, snapshots, and checks that replay the journal into
in-process engines (from the newest snapshot and from the start) and compare the state.
Before it starts, what a dead supervisor left in the run directory (its files, its
rings) is removed, and a live one there is refused. With ``--inprocess`` the whole chain
runs in this one process instead (``pipeline.inprocess``), with the same checks.
Both print the summary of ``pipeline.summary``; the pipeline adds its stages and the
latency of every hop. ``--pipeline`` is accepted for compatibility (it is the default).

Failures are ``CommandError``s with ``pipeline.exitcodes`` statuses: a bad config or option
and directories holding something else are usage errors (2); a journal a live run holds, a
full disk, a read-only file system or a missing permission is a refusal (4); a replay check
whose hash differs fails (1). Ctrl-C ends with 130 and says how far the journal is durable.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import msgspec
from rich.console import Console

from pipeline.config import MAX_ORDERS, RunConfig, load_config
from pipeline.control import check_run_dir, check_run_dir_creatable, clean_run_dir
from pipeline.exitcodes import CommandError, ExitStatus, os_error_status
from pipeline.inprocess import RunInterrupted, prepare_directories, run_in_process
from pipeline.summary import print_report
from pipeline.supervisor import run_pipeline
from stages.persistence.journal_errors import (
    JournalAccessError,
    JournalBusyError,
    JournalError,
    JournalFullError,
    TornTailWarning,
)
from stages.persistence.journal_reader import JournalReader
from stages.persistence.run_files import RunDirectoryError
from stages.persistence.snapshots import SnapshotError, SnapshotWriteError

DESCRIPTION = """\
Run the trading chain under synthetic load with a journal and snapshots, then prove
recovery: the journal is replayed into fresh engines (from the newest snapshot, as a
restart would, and from the start, as an audit) and both states must equal the live one.

By default one pinned process per stage (ingest, risk, matching, persistence, output)
runs over the shared-memory rings under a supervisor, which prints the summary, a table
per stage (core, records/s, CPU) and the latency of every hop. What a dead supervisor
left in the run directory ([pipeline] run_dir) and its rings are removed first; a live
one there is refused (exit 4). Ctrl-C or SIGTERM drains and stops the run (exit 0); a
stage that dies restarts the pipeline from its snapshots and journal, and one that keeps
dying ends the run (exit 1).

With --inprocess the whole chain runs in this one process instead, with the same
snapshots and checks.

Exit status: 0 done and recovered, 1 a replay's state differs or a stage died, 2 a bad
config, option or directory, 4 refused (a live run holds the journal or the run
directory, disk full, read-only, no permission), 130 interrupted (the message says how
far the journal is durable).
"""

FRESH_HELP = (
    "first delete the previous run's files, and only those: in the journal directory its "
    "segments (*.tpj), durable.mark, initial-state.tps and their temp files (writer.lock "
    "stays); in the snapshot directory its snapshots (snapshot-*.tps) and their temp "
    "files. No directory and no other file is ever deleted: a directory holding anything "
    "else is refused (exit 2, naming what is there), and so is a journal a live run has "
    "open (exit 4). Without --fresh a previous run's files are refused (exit 2)."
)


#: columns of the summary when standard output is not a terminal (a file, a pipe, a log):
#: its widest table fits, so no row wraps; a terminal's own width (or $COLUMNS) wins
FILE_WIDTH = 120


class _Console(Console):
    """rich's Console, but a reader that goes away ends the command as in every other one."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(errno.EPIPE, "the reader of standard output went away")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the trading chain under load with a journal, then prove recovery",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "config", nargs="?", help="TOML config (default: the embedded defaults, see README)"
    )
    parser.add_argument(
        "--orders", type=int, help=f"override load.orders (1..{MAX_ORDERS:_})", metavar="N"
    )
    parser.add_argument("--fresh", action="store_true", help=FRESH_HELP)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--inprocess",
        action="store_true",
        help="run the whole chain in this one process instead of the stage processes",
    )
    mode.add_argument(
        "--pipeline",
        action="store_true",
        help="the stage processes under the supervisor: the default, accepted for compatibility",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.orders is not None:
        if not 1 <= args.orders <= MAX_ORDERS:
            raise CommandError(f"--orders {args.orders} is invalid: expected 1..{MAX_ORDERS:_}")
        config = msgspec.structs.replace(
            config, load=msgspec.structs.replace(config.load, orders=args.orders)
        )
    if args.inprocess and config.load.source == "gateway":
        raise CommandError(
            'load.source = "gateway" needs the stage processes: leave out --inprocess '
            "(it runs the synthetic load only)"
        )
    leftovers = [] if args.inprocess else _check_run_dir(config)
    with _run_errors():
        prepare_directories(config, args.fresh)
    to_file = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = _Console(stderr=False, width=FILE_WIDTH if to_file else None)
    symbols = len(config.engine.risk.instruments)
    if config.load.source == "gateway":
        load = (
            f"the order gateway's clients ({config.load.accounts} funded accounts, {symbols} "
            "symbols) through six stage processes, until tradepipe stop or Ctrl-C"
        )
    else:
        how = "in this process" if args.inprocess else "through five stage processes"
        load = (
            f"{config.load.orders:,} synthetic orders from {config.load.accounts} accounts on "
            f"{symbols} symbols {how}, batches of {config.load.batch}"
        )
    console.print(
        f"[bold]tradepipe run[/]: {load}, journal in {config.journal.directory} "
        f"(fsync {config.journal.fsync})"
    )
    if leftovers:
        console.print(
            f"removed what a dead pipeline left: {len(leftovers)} file(s) and ring(s) "
            f"({', '.join(path.name for path in leftovers)})"
        )
    if not args.inprocess:
        return _run_pipeline(console, config)
    done = 0
    try:
        with _warnings_reported(), console.status("running…") as status, _run_errors():

            def progress(count: int, total: int) -> None:
                nonlocal done
                done = count
                if count % (config.load.batch * 64) < config.load.batch:
                    status.update(f"running… {count:,} / {total:,} orders")

            report = run_in_process(config, progress)
    except KeyboardInterrupt as stop:
        # RunInterrupted (the load was running) says how far the journal the writer closed
        # is durable; any other moment: read the journal's end back
        durable = stop.durable_seq if isinstance(stop, RunInterrupted) else None
        raise CommandError(
            f"interrupted after {done:,} of {config.load.orders:,} orders; "
            + durable_note(config, durable),
            ExitStatus.INTERRUPTED,
        ) from None
    print_report(console, report)
    if not report.recovered:
        raise CommandError(
            "a replay of the journal rebuilt another state than the live one (DIFFERS in the "
            "summary): keep the journal and snapshots as they are and report it",
            ExitStatus.FAILED,
        )
    return ExitStatus.OK


def _check_run_dir(config: RunConfig) -> list[Path]:
    """The pipeline's run directory, checked before ``--fresh`` deletes anything: one that
    exists must be private to this user and hold no live supervisor (exit 4), and what a
    dead one left there (files, rings) is removed; one that does not exist must be
    creatable. It is created only when the supervisor starts, so a run refused here
    leaves none behind. Returns what was removed."""
    run_dir = Path(config.pipeline.run_dir).absolute()
    if not (run_dir.exists() or run_dir.is_symlink()):
        check_run_dir_creatable(run_dir)
        return []
    check_run_dir(run_dir)
    return clean_run_dir(run_dir)


def _run_pipeline(console: Console, config: RunConfig) -> int:
    """The stage processes under the supervisor; the summary, the stages, the hops."""

    def warn(line: str) -> None:
        print(line if line.startswith("warning:") else f"warning: {line}", file=sys.stderr)

    with _warnings_reported(), console.status("running the stage processes…"), _run_errors():
        report = run_pipeline(config, on_warning=warn)
    print_report(console, report)
    if report.stopped:
        console.print(
            f"stopped on request after {report.commands:,} commands; "
            + durable_note(config, report.durable_seq)
        )
    if not report.recovered:
        raise CommandError(
            "the stages' state differs from an Engine replay of the journal they wrote "
            "(DIFFERS in the summary): keep the journal as it is and report it",
            ExitStatus.FAILED,
        )
    return ExitStatus.OK


@contextlib.contextmanager
def _warnings_reported() -> Iterator[None]:
    """Print the warnings of the block (a snapshot not saved, a torn tail) once it ends,
    each as one ``warning:`` line on stderr, not as Python's two lines with a source path."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                print(f"warning: {warning.message}", file=sys.stderr)


@contextlib.contextmanager
def _run_errors() -> Iterator[None]:
    """Turn what preparing or running raises into a ``CommandError`` with its status."""
    try:
        yield
    except JournalError as error:
        raise CommandError(str(error), _journal_status(error)) from None
    except SnapshotWriteError as error:  # the initial snapshot: the run cannot start
        status = os_error_status(OSError(error.errno, "")) if error.errno else ExitStatus.FAILED
        raise CommandError(str(error), status) from None
    except SnapshotError as error:
        raise CommandError(str(error), ExitStatus.FAILED) from None
    except BrokenPipeError:
        raise  # the reader went away: main ends quietly
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        raise CommandError(f"{where}{error.strerror or error}", os_error_status(error)) from None


def _journal_status(error: JournalError) -> ExitStatus:
    """Busy, full, read-only, no permission: refused (4); a run directory holding something
    else or an earlier run: usage (2); anything else (a failed check): 1."""
    if isinstance(error, (JournalBusyError, JournalFullError)):
        return ExitStatus.REFUSED
    if isinstance(error, RunDirectoryError):
        return ExitStatus.REFUSED if error.busy else ExitStatus.USAGE
    if isinstance(error, JournalAccessError) and error.errno is not None:
        return os_error_status(OSError(error.errno, ""))
    return ExitStatus.FAILED


def durable_note(config: RunConfig, durable_seq: int | None = None) -> str:
    """How far the journal is on disk: ``durable_seq`` as the writer reported it when it
    closed, or else read back from the journal's newest segment."""
    directory = Path(config.journal.directory).expanduser()
    snapshots = Path(config.snapshots.directory).expanduser()
    ways_on = (
        f"look at it with tradepipe journal verify {directory} and tradepipe replay "
        f"--journal {directory} --snapshots {snapshots}, or start again with --fresh"
    )
    if durable_seq is not None:
        return f"the journal {directory} holds {_held(config, durable_seq)}; {ways_on}"
    if not directory.is_dir():
        return f"nothing was journaled ({directory} does not exist)"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TornTailWarning)
            reader = JournalReader(directory)
            if not reader.segments:
                return f"nothing was journaled ({directory} holds no segment)"
            for _ in reader.batches(reader.segments[-1].first_seq):  # the newest segment only
                pass
            last = reader.last_seq
    except (JournalError, OSError) as error:
        return f"the journal could not be read back ({error}); check it: " + (
            f"tradepipe journal verify {directory}"
        )
    torn = any(issubclass(w.category, TornTailWarning) for w in caught)
    tail = " and a torn last append (never acknowledged)" if torn else ""
    return f"the journal {directory} holds {_held(config, last)}{tail}; {ways_on}"


def _held(config: RunConfig, last: int | None) -> str:
    if not last:
        return "no records"
    if config.journal.fsync == "never":
        return f"records up to seq {last:,}, written but not fsynced (fsync never)"
    return f"records up to seq {last:,}, durable (fsync {config.journal.fsync})"
