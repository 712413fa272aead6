"""``tradepipe run [CONFIG.toml]``: the main job on embedded defaults, ending with a summary.

Today it runs the whole chain in one process (``pipeline.inprocess``): synthetic load,
ingest checks, risk, matching, settlement, a journal with group-commit fsync, snapshots,
and a recovery check that replays the journal and compares state hashes.
"""

from __future__ import annotations

import argparse
import sys

import msgspec
from rich.console import Console
from rich.table import Table

from pipeline.config import ConfigError, load_config
from pipeline.inprocess import RunReport, prepare_directories, run_in_process
from stages.records import EventType, Reason


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the trading chain under load with a journal, then prove recovery",
        description=__doc__,
    )
    parser.add_argument("config", nargs="?", help="TOML config (default: embedded defaults)")
    parser.add_argument("--orders", type=int, help="override load.orders")
    parser.add_argument(
        "--fresh", action="store_true", help="replace a previous run's journal and snapshots"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=False)
    try:
        config = load_config(args.config)
        if args.orders is not None:
            if args.orders < 1:
                raise ConfigError(f"--orders {args.orders} is invalid: expected >= 1")
            config = msgspec.structs.replace(
                config, load=msgspec.structs.replace(config.load, orders=args.orders)
            )
        prepare_directories(config, args.fresh)
    except (ConfigError, FileExistsError) as error:
        print(f"tradepipe run: {error}", file=sys.stderr)
        return 2
    console.print(
        f"[bold]tradepipe run[/]: {config.load.orders:,} synthetic orders from "
        f"{config.load.accounts} accounts on {len(config.engine.risk.instruments)} symbols, "
        f"batches of {config.load.batch}, journal in {config.journal.directory} "
        f"(fsync {config.journal.fsync})"
    )
    with console.status("running…") as status:

        def progress(done: int, total: int) -> None:
            if done % (config.load.batch * 64) < config.load.batch:
                status.update(f"running… {done:,} / {total:,} orders")

        report = run_in_process(config, progress)
    print_summary(console, report)
    return 0 if report.recovered else 1


def print_summary(console: Console, report: RunReport) -> None:
    rate = report.commands / report.seconds if report.seconds else 0.0
    table = Table(title="run summary", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    table.add_row("orders processed", f"{report.commands:,}")
    table.add_row("wall time", f"{report.seconds:.2f} s")
    table.add_row("throughput, end to end", f"{rate / 1e6:.2f} M orders/s")
    engine_rate = report.commands / report.engine_seconds if report.engine_seconds else 0.0
    table.add_row("  engine alone", f"{engine_rate / 1e6:.2f} M orders/s")
    table.add_row("  journal append + fsync", f"{report.journal_seconds:.2f} s")
    percentiles = (report.latency.get_value_at_percentile(p) / 1000 for p in (50, 99, 99.9))
    table.add_row("ingest → answer p50/p99/p99.9", " / ".join(f"{v:.0f} µs" for v in percentiles))
    for kind in EventType:
        count = int(report.events_by_kind[kind])
        if count:
            table.add_row(f"events: {kind.name.lower()}", f"{count:,}")
    reasons = (("rejected", report.rejects_by_reason), ("cancelled", report.cancels_by_reason))
    for label, counts in reasons:
        for reason in counts.nonzero()[0]:
            name = Reason(int(reason)).name.lower()
            table.add_row(f"  {label}: {name}", f"{int(counts[reason]):,}")
    table.add_row("journal", f"{report.journal_bytes / 1e6:.1f} MB")
    table.add_row("  durable up to seq", f"{report.durable_seq:,}")
    table.add_row("snapshots", f"{report.snapshots + 1} (with the initial state)")
    table.add_row("state hash", report.state_hash[:16])
    for name, check in report.checks.items():
        verdict = "[green]match[/]" if check.state_hash == report.state_hash else "[red]DIFFERS[/]"
        table.add_row(
            f"replay ({name})",
            f"seq {check.from_seq:,} + {check.replayed:,} in {check.seconds:.2f} s: {verdict}",
        )
    console.print(table)
