"""``tradepipe replay --format lobster|itch50 FILE``: drive the books from a market-data file."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from stages.ingest import feed_replay, lobster


def add_arguments(parser: argparse.ArgumentParser) -> None:
    feeds = parser.add_argument_group("market-data files (--format)")
    feeds.add_argument(
        "--format", choices=("lobster", "itch50"), help="format of FILE (LOBSTER or ITCH 5.0)"
    )
    feeds.add_argument("file", nargs="?", help="LOBSTER message CSV, or ITCH 5.0 binary file")
    feeds.add_argument(
        "--seed-book",
        metavar="ORDERBOOK_FILE",
        help="lobster: seed the book from this orderbook file's first row, replay from message 2",
    )
    feeds.add_argument(
        "--levels", type=int, default=10, help="lobster: levels per output row (default 10)"
    )
    feeds.add_argument(
        "--book-out", metavar="OUT_CSV", help="lobster: write the book after every message here"
    )
    feeds.add_argument(
        "--depth",
        type=int,
        default=5,
        help="itch50: levels of depth printed per symbol at the end (default 5)",
    )
    feeds.add_argument(
        "--symbol",
        action="append",
        metavar="STOCK",
        help="itch50: print depth only for this stock (repeatable; default: every book)",
    )


def selected(args: argparse.Namespace) -> bool:
    return getattr(args, "format", None) is not None


def run_lobster(args: argparse.Namespace) -> int:
    if args.levels < 1:
        print(f"--levels {args.levels} is invalid: expected >= 1", file=sys.stderr)
        return 2
    try:
        messages = lobster.read_messages(args.file)
        seed_row = None
        if args.seed_book:
            book = lobster.read_orderbook(args.seed_book)
            if len(book) == 0:
                print(f"{args.seed_book}: the orderbook file is empty", file=sys.stderr)
                return 2
            seed_row = book[0]
        out = open(args.book_out, "wb") if args.book_out else None  # noqa: SIM115
    except (OSError, lobster.LobsterFormatError) as error:
        print(f"tradepipe replay: {error}", file=sys.stderr)
        return 1
    try:
        result = feed_replay.replay_lobster(messages, args.levels, seed_row, out)
    finally:
        if out is not None:
            out.close()
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
    return 0


def run_itch50(args: argparse.Namespace) -> int:
    if args.depth < 0:
        print(f"--depth {args.depth} is invalid: expected >= 0", file=sys.stderr)
        return 2
    try:
        result = feed_replay.replay_itch(args.file)
    except OSError as error:
        print(f"tradepipe replay: {error}", file=sys.stderr)
        return 1
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
    print(f"  trades in tradepipe's books: {result.tally.trades}")
    _print_rejects(result.tally)
    if result.engine is not None and args.depth:
        wanted = set(args.symbol) if args.symbol else None
        _print_itch_depth(result, args.depth, wanted)
    if result.error is not None:
        print(f"tradepipe replay: {result.error}", file=sys.stderr)
        return 1
    return 0


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


def run(args: argparse.Namespace) -> int:
    if not args.file:
        print(f"tradepipe replay --format {args.format}: FILE is required", file=sys.stderr)
        return 2
    return run_lobster(args) if args.format == "lobster" else run_itch50(args)
