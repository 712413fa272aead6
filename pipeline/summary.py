"""What ``tradepipe run`` prints at the end, for both runs: one module, so the in-process
run and the pipeline print the same summary and differ only by what the pipeline adds.

``print_report(console, report)`` prints, in order:

1. **run summary**: orders, wall time, throughput, engine and journal time, ingest →
   answer latency, outcomes by kind and reason, journal size and durable seq, snapshots,
   the live state hash, and the pipeline's stage restarts if there were any;
2. **stages** (pipeline only, ``report.stages``): per stage process pid, core, records,
   records/s over the run's wall time, loop busy % and CPU % (user + system CPU of the
   process, when the report has it);
3. **latency by hop** (pipeline only, ``report.hops``): from ingest's stamp to risk,
   matching, the journal and the answer, each as p50 / p99 / p99.9 / max;
4. **recovery checks**: every replay of the journal and whether it rebuilt the live state.

The reports are duck-typed (``pipeline.inprocess.RunReport``,
``pipeline.supervisor.PipelineReport``): what a report lacks (an in-process run has no
stages; a pipeline report from before per-hop latencies has no ``hops``, a stage report
from before ``cpu_seconds`` has no CPU time) is left out, not shown as zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

#: the hops in pipeline order; any others a report carries follow in their own order
HOP_ORDER = ("ingest→risk", "ingest→match", "ingest→durable", "ingest→ack")
PERCENTILES = (50, 99, 99.9)


def print_report(console: Console, report: Any) -> None:
    """Every table the report has data for, in the order of the module's list."""
    print_summary(console, report)
    if getattr(report, "stages", None):
        print_stages(console, report)
    if getattr(report, "hops", None):
        print_hops(console, report.hops)
    print_checks(console, report)


def print_summary(console: Console, report: Any) -> None:
    """The run as a whole (both runs)."""
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
    table.add_row("ingest → answer p50/p99/p99.9", _percentiles(report.latency))
    for label, count in report.outcomes.rows():
        table.add_row(label, f"{count:,}")
    table.add_row("journal", f"{report.journal_bytes / 1e6:.1f} MB")
    table.add_row("  durable up to seq", f"{report.durable_seq:,}")
    table.add_row("snapshots", f"{report.snapshots + 1} (with the initial state)")
    failed = len(getattr(report, "snapshot_failures", ()))
    if failed:
        table.add_row("  [red]not saved[/] (see the warnings)", f"{failed:,}")
    table.add_row("state hash", report.state_hash[:16])
    restarts = getattr(report, "restarts", ())
    if restarts:
        table.add_row("stage restarts", f"{len(restarts):,}")
        for line in restarts:
            table.add_row(f"  {line}", "")
    console.print(table)


def print_stages(console: Console, report: Any) -> None:
    """Per stage process: pid, core, records, records/s, loop busy %, CPU %.

    Rates and percentages are over the run's wall time (``report.seconds``: from every
    stage registered to the end). Busy % is the share of it the stage's loop spent
    handling batches; CPU % the process's user + system CPU time over it, which also
    counts waiting that spins and the work before the loop (compiling kernels), so it
    may exceed busy %.
    """
    stages = list(report.stages.values())
    # 0 or absent: not measured (a report from before the stages reported their CPU time)
    with_cpu = any(getattr(stage, "cpu_seconds", 0) for stage in stages)
    table = Table(title="stages")
    columns = ["stage", "pid", "core", "records", "records/s", "CPU busy %"]
    if with_cpu:
        columns.append("CPU %")
    for column in columns:
        table.add_column(column, justify="left" if column == "stage" else "right")
    seconds = report.seconds or float("inf")
    for stage in stages:
        row = [
            stage.stage,
            str(stage.pid),
            str(stage.core),
            f"{stage.records:,}",
            f"{stage.records / seconds:,.0f}",
            f"{100 * stage.busy_ns / 1e9 / seconds:.0f} %",
        ]
        if with_cpu:
            cpu = getattr(stage, "cpu_seconds", 0)
            row.append(f"{100 * cpu / seconds:.0f} %" if cpu else "—")
        table.add_row(*row)
    console.print(table)


def print_hops(console: Console, hops: Mapping[str, Any]) -> None:
    """One row per hop (an ``HdrHistogram`` of ns): how many, p50 / p99 / p99.9, max."""
    table = Table(title="latency by hop (from ingest's stamp)")
    for column in ("hop", "count", "p50", "p99", "p99.9", "max"):
        table.add_column(column, justify="left" if column == "hop" else "right")
    names = [h for h in HOP_ORDER if h in hops] + [h for h in hops if h not in HOP_ORDER]
    for name in names:
        histogram = hops[name]
        count = histogram.get_total_count()
        if not count:
            table.add_row(name, "0", "—", "—", "—", "—")
            continue
        values = [histogram.get_value_at_percentile(p) for p in PERCENTILES]
        table.add_row(name, f"{count:,}", *(_us(v) for v in values), _us(histogram.get_max_value()))
    console.print(table)


def print_checks(console: Console, report: Any) -> None:
    """Every replay of the journal: where it started, how much it replayed, how long it
    took, and whether it rebuilt the live state (``match``) or not (``DIFFERS``)."""
    table = Table(title="recovery checks")
    for column in ("replay", "from seq", "replayed", "in", "state"):
        table.add_column(column, justify="left" if column == "replay" else "right")
    for name, check in report.checks.items():
        verdict = "[green]match[/]" if check.state_hash == report.state_hash else "[red]DIFFERS[/]"
        table.add_row(
            f"replay ({name})",
            f"{check.from_seq:,}",
            f"{check.replayed:,}",
            f"{check.seconds:.2f} s",
            verdict,
        )
    if not report.checks:
        table.add_row("replay", "", "", "", "[red]none ran[/]")
    console.print(table)


def _percentiles(histogram: Any) -> str:
    return " / ".join(_us(histogram.get_value_at_percentile(p)) for p in PERCENTILES)


def _us(ns: float) -> str:
    """A latency in ns as µs (ms from 10 ms up, where µs digits stop meaning anything)."""
    if ns >= 10_000_000:
        return f"{ns / 1e6:,.0f} ms"
    return f"{ns / 1000:,.0f} µs"
