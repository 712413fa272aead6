"""What ``tradepipe top`` shows: one frame from two ``PipelineStatus`` samples, no I/O.

A frame is a pure function of the previous sample, the current one and the seconds between
them (``frame``, then ``render`` for rich), so every figure is testable from hand-built
messages without a pipeline. Three tables:

* **stages** (flow order: ingest, risk, matching, persistence, output, then any other
  that answered): state, pid, core, CPU %, records, records/s (the ``records`` counter's
  difference between the two samples over the elapsed time: "-" for the first frame, a
  restarted stage (its pid changed) or a counter that went back), and backlog: the share
  of an input ring the stage has not released yet (its fullest input ring). A stage the
  pipeline has but that did not answer is listed as ``no answer``.
* **rings**: each ring's capacity, published cursor, every consumer's lag and fill:
  ``(published - min over its consumers) / capacity``. Ring positions come from every
  stage's ``StatusReply.rings`` (``<ring>.published``, ``<ring>.<consumer>``,
  ``<ring>.capacity``); stages attached to one ring report it at slightly different
  moments, so the largest report of each position is taken (positions only grow) and a
  fill below 0 is shown as 0.
* **latency**: ingest → ack p50 / p99 (the output stage's ``latency_p50_ns`` /
  ``latency_p99_ns``) and every per-hop pair of counters a stage reports as
  ``hop_<name>_p50_ns`` / ``hop_<name>_p99_ns``, whatever the names. A missing counter, or
  0 (no sample yet), is "-".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.table import Table

from pipeline import control_messages as m
from pipeline.topology import ANSWERS, CHECKED, COMMANDS, EVENTS, ORDERS, STAGES

#: the stages in the order records flow through them (``STAGES`` is the start order:
#: consumers before their producers)
FLOW_ORDER = tuple(reversed(STAGES))
RING_ORDER = (ORDERS, COMMANDS, CHECKED, EVENTS, ANSWERS)
NO_ANSWER = "no answer"
_HOP = re.compile(r"hop_(?P<name>.+)_p(?P<pct>50|99)_ns")


@dataclass(frozen=True)
class StageRow:
    stage: str
    state: str
    pid: int | None = None
    core: int | None = None
    cpu_pct: float | None = None
    records: int | None = None
    rate: float | None = None  # records/s between the two samples
    backlog: tuple[str, float] | None = None  # (ring, share of its capacity) not released


@dataclass(frozen=True)
class RingRow:
    ring: str
    capacity: int | None
    published: int | None
    lags: dict[str, int] = field(default_factory=dict)  # consumer -> published - released
    fill: float | None = None  # (published - slowest consumer) / capacity, 0..1


@dataclass(frozen=True)
class LatencyRow:
    name: str  # "ingest → ack" or a hop's name
    stage: str  # who reports it ("-" if nobody does)
    p50_ns: int | None
    p99_ns: int | None


@dataclass(frozen=True)
class Frame:
    supervisor_pid: int
    stages: list[StageRow]
    rings: list[RingRow]
    latencies: list[LatencyRow]


# --- the figures -----------------------------------------------------------------------------
def frame(previous: m.PipelineStatus | None, current: m.PipelineStatus, elapsed: float) -> Frame:
    """Every figure of one frame; ``elapsed`` seconds passed between the two samples."""
    rings = _ring_positions(current)
    before = {s.stage: s for s in previous.stages} if previous is not None else {}
    answered = {s.stage: s for s in current.stages}
    names = list(FLOW_ORDER) + sorted(set(answered) - set(FLOW_ORDER))
    rows = []
    for name in names:
        reply = answered.get(name)
        if reply is None:
            rows.append(StageRow(name, NO_ANSWER))
            continue
        records = reply.counters.get("records")
        rows.append(
            StageRow(
                name,
                reply.state,
                reply.pid,
                reply.core,
                reply.cpu_pct,
                records,
                _rate(before.get(name), reply, elapsed),
                _backlog(name, rings),
            )
        )
    return Frame(current.supervisor_pid, rows, _ring_rows(rings), _latencies(current))


def _rate(before: m.StatusReply | None, now: m.StatusReply, elapsed: float) -> float | None:
    if before is None or before.pid != now.pid or elapsed <= 0:
        return None  # first sight of this stage, or a new process under its name
    start, end = before.counters.get("records"), now.counters.get("records")
    if start is None or end is None or end < start:
        return None
    return (end - start) / elapsed


@dataclass
class _Ring:
    capacity: int | None = None
    published: int | None = None
    released: dict[str, int] = field(default_factory=dict)  # consumer -> its cursor


def _ring_positions(status: m.PipelineStatus) -> dict[str, _Ring]:
    """Every ring's positions, merged over the stages that report it (largest wins)."""
    rings: dict[str, _Ring] = {}
    for reply in status.stages:
        for key, value in reply.rings.items():
            name, dot, role = key.rpartition(".")
            if not dot or not name:
                continue  # not of the contract: ignored, not fatal
            ring = rings.setdefault(name, _Ring())
            if role == "capacity":
                ring.capacity = _largest(ring.capacity, value)
            elif role == "published":
                ring.published = _largest(ring.published, value)
            else:
                ring.released[role] = _largest(ring.released.get(role), value)
    return dict(sorted(rings.items(), key=lambda item: _ring_order(item[0])))


def _largest(old: int | None, new: int) -> int:
    return new if old is None else max(old, new)


def _ring_order(ring: str) -> tuple[int, str]:
    """Rings in flow order where the topology names them, the rest by name."""
    return (RING_ORDER.index(ring) if ring in RING_ORDER else len(RING_ORDER), ring)


def _share(ring: _Ring, released: int) -> float | None:
    if ring.published is None or not ring.capacity:
        return None
    return min(max((ring.published - released) / ring.capacity, 0.0), 1.0)


def _ring_rows(rings: dict[str, _Ring]) -> list[RingRow]:
    rows = []
    for name, ring in rings.items():
        lags = (
            {c: max(ring.published - r, 0) for c, r in ring.released.items()}
            if ring.published is not None
            else {}
        )
        slowest = min(ring.released.values(), default=None)
        fill = None if slowest is None else _share(ring, slowest)
        rows.append(RingRow(name, ring.capacity, ring.published, lags, fill))
    return rows


def _backlog(stage: str, rings: dict[str, _Ring]) -> tuple[str, float] | None:
    """The stage's fullest input ring: (ring, share of it published but not released)."""
    shares = [
        (share, name)
        for name, ring in rings.items()
        if stage in ring.released and (share := _share(ring, ring.released[stage])) is not None
    ]
    if not shares:
        return None
    share, name = max(shares)
    return name, share


def _latencies(status: m.PipelineStatus) -> list[LatencyRow]:
    ack = next((s for s in status.stages if "latency_p50_ns" in s.counters), None)
    rows = [
        LatencyRow(
            "ingest → ack",
            ack.stage if ack else "-",
            _ns(ack.counters.get("latency_p50_ns")) if ack else None,
            _ns(ack.counters.get("latency_p99_ns")) if ack else None,
        )
    ]
    for reply in _in_flow_order(status.stages):
        hops: dict[str, dict[str, int]] = {}
        for key, value in reply.counters.items():
            if match := _HOP.fullmatch(key):
                hops.setdefault(match["name"], {})[match["pct"]] = value
        for name, pcts in sorted(hops.items()):
            if name == "ingest_to_ack" and ack is not None:
                continue  # the first row
            label = name.replace("_to_", " → ")
            rows.append(LatencyRow(label, reply.stage, _ns(pcts.get("50")), _ns(pcts.get("99"))))
    return rows


def _ns(value: int | None) -> int | None:
    return value if value else None  # 0: the histogram holds no sample yet


def _in_flow_order(stages: list[m.StatusReply]) -> list[m.StatusReply]:
    known = {name: i for i, name in enumerate(FLOW_ORDER)}
    return sorted(stages, key=lambda s: (known.get(s.stage, len(known)), s.stage))


# --- the tables ------------------------------------------------------------------------------
def render(
    previous: m.PipelineStatus | None,
    current: m.PipelineStatus,
    elapsed: float,
    caption: str = "",
) -> RenderableType:
    """The frame as rich tables; ``caption`` goes under the stages (keys, interval)."""
    data = frame(previous, current, elapsed)
    stages = Table(title=f"pipeline (supervisor pid {data.supervisor_pid})", caption=caption)
    for column in ("stage", "state", "pid", "core", "CPU %", "records", "records/s", "backlog"):
        stages.add_column(column, justify="left" if column in ("stage", "state") else "right")
    for row in data.stages:
        stages.add_row(
            row.stage,
            row.state,
            _or_dash(row.pid),
            _or_dash(row.core),
            "-" if row.cpu_pct is None else f"{row.cpu_pct:.0f}",
            "-" if row.records is None else f"{row.records:,}",
            format_rate(row.rate),
            "-" if row.backlog is None else f"{row.backlog[0]} {_percent(row.backlog[1])}",
        )
    parts: list[RenderableType] = [stages]
    if data.rings:
        rings = Table(title="rings")
        for column in ("ring", "capacity", "published", "lag by consumer", "fill"):
            rings.add_column(
                column, justify="left" if column.startswith(("ring", "lag")) else "right"
            )
        for ring in data.rings:
            rings.add_row(
                ring.ring,
                "-" if ring.capacity is None else f"{ring.capacity:,}",
                "-" if ring.published is None else f"{ring.published:,}",
                ", ".join(f"{c} {lag:,}" for c, lag in ring.lags.items()) or "-",
                "-" if ring.fill is None else _percent(ring.fill),
            )
        parts.append(rings)
    latency = Table(title="latency")
    for column in ("path", "stage", "p50", "p99"):
        latency.add_column(column, justify="left" if column in ("path", "stage") else "right")
    for row in data.latencies:
        latency.add_row(row.name, row.stage, format_ns(row.p50_ns), format_ns(row.p99_ns))
    parts.append(latency)
    return Group(*parts)


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %"


def format_rate(rate: float | None) -> str:
    """Records per second, scaled: ``1.25 M/s``, ``830 k/s``, ``12 /s``."""
    if rate is None:
        return "-"
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M/s"
    if rate >= 1e4:
        return f"{rate / 1e3:.0f} k/s"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f} k/s"
    return f"{rate:.0f} /s"


def format_ns(ns: int | None) -> str:
    """A latency in the largest unit it fills, about 3 digits: ``850 ns``, ``12.3 µs``,
    ``4.56 ms``, ``2.10 s``."""
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            value = ns / scale
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f} {unit}"
    return f"{ns} ns"
