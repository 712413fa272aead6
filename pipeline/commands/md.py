"""``tradepipe md watch SYMBOL [--levels N] [--once]``: the market-data feed of one symbol
as a live depth ladder (asks above, bids below, best in the middle) with the last trades,
redrawn in place as messages arrive (``pipeline.client.MarketData``: the book is applied
in sequence; a gap shows as "resyncing" until the next snapshot).

``q`` or Ctrl-C quits (exit 0), the terminal left as it was (``tradepipe top``'s keyboard
handling). ``--once`` waits for the symbol's first snapshot (at most ``--wait`` seconds),
prints one frame and exits: for scripts and tests. When standard output is not a
terminal, frames are printed one after another, at most ``--interval`` apart.

Exit statuses: 0; 1 no pipeline / feed running, or no snapshot within ``--wait``; 2 a bad
value (a symbol name with a dot or a space, an id beyond 65535, ``--levels 0``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipeline import gateway_cli as g
from pipeline.client import MarketData
from pipeline.commands.top import _Frames, _keyboard
from pipeline.config import load_config
from pipeline.exitcodes import CommandError, ExitStatus
from stages.marketdata import LocalBook, topic
from stages.records import Side

MAX_LEVELS = 1000
TRADES_SHOWN = 10


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("md", help="market data: tradepipe md watch SYMBOL")
    verbs = parser.add_subparsers(dest="md_command", metavar="VERB", required=True)
    watch = verbs.add_parser(
        "watch", help="a live depth ladder of SYMBOL with the last trades (q quits)"
    )
    watch.add_argument("symbol", metavar="SYMBOL", help="symbol name (BTC-USD) or id")
    watch.add_argument(
        "--levels", type=int, default=10, metavar="N", help="levels per side (default: 10)"
    )
    watch.add_argument("--once", action="store_true", help="print one frame and exit")
    watch.add_argument(
        "--wait", type=float, default=10.0, metavar="S",
        help="seconds to wait for the first snapshot (default: %(default)g)",
    )  # fmt: skip
    watch.add_argument(
        "--interval", type=float, default=0.1, metavar="S",
        help="seconds between redraws at most (default: %(default)g)",
    )  # fmt: skip
    watch.add_argument(
        "--config", metavar="CONFIG.toml",
        help="the pipeline's configuration, for its symbol names (default: the embedded ones)",
    )  # fmt: skip
    g.add_connection_arguments(watch, account=False)
    watch.set_defaults(func=run_watch)


def run_watch(args: argparse.Namespace) -> int:
    symbol = g.symbol(args.symbol)
    try:
        topic(symbol)
    except (ValueError, TypeError) as error:
        raise CommandError(f"SYMBOL {args.symbol!r}: {error}") from None
    if not 1 <= args.levels <= MAX_LEVELS:
        raise CommandError(f"--levels {args.levels} is invalid: expected 1..{MAX_LEVELS}")
    for name in ("wait", "interval"):
        value = getattr(args, name)
        if not (math.isfinite(value) and 0 < value <= 3600):
            raise CommandError(f"--{name} {value:g} is invalid: expected 0 < S <= 3600 seconds")
    names = _names(args)
    options = g.curve(args)
    endpoint = g.endpoint(args, "market_data")
    console = Console()
    with MarketData(endpoint, names=names, **options).subscribe([symbol]) as md:
        book = _first_snapshot(md, symbol, args.wait, endpoint)
        if args.once:
            console.print(render(book, args.symbol, args.levels))
            return ExitStatus.OK
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a live view is left
            _live(md, symbol, args, console)
    return ExitStatus.OK


def _names(args: argparse.Namespace) -> dict[str, int]:
    """The instrument names of the run's configuration (``--config``, else the embedded
    defaults'): the feed may publish a symbol under its name or its id."""
    config = load_config(args.config)  # ConfigError: exit 2
    return {i.name: i.symbol for i in config.engine.risk.instruments if i.name}


def _first_snapshot(md: MarketData, symbol: str | int, wait: float, endpoint: str) -> LocalBook:
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        md.poll(left)
        book = md.book(symbol)
        if book is not None and not book.needs_snapshot:
            return book
    raise CommandError(
        f"no snapshot of {symbol} within {wait:g} s from {endpoint} (is the symbol traded "
        "there, under this name?)",
        ExitStatus.FAILED,
    )


def _live(md: MarketData, symbol: str | int, args: argparse.Namespace, console: Console) -> None:
    caption = "q or Ctrl-C quits"
    display = (
        Live(console=console, auto_refresh=False)
        if console.is_terminal
        else contextlib.nullcontext(_Frames(console))
    )
    with _keyboard() as quit_within, display as live:
        shown = None
        while True:
            book = md.book(symbol)
            state = (book.seq, book.needs_snapshot, book.epoch) if book else None
            if state != shown:
                live.update(render(book, args.symbol, args.levels, caption), refresh=True)
                shown = state
            if quit_within(args.interval):
                return
            for _ in range(10_000):  # what came meanwhile, without waiting
                if md.poll(0) is None:
                    break


def render(book: LocalBook | None, name: str, levels: int, caption: str = "") -> RenderableType:
    """The ladder (asks above, bids below, best in the middle) and the last trades."""
    if book is None:
        return Text(f"{name}: waiting for a snapshot")
    bids, asks = book.depth()
    bids, asks = bids[:levels], asks[:levels]
    state = "resyncing (waiting for a snapshot)" if book.needs_snapshot else "in sync"
    halted = ", HALTED" if book.halted else ""
    ladder = Table(
        title=f"{name} (symbol {book.symbol}): seq {book.seq}, {state}{halted}, gaps {book.gaps}",
        caption=caption or None,
    )
    for column in ("orders", "bid qty", "price", "ask qty", "orders"):
        ladder.add_column(column, justify="right")
    for price, qty, count in reversed(asks):
        ladder.add_row("", "", f"{price:,}", f"{qty:,}", f"{count:,}", style="red")
    if bids and asks:
        ladder.add_row("", "", Text(f"spread {asks[0][0] - bids[0][0]:,}", style="dim"), "", "")
    for price, qty, count in bids:
        ladder.add_row(f"{count:,}", f"{qty:,}", f"{price:,}", "", "", style="green")
    trades = Table(title="last trades")
    for column in ("price", "qty", "aggressor", "cmd seq"):
        trades.add_column(column, justify="right")
    for tick in list(book.last_trades)[-TRADES_SHOWN:][::-1]:
        side = "buy" if tick.side == Side.BUY else "sell"
        trades.add_row(f"{tick.price:,}", f"{tick.qty:,}", side, str(tick.cmd_seq))
    return Group(ladder, trades)
