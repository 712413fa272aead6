"""``tradepipe journal dump|verify|export``: what an operator needs to look inside a journal.

``dump`` prints records as a table with enum names, filtered by sequence range, account and
symbol; ``verify`` checks every checksum and sequence and says the verdict in its exit
status; ``export`` writes JSON lines (or Parquet when pyarrow is installed).

Failures are ``CommandError``s with the statuses of ``pipeline.exitcodes``: a path that is
not a journal directory is a usage error (2), a damaged journal fails (1), a full disk, a
read-only file system or a missing permission is a refusal (4). ``export -o FILE`` writes
under a temporary name beside FILE and renames it into place only when complete, so a
failed export leaves no partial file (and an existing FILE untouched).
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
import numpy as np

from pipeline.exitcodes import REFUSED_ERRNOS, CommandError, ExitStatus
from stages.persistence import export
from stages.persistence.journal_errors import (
    JournalAccessError,
    JournalBusyError,
    JournalCorruptError,
    JournalError,
    JournalFullError,
    JournalLayoutError,
    TornTailWarning,
)
from stages.persistence.journal_reader import JournalReader
from stages.persistence.journal_segments import SEGMENT_SUFFIX
from stages.persistence.journal_verify import verify_journal

#: verify's verdicts, as exit statuses (the rest of ``ExitStatus`` applies as to any command)
EXIT_OK = ExitStatus.OK  # intact
EXIT_CORRUPT = ExitStatus.FAILED  # corrupt before the tail, another layout: recovery would stop
EXIT_TORN = ExitStatus.TORN  # a torn tail recovery would cut off (--repair cuts it now)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "journal",
        help="inspect a journal directory: dump, verify, export",
        description="Inspect a journal directory (the *.tpj segment files a run wrote).",
    )
    actions = parser.add_subparsers(dest="journal_command", metavar="ACTION", required=True)

    dump = actions.add_parser(
        "dump",
        help="print records as a table, with enum names",
        description="Print the journal's records as a table, enum codes spelled out.",
    )
    _range_arguments(dump, "print")
    dump.add_argument(
        "--limit", type=int, default=None, help="print at most this many records (>= 0)"
    )
    dump.set_defaults(func=run_dump)

    verify = actions.add_parser(
        "verify",
        help="check checksums, continuity and the end; exit 0 intact, 3 torn tail, 1 corrupt",
        description=(
            "Check every block's checksum and the sequence continuity of a journal, and that "
            "its end reaches what the writer's durable mark (and the newest snapshot, with "
            "--snapshots) says was durable. The exit status is the verdict: 0 intact, 3 a "
            "torn tail (the last append, never acknowledged; --repair cuts it off), 1 corrupt "
            "or records missing (recovery would stop, or rebuild an older state). 2 means "
            "DIRECTORY is not a journal directory, 4 that the system refused (permission, "
            "read-only file system, a live writer holds the journal)."
        ),
    )
    verify.add_argument("directory", help="journal directory")
    verify.add_argument(
        "--repair", action="store_true", help="cut off a torn tail (what recovery would do)"
    )
    verify.add_argument(
        "--snapshots",
        metavar="DIR",
        help="also check the journal reaches the newest snapshot in DIR (the run's snapshots)",
    )
    verify.set_defaults(func=run_verify)

    exporter = actions.add_parser(
        "export",
        help="write records as JSON lines or Parquet",
        description=(
            "Write the journal's records, one per line as JSON objects (enum codes spelled "
            "out), or as a Parquet file."
        ),
    )
    _range_arguments(exporter, "export")
    exporter.add_argument(
        "--format",
        choices=("jsonl", "parquet"),
        default="jsonl",
        help="jsonl: one JSON object per record (default); parquet: needs pyarrow and -o",
    )
    exporter.add_argument(
        "--output",
        "-o",
        default="-",
        metavar="FILE",
        help="output file, written whole or not at all (default: standard output; jsonl only)",
    )
    exporter.set_defaults(func=run_export)


def _range_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("directory", help="journal directory")
    parser.add_argument(
        "--from", dest="from_seq", type=int, metavar="SEQ", help=f"first sequence to {verb}"
    )
    parser.add_argument(
        "--to", dest="to_seq", type=int, metavar="SEQ", help=f"last sequence to {verb}"
    )
    parser.add_argument(
        "--account", type=int, action="append", help="only this account (repeatable)"
    )
    parser.add_argument("--symbol", type=int, action="append", help="only this symbol (repeatable)")


# --------------------------------------------------------------------------------------------
# what every action checks and maps


def _journal_directory(name: str) -> Path:
    """``name`` as a journal directory, or a usage error saying what it is instead."""
    directory = Path(name)
    if directory.is_dir():
        return directory
    if not directory.exists():
        raise CommandError(f"journal directory {directory} does not exist")
    if directory.name.endswith(SEGMENT_SUFFIX):
        raise CommandError(
            f"{directory} is a journal segment file, not a journal directory: "
            f"name the directory that holds it ({directory.parent})"
        )
    what = "a file" if directory.is_file() else "not a directory"
    raise CommandError(
        f"{directory} is {what}, not a journal directory: name the directory that holds "
        f"the *{SEGMENT_SUFFIX} segment files"
    )


@contextlib.contextmanager
def _journal_errors(directory: Path) -> Iterator[None]:
    """Turn what reading a journal raises into a ``CommandError`` with its status."""
    try:
        yield
    except (JournalCorruptError, JournalLayoutError) as error:
        raise CommandError(str(error), ExitStatus.FAILED) from None
    except JournalError as error:
        raise CommandError(str(error), _journal_error_status(error)) from None
    except BrokenPipeError:
        raise
    except OSError as error:
        raise _refused(f"cannot read journal {directory}", error) from None


def _journal_error_status(error: JournalError) -> ExitStatus:
    """A live writer holding the journal, a full disk, a read-only file system or a missing
    permission is a refusal (4); anything else a failed check (1)."""
    refused = isinstance(error, (JournalBusyError, JournalFullError)) or (
        isinstance(error, JournalAccessError) and error.errno in REFUSED_ERRNOS
    )
    return ExitStatus.REFUSED if refused else ExitStatus.FAILED


def _refused(doing: str, error: OSError) -> CommandError:
    """``doing`` failed: the system refused (permission, full disk, read-only: status 4),
    or the files are not what they should be (a directory for a segment, an I/O error: 1)."""
    if isinstance(error, IsADirectoryError) and error.filename:
        return CommandError(
            f"{doing}: {error.filename} is a directory, not a file: move it out of the way",
            ExitStatus.FAILED,
        )
    status = ExitStatus.REFUSED if error.errno in REFUSED_ERRNOS else ExitStatus.FAILED
    where = f" ({error.filename})" if error.filename and str(error.filename) not in doing else ""
    return CommandError(f"{doing}{where}: {_reason(error)}{_advice(error)}", status)


def _reason(error: OSError) -> str:
    code = errno.errorcode.get(error.errno or 0, "")
    return f"{error.strerror or error}" + (f" ({code})" if code else "")


def _advice(error: OSError) -> str:
    return {
        errno.EROFS: "; remount it read-write, or copy the journal somewhere writable",
        errno.EACCES: "; check the permissions",
        errno.EPERM: "; check the permissions",
        errno.ENOSPC: "; free some space, then retry",
        errno.EDQUOT: "; free some space, then retry",
    }.get(error.errno or 0, "")


def _selected(args: argparse.Namespace, reader: JournalReader) -> Iterator[np.ndarray]:
    names = set(reader.dtype.names or ()) if reader.dtype is not None else set()
    if (args.account and "account" not in names) or (args.symbol and "symbol" not in names):
        raise CommandError("this journal's records have no account/symbol field to filter on")
    for batch in reader.batches(args.from_seq, args.to_seq):
        chosen = export.select(batch, args.account, args.symbol)
        if len(chosen):
            yield chosen


def _check_range(args: argparse.Namespace) -> None:
    if args.from_seq is not None and args.to_seq is not None and args.to_seq < args.from_seq:
        raise CommandError(f"--to {args.to_seq} is before --from {args.from_seq}")


def _print_torn(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        if issubclass(w.category, TornTailWarning):
            print(f"warning: {w.message}", file=sys.stderr)


@contextlib.contextmanager
def _torn_tails_reported() -> Iterator[None]:
    """Print the torn-tail warnings raised inside the block once it ends, failed or not.

    dump and export read through the same reader: an operator should see each torn tail as
    one ``warning:`` line on stderr, before any error message the failure leads to.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TornTailWarning)
        try:
            yield
        finally:
            _print_torn(caught)


class _WriteFailed(CommandError):
    """Writing the output failed (full disk, ...); reading the journal was fine."""


def _write_failed(target: str, error: OSError, removed: str = "") -> _WriteFailed:
    status = ExitStatus.REFUSED if error.errno in REFUSED_ERRNOS else ExitStatus.FAILED
    message = f"writing {target} failed: {_reason(error)}{removed}{_advice(error)}"
    return _WriteFailed(message, status)


def write_stdout(data: bytes) -> None:
    """Write all of ``data`` to standard output's byte stream.

    A buffered stream's ``write`` may write only part when the reader of a pipe goes away;
    the text layer ignores that count (the rest is dropped, silently). Writing the rest
    here makes the next ``write`` raise ``BrokenPipeError`` instead.
    """
    sys.stdout.flush()
    stream = sys.stdout.buffer
    view = memoryview(data)
    while view:
        written = stream.write(view)
        if written is None:  # a non-blocking standard output that would block
            raise BlockingIOError(errno.EAGAIN, "standard output would block")
        view = view[written:]


# --------------------------------------------------------------------------------------------


def run_dump(args: argparse.Namespace) -> int:
    """Print the selected records as an aligned table; exit 1 on a journal error."""
    _check_range(args)
    if args.limit is not None and args.limit < 0:
        raise CommandError(f"--limit {args.limit} is invalid: expected >= 0")
    directory = _journal_directory(args.directory)
    shown = 0
    with _torn_tails_reported(), _journal_errors(directory):
        reader = JournalReader(directory)
        if args.limit != 0:
            shown = _dump_table(args, reader, args.limit)
    print(f"({shown} records)", file=sys.stderr)
    return EXIT_OK


def _dump_table(args: argparse.Namespace, reader: JournalReader, limit: int | None) -> int:
    """Write the table to standard output; return how many records it shows."""
    left = limit
    widths: dict[str, int] | None = None
    shown = 0

    def write(text: str) -> None:
        try:
            write_stdout(text.encode())
        except BrokenPipeError:
            raise  # the reader went away: main ends quietly
        except OSError as error:
            raise _write_failed("standard output", error) from None

    for batch in _selected(args, reader):
        if left is not None:
            batch = batch[:left]
            left -= len(batch)
        cols = export.columns(batch)
        text = {k: [str(v) for v in values] for k, values in cols.items()}
        if widths is None:
            widths = {k: max(len(k), *(len(v) for v in values)) for k, values in text.items()}
            write("  ".join(k.rjust(w) for k, w in widths.items()) + "\n")
        sizes = list(widths.values())
        lines = (
            "  ".join(v.rjust(w) for v, w in zip(row, sizes, strict=True))
            for row in zip(*text.values(), strict=True)
        )
        write("\n".join(lines) + "\n")
        shown += len(batch)
        if left == 0:
            break
    return shown


def run_verify(args: argparse.Namespace) -> int:
    """Check the whole journal; the exit status is the verdict (see EXIT_*)."""
    directory = _journal_directory(args.directory)
    snapshots = None
    if args.snapshots is not None:
        snapshots = Path(args.snapshots).expanduser()
        if not snapshots.is_dir():
            what = "does not exist" if not snapshots.exists() else "is not a directory"
            raise CommandError(f"--snapshots {snapshots} {what}: name the run's snapshot directory")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TornTailWarning)
        try:
            report = verify_journal(directory, repair=args.repair, snapshot_dir=snapshots)
        except (JournalCorruptError, JournalLayoutError) as error:
            _print_torn(caught)
            print(f"CORRUPT: {error}")
            return EXIT_CORRUPT
        except JournalError as error:
            _print_torn(caught)
            raise CommandError(str(error), _journal_error_status(error)) from None
        except OSError as error:
            _print_torn(caught)
            if args.repair:
                raise _refused(
                    f"cannot repair journal {directory} (a torn tail, if any, is still there)",
                    error,
                ) from None
            raise _refused(f"cannot read journal {directory}", error) from None
    if report.segments == 0 and not report.torn:
        print(f"CORRUPT: {report.directory} holds no journal segment (*.tpj) files")
        return EXIT_CORRUPT
    seqs = (
        "no records" if report.first_seq is None else f"seqs {report.first_seq}..{report.last_seq}"
    )
    print(
        f"journal {report.directory}: {report.segments} segment(s), {report.blocks} block(s), "
        f"{report.records} records, {seqs}, {report.bytes} bytes"
    )
    for torn in report.torn:
        print(("REPAIRED: " if torn.truncated else "TORN TAIL: ") + torn.describe())
    for source in report.checked_against:
        print(f"end checked against: {source}")
    for missing in report.missing:
        print(f"MISSING: {missing.describe()}")
    if report.missing:
        print("verdict: records missing (a replay would rebuild an older state)")
        return EXIT_CORRUPT
    if report.torn and not args.repair:
        print("verdict: torn tail (recovery will cut it off; --repair does it now)")
        return EXIT_TORN
    print("verdict: OK" + (" after repair" if report.torn else ""))
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# export


class _Output:
    """Where export writes: standard output, or FILE written whole or not at all.

    A regular (or new) FILE is written as ``.FILE.PID.partial`` beside it and renamed over
    FILE by ``commit``; ``discard`` removes the partial file, so a failed export (a full
    disk, a damaged journal) leaves no half-written output. A FILE that exists and is not a
    regular file (``/dev/null``, a FIFO) is written in place.
    """

    def __init__(self, name: str) -> None:
        self.target = "standard output" if name == "-" else name
        self.path: Path | None = None  # where the bytes go, if not standard output
        self.final: Path | None = None  # what to rename it to once complete
        self._fd = -1
        if name == "-":
            return
        path = Path(name)
        parent = path.parent
        if path.is_dir():
            raise CommandError(f"--output {path} is a directory: name a file to write")
        if not parent.is_dir():
            what = "does not exist" if not parent.exists() else "is not a directory"
            raise CommandError(f"--output {path}: directory {parent} {what}")
        if path.exists() and not path.is_file():
            self.path = path
        else:
            final = Path(os.path.realpath(path))  # through a symbolic link, not over it
            self.path = final.parent / f".{final.name}.{os.getpid()}.partial"
            self.final = final

    def open(self) -> None:
        """Create the output file (nothing to do for standard output)."""
        if self.path is None:
            return
        flags = os.O_WRONLY | os.O_CLOEXEC
        flags |= os.O_CREAT | os.O_TRUNC if self.final is not None else 0
        try:
            self._fd = os.open(self.path, flags, 0o666)
        except OSError as error:
            raise _refused(f"cannot create --output {self.final or self.path}", error) from None

    def write(self, data: bytes) -> None:
        """Write all of ``data``; a failure is a ``_WriteFailed`` (never a partial file)."""
        try:
            if self._fd < 0:
                write_stdout(data)
                return
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except BrokenPipeError:
            raise  # the reader went away: main ends quietly
        except OSError as error:
            raise _write_failed(self.target, error, self._discard_note()) from None

    def commit(self) -> None:
        """Make the written file complete and visible under its name."""
        try:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self.final is not None and self.path is not None:
                os.replace(self.path, self.final)
        except OSError as error:
            raise _write_failed(self.target, error, self._discard_note()) from None

    def _discard_note(self) -> str:
        return "; the partial output was removed" if self.discard() else ""

    def discard(self) -> bool:
        """Close and remove the partial file; True if there was one."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.final is None or self.path is None:
            return False
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


def run_export(args: argparse.Namespace) -> int:
    """Write the selected records as JSON lines (enum names) or Parquet."""
    _check_range(args)
    if args.format == "parquet":
        return _export_parquet(args)
    directory = _journal_directory(args.directory)
    output = _Output(args.output)
    encoder = msgspec.json.Encoder()
    count = 0
    try:
        with _torn_tails_reported(), _journal_errors(directory):
            reader = JournalReader(directory)
            output.open()
            for batch in _selected(args, reader):
                lines = [encoder.encode(row) for row in export.rows(batch)]
                output.write(b"\n".join(lines) + b"\n")
                count += len(lines)
        output.commit()
    except BaseException:
        output.discard()
        raise
    print(f"({count} records exported)", file=sys.stderr)
    return EXIT_OK


def _export_parquet(args: argparse.Namespace) -> int:
    try:
        import pyarrow as pa  # an optional extra: the core never needs it
        import pyarrow.parquet as pq
    except ImportError:
        raise CommandError(
            "--format parquet needs pyarrow, which is not installed "
            "(pip install pyarrow), or use --format jsonl"
        ) from None
    if args.output == "-":
        raise CommandError("--format parquet needs --output FILE")
    directory = _journal_directory(args.directory)
    output = _Output(args.output)
    writer = None
    count = 0
    try:
        with _journal_errors(directory):
            reader = JournalReader(directory)
            for batch in _selected(args, reader):
                table = pa.table(export.columns(batch))
                try:
                    if writer is None:
                        writer = pq.ParquetWriter(str(output.path), table.schema)
                    writer.write_table(table)
                except OSError as error:
                    note = "; the partial output was removed" if output.discard() else ""
                    raise _write_failed(output.target, error, note) from None
                count += len(batch)
            if writer is not None:
                writer.close()
                writer = None
        output.commit()
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        output.discard()
        raise
    print(f"({count} records exported to {args.output})", file=sys.stderr)
    return EXIT_OK
