"""``tradepipe journal dump|verify|export``: what an operator needs to look inside a journal.

``dump`` prints records as a table with enum names, filtered by sequence range, account and
symbol; ``verify`` checks every checksum and sequence and says the verdict in its exit
status; ``export`` writes JSON lines (or Parquet when pyarrow is installed).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import IO

import msgspec
import numpy as np

from stages.persistence import export
from stages.persistence.journal import (
    JournalError,
    JournalReader,
    TornTailWarning,
    verify_journal,
)

#: verify's exit statuses
EXIT_OK = 0
EXIT_CORRUPT = 1  # corrupt before the tail, another layout, unreadable: recovery would stop
EXIT_USAGE = 2
EXIT_TORN = 3  # a torn tail recovery would cut off (run with --repair to cut it now)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "journal", help="inspect a journal directory: dump, verify, export"
    )
    actions = parser.add_subparsers(dest="journal_command", metavar="ACTION", required=True)

    dump = actions.add_parser("dump", help="print records as a table, with enum names")
    _range_arguments(dump)
    dump.add_argument("--limit", type=int, default=None, help="print at most this many records")
    dump.set_defaults(func=run_dump)

    verify = actions.add_parser(
        "verify",
        help="check checksums and sequence continuity; exit 0 intact, 3 torn tail, 1 corrupt",
    )
    verify.add_argument("directory", help="journal directory")
    verify.add_argument(
        "--repair", action="store_true", help="cut off a torn tail (what recovery would do)"
    )
    verify.set_defaults(func=run_verify)

    exporter = actions.add_parser("export", help="write records as JSON lines or Parquet")
    _range_arguments(exporter)
    exporter.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    exporter.add_argument(
        "--output", "-o", default="-", help="output file (default: standard output; jsonl only)"
    )
    exporter.set_defaults(func=run_export)


def _range_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="journal directory")
    parser.add_argument("--from", dest="from_seq", type=int, help="first sequence to show")
    parser.add_argument("--to", dest="to_seq", type=int, help="last sequence to show")
    parser.add_argument(
        "--account", type=int, action="append", help="only this account (repeatable)"
    )
    parser.add_argument("--symbol", type=int, action="append", help="only this symbol (repeatable)")


def _fail(command: str, message: object) -> None:
    print(f"tradepipe journal {command}: {message}", file=sys.stderr)


def _selected(args: argparse.Namespace, reader: JournalReader) -> Iterator[np.ndarray]:
    names = set(reader.dtype.names or ()) if reader.dtype is not None else set()
    if (args.account and "account" not in names) or (args.symbol and "symbol" not in names):
        raise JournalError("this journal's records have no account/symbol field to filter on")
    for batch in reader.batches(args.from_seq, args.to_seq):
        chosen = export.select(batch, args.account, args.symbol)
        if len(chosen):
            yield chosen


def _check_range(args: argparse.Namespace, command: str) -> bool:
    if args.from_seq is not None and args.to_seq is not None and args.to_seq < args.from_seq:
        _fail(command, f"--to {args.to_seq} is before --from {args.from_seq}")
        return False
    return True


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


# --------------------------------------------------------------------------------------------


def run_dump(args: argparse.Namespace) -> int:
    """Print the selected records as an aligned table; exit 1 on a journal error."""
    if not _check_range(args, "dump"):
        return EXIT_USAGE
    if args.limit is not None and args.limit < 0:
        _fail("dump", f"--limit {args.limit} is invalid: expected >= 0")
        return EXIT_USAGE
    left = args.limit
    out = sys.stdout
    widths: dict[str, int] | None = None
    shown = 0
    try:
        with _torn_tails_reported():
            reader = JournalReader(args.directory)
            for batch in _selected(args, reader):
                if left is not None:
                    batch = batch[:left]
                    left -= len(batch)
                cols = export.columns(batch)
                text = {k: [str(v) for v in values] for k, values in cols.items()}
                if widths is None:
                    widths = {k: len(k) for k in text}
                    for k in text:
                        widths[k] = max(widths[k], *(len(v) for v in text[k]))
                    out.write("  ".join(k.rjust(w) for k, w in widths.items()) + "\n")
                sizes = list(widths.values())
                for row in zip(*text.values(), strict=True):
                    cells = (v.rjust(w) for v, w in zip(row, sizes, strict=True))
                    out.write("  ".join(cells) + "\n")
                shown += len(batch)
                if left == 0:
                    break
    except JournalError as error:
        _fail("dump", error)
        return EXIT_CORRUPT
    print(f"({shown} records)", file=sys.stderr)
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    """Check the whole journal; the exit status is the verdict (see EXIT_*)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TornTailWarning)
        try:
            report = verify_journal(args.directory, repair=args.repair)
        except JournalError as error:
            _print_torn(caught)
            print(f"CORRUPT: {error}")
            return EXIT_CORRUPT
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
    if report.torn and not args.repair:
        print("verdict: torn tail (recovery will cut it off; --repair does it now)")
        return EXIT_TORN
    print("verdict: OK" + (" after repair" if report.torn else ""))
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    """Write the selected records as JSON lines (enum names) or Parquet."""
    if not _check_range(args, "export"):
        return EXIT_USAGE
    if args.format == "parquet":
        return _export_parquet(args)
    encoder = msgspec.json.Encoder()
    sink: IO[bytes] = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
    count = 0
    try:
        with _torn_tails_reported():
            reader = JournalReader(args.directory)
            for batch in _selected(args, reader):
                lines = [encoder.encode(row) for row in export.rows(batch)]
                sink.write(b"\n".join(lines) + b"\n")
                count += len(lines)
    except JournalError as error:
        _fail("export", error)
        return EXIT_CORRUPT
    finally:
        sink.flush()
        if sink is not sys.stdout.buffer:
            sink.close()
    print(f"({count} records exported)", file=sys.stderr)
    return EXIT_OK


def _export_parquet(args: argparse.Namespace) -> int:
    try:
        import pyarrow as pa  # an optional extra: the core never needs it
        import pyarrow.parquet as pq
    except ImportError:
        _fail(
            "export",
            "--format parquet needs pyarrow, which is not installed "
            "(pip install pyarrow), or use --format jsonl",
        )
        return EXIT_USAGE
    if args.output == "-":
        _fail("export", "--format parquet needs --output FILE")
        return EXIT_USAGE
    writer = None
    count = 0
    try:
        reader = JournalReader(args.directory)
        for batch in _selected(args, reader):
            table = pa.table(export.columns(batch))
            if writer is None:
                writer = pq.ParquetWriter(args.output, table.schema)
            writer.write_table(table)
            count += len(batch)
    except JournalError as error:
        _fail("export", error)
        return EXIT_CORRUPT
    finally:
        if writer is not None:
            writer.close()
    print(f"({count} records exported to {args.output})", file=sys.stderr)
    return EXIT_OK
