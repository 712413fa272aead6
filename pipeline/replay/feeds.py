"""``tradepipe replay --format lobster|itch50 FILE``: drive the books from a market-data file.

FILE may be a file, a gzip file (recognised by its first bytes), a pipe or FIFO, or ``-``
for stdin (``stages.ingest.feedfile``). Every option belongs to one format; an option of
the other format, or of another replay mode, is refused rather than ignored, and so is a
value that would run away (``--levels`` is at most ``MAX_LEVELS``).

Exit statuses (``pipeline.exitcodes``): 0 done; 1 the feed is damaged (the summary of
everything before the damage is printed first); 2 a wrong option or path (a directory, a
device, a missing file or output directory, an unknown ``--symbol``); 4 the system refused
(no permission, disk full: a partial ``--book-out`` file is removed).
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

import numpy as np

from pipeline.exitcodes import CommandError, ExitStatus
from stages import feed_replay
from stages.ingest import feedfile, lobster

#: Largest ``--levels`` / ``--depth``: a LOBSTER row holds 4 numbers per level, so 1000
#: levels are ~40 kB per message already (a million messages, 40 GB).
MAX_LEVELS = 1000
DEFAULT_LEVELS = 10
DEFAULT_DEPTH = 5

#: Options of one format only: dest -> (flag, format).
_FORMAT_OPTIONS = {
    "seed_book": ("--seed-book", "lobster"),
    "levels": ("--levels", "lobster"),
    "book_out": ("--book-out", "lobster"),
    "depth": ("--depth", "itch50"),
    "symbol": ("--symbol", "itch50"),
}
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS, *_DISK_FULL)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    feeds = parser.add_argument_group(
        "market-data files (--format)",
        "FILE may be gzip-compressed (recognised by its first bytes), a pipe or FIFO, or - "
        "for standard input.",
    )
    feeds.add_argument(
        "--format", choices=("lobster", "itch50"), help="format of FILE (LOBSTER or ITCH 5.0)"
    )
    feeds.add_argument(
        "file", nargs="?", help="LOBSTER message CSV, or ITCH 5.0 binary file (- for stdin)"
    )
    feeds.add_argument(
        "--seed-book",
        metavar="ORDERBOOK_FILE",
        help="lobster: seed the book from this orderbook file's first row, replay from message 2",
    )
    feeds.add_argument(
        "--levels",
        type=int,
        help=f"lobster: levels per --book-out row, 1..{MAX_LEVELS} (default {DEFAULT_LEVELS})",
    )
    feeds.add_argument(
        "--book-out",
        metavar="OUT_CSV",
        help="lobster: write the book after every message here (~27 bytes per level per "
        "message); a partial file is removed when writing fails",
    )
    feeds.add_argument(
        "--depth",
        type=int,
        help=f"itch50: levels of depth printed per symbol at the end, 0..{MAX_LEVELS} "
        f"(default {DEFAULT_DEPTH}; 0: none)",
    )
    feeds.add_argument(
        "--symbol",
        action="append",
        metavar="STOCK",
        help="itch50: print depth only for this stock (repeatable; default: every book); "
        "a stock the file does not list is an error",
    )


def selected(args: argparse.Namespace) -> bool:
    """A feed replay is meant when --format, FILE or any feed-only option is given."""
    if getattr(args, "format", None) is not None or getattr(args, "file", None) is not None:
        return True
    return any(getattr(args, dest, None) is not None for dest in _FORMAT_OPTIONS)


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    with _warnings_as_lines():
        if args.format == "lobster":
            return run_lobster(args)
        return run_itch50(args)


def _check_options(args: argparse.Namespace) -> None:
    """Refuse what would be ignored or contradict itself (all USAGE)."""
    given = [flag for dest, (flag, _) in _FORMAT_OPTIONS.items() if getattr(args, dest) is not None]
    if getattr(args, "journal", None) is not None:
        feed = ["--format"] if args.format else []
        feed += ["FILE"] if args.file else []
        raise CommandError(
            f"--journal replays a journal; {_listed(feed + given)} "
            f"{'belongs' if len(feed + given) == 1 else 'belong'} to a market-data replay: "
            "give one or the other"
        )
    if args.format is None:
        if args.file is not None:
            raise CommandError(
                f"FILE {args.file} given without --format: say --format lobster or "
                "--format itch50 (or --journal DIR to replay a journal)"
            )
        flag = given[0]
        fmt = next(f for fl, f in _FORMAT_OPTIONS.values() if fl == flag)
        raise CommandError(
            f"{flag} is an option of --format {fmt} replays: give --format {fmt} FILE"
        )
    if args.file is None:
        what = "a LOBSTER message file" if args.format == "lobster" else "an ITCH 5.0 file"
        raise CommandError(f"--format {args.format} needs FILE ({what}, or - for stdin)")
    for dest, (flag, fmt) in _FORMAT_OPTIONS.items():
        if getattr(args, dest, None) is not None and fmt != args.format:
            raise CommandError(
                f"{flag} is an option of --format {fmt} replays, not of --format {args.format}"
            )
    if args.format == "lobster":
        if args.levels is not None and not args.book_out:
            raise CommandError("--levels sets the rows --book-out writes: give --book-out too")
        levels = DEFAULT_LEVELS if args.levels is None else args.levels
        if not 1 <= levels <= MAX_LEVELS:
            raise CommandError(f"--levels {levels} is out of range: expected 1..{MAX_LEVELS}")
        args.levels = levels
        if args.file == feedfile.STDIN and args.seed_book == feedfile.STDIN:
            raise CommandError("FILE and --seed-book cannot both be - (stdin is read once)")
        if args.book_out:
            _refuse_overwriting_inputs(args.book_out, [args.file, args.seed_book])
    else:
        depth = DEFAULT_DEPTH if args.depth is None else args.depth
        if not 0 <= depth <= MAX_LEVELS:
            raise CommandError(f"--depth {depth} is out of range: expected 0..{MAX_LEVELS}")
        args.depth = depth


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _refuse_overwriting_inputs(out: str, inputs: list[str | None]) -> None:
    for path in inputs:
        if not path or path == feedfile.STDIN:
            continue
        try:
            same = os.path.samefile(out, path)
        except OSError:
            continue
        if same and stat.S_ISREG(os.stat(out).st_mode):
            raise CommandError(f"--book-out {out} is the input file {path}: it would be destroyed")


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Print each Python warning as one ``warning:`` line, without source paths."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


def input_error(error: Exception, path: str | None) -> CommandError:
    """The one-line error for a feed input that could not be read."""
    if isinstance(error, feedfile.FeedInputError):
        return CommandError(str(error), ExitStatus.USAGE)
    if isinstance(error, (lobster.LobsterFormatError, feedfile.CompressedDataError)):
        return CommandError(str(error), ExitStatus.FAILED)
    if isinstance(error, OSError):
        name = error.filename or path
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return CommandError(f"{name}: no such file", ExitStatus.USAGE)
        if error.errno == errno.EISDIR:
            return CommandError(f"{name}: is a directory; expected a feed file", ExitStatus.USAGE)
        status = ExitStatus.REFUSED if error.errno in _REFUSED else ExitStatus.FAILED
        return CommandError(f"{name}: cannot read: {error.strerror or error}", status)
    raise error


INPUT_ERRORS = (
    OSError, feedfile.FeedInputError, feedfile.CompressedDataError, lobster.LobsterFormatError
)  # fmt: skip


def warn_if_empty(file: str, messages: int) -> None:
    if messages == 0:
        print(f"warning: {file} holds no messages (0 bytes, or nothing but blank lines)",
              file=sys.stderr)  # fmt: skip


@contextmanager
def _book_out(path: str) -> Iterator[IO[bytes]]:
    """The --book-out stream; on any failure a regular file created here is removed, and an
    OSError becomes one CommandError line."""
    try:
        out = open(path, "wb")  # noqa: SIM115 - closed below
    except OSError as error:
        raise _output_error(path, error, 0) from None
    regular = stat.S_ISREG(os.fstat(out.fileno()).st_mode)
    try:
        yield out
        out.close()
    except BaseException as error:
        with suppress(OSError):  # the write error says it
            out.close()
        written = os.stat(path).st_size if regular else 0
        if regular:
            os.unlink(path)
        if isinstance(error, OSError):
            raise _output_error(path, error, written, removed=regular) from None
        raise


def _output_error(path: str, error: OSError, written: int, removed: bool = False) -> CommandError:
    gone = "; the partial file was removed" if removed else ""
    if error.errno in _DISK_FULL:
        return CommandError(
            f"--book-out {path}: disk full after {written} bytes{gone}; free space or write "
            "elsewhere",
            ExitStatus.REFUSED,
        )
    if error.errno == errno.ENOENT:
        parent = os.path.dirname(path) or "."
        return CommandError(
            f"--book-out {path}: directory {parent} does not exist", ExitStatus.USAGE
        )
    if error.errno == errno.EISDIR:
        return CommandError(
            f"--book-out {path} is a directory; expected a file to write", ExitStatus.USAGE
        )
    if error.errno == errno.ENOTDIR:
        return CommandError(
            f"--book-out {path}: a part of the path is not a directory", ExitStatus.USAGE
        )
    status = ExitStatus.REFUSED if error.errno in _REFUSED else ExitStatus.FAILED
    return CommandError(f"--book-out {path}: cannot write: {error.strerror or error}{gone}", status)


def run_lobster(args: argparse.Namespace) -> int:
    try:
        current = args.file
        messages = lobster.read_messages(args.file)
        seed_row = None
        if args.seed_book:
            current = args.seed_book
            book = lobster.read_orderbook(args.seed_book)
            if len(book) == 0:
                raise CommandError(f"--seed-book {args.seed_book}: the orderbook file is empty")
            seed_row = book[0]
    except INPUT_ERRORS as error:
        raise input_error(error, current) from None
    if args.book_out:
        with _book_out(args.book_out) as out:
            result = feed_replay.replay_lobster(messages, args.levels, seed_row, out)
    else:
        result = feed_replay.replay_lobster(messages, args.levels, seed_row, None)
    _print_headline("LOBSTER", args.file, result.messages, result.seconds)
    for kind, count in sorted(result.by_type.items()):
        label = lobster.MESSAGE_TYPES.get(kind, "unknown type")
        print(f"  type {kind} ({label}): {count}")
    print(f"  unknown references: {result.unknown_refs}")
    if seed_row is not None:
        print(f"  applied to seeded orders: {result.seeded_applied}")
    print(f"  executions that filled a different order: {result.other_order_fills}")
    print(f"  trades: {result.tally.trades} ({result.tally.traded_qty} shares)")
    _print_rejects(result.tally)
    if args.book_out:
        print(f"  book after every message written to {args.book_out} ({args.levels} levels)")
    warn_if_empty(args.file, len(messages))
    return 0


def run_itch50(args: argparse.Namespace) -> int:
    names = None
    try:
        if args.symbol and feedfile.is_rewindable(args.file):
            names = feed_replay.itch_symbols(args.file)  # refuse a typo before the replay
            _check_symbols(args, names)
        result = feed_replay.replay_itch(args.file, names=names)
    except INPUT_ERRORS as error:
        raise input_error(error, args.file) from None
    _print_headline("ITCH 5.0", args.file, result.messages, result.seconds)
    print("  messages by type: " + " ".join(f"{k}={v}" for k, v in sorted(result.by_type.items())))
    print(f"  commands sent to the books: {result.commands}")
    print(f"  references to orders never added: {result.unknown_refs}")
    if result.duplicate_adds:
        print(f"  adds of an order reference already live (skipped): {result.duplicate_adds}")
    if result.over_executed:
        print(f"  executions/cancels of more shares than open: {result.over_executed}")
    if result.unknown_symbol_adds:
        print(
            f"  adds for a stock locate without a directory message: {result.unknown_symbol_adds}"
        )
    if result.late_directory:
        print(
            f"  stock directory messages after the books were built (stream input; their "
            f"stocks were not replayed): {result.late_directory}"
        )
    print(f"  trades in tradepipe's books: {result.tally.trades}")
    _print_rejects(result.tally)
    if result.error is None and args.symbol:
        _check_symbols(args, result.stock_names)
    if result.engine is not None and args.depth:
        wanted = set(args.symbol) if args.symbol else None
        _print_itch_depth(result, args.depth, wanted)
    if result.error is not None:
        raise CommandError(str(result.error), ExitStatus.FAILED)
    warn_if_empty(args.file, result.messages)
    return 0


def _check_symbols(args: argparse.Namespace, names: dict[int, str]) -> None:
    listed = set(names.values())
    unknown = [s for s in args.symbol if s not in listed]
    if unknown:
        sample = ", ".join(sorted(listed)[:5]) + (", ..." if len(listed) > 5 else "")
        known = f"it lists {len(listed)}: {sample}" if listed else "it lists none"
        raise CommandError(
            f"--symbol {', '.join(unknown)}: no stock directory (R) message of {args.file} "
            f"names it ({known})"
        )


def _print_headline(feed: str, file: str, messages: int, seconds: float) -> None:
    rate = messages / seconds if seconds > 0 else float("inf")
    print(f"{feed} replay of {file}: {messages} messages, {rate:,.0f} messages/s")


def _print_rejects(tally: feed_replay.EventTally) -> None:
    for reason, count in sorted(tally.rejects.items()):
        print(f"  rejected by the engine, {reason}: {count}")


def _print_itch_depth(result: feed_replay.ItchReplayResult, levels: int, wanted) -> None:
    engine = result.engine
    for locate, name in sorted(result.stock_names.items(), key=lambda item: item[1]):
        if wanted is not None and name not in wanted:
            continue
        bids, asks = engine.depth(locate, levels)
        if wanted is None and len(bids) == 0 and len(asks) == 0:
            continue
        halted = " (halted)" if engine.is_halted(locate) else ""
        print(f"{name} (locate {locate}){halted}")
        print(f"  {'bid qty':>10} {'bid':>12} | {'ask':<12} {'ask qty':<10}")
        for lvl in range(max(len(bids), len(asks), 1)):
            bid = _level(bids, lvl)
            ask = _level(asks, lvl)
            print(f"  {bid[1]:>10} {bid[0]:>12} | {ask[0]:<12} {ask[1]:<10}")


def _level(rows: np.ndarray, lvl: int) -> tuple[str, str]:
    if lvl >= len(rows):
        return "", ""
    price, qty = int(rows[lvl, 0]), int(rows[lvl, 1])
    return f"{price / 10000:.4f}", str(qty)
