"""Benchmark the market-data builder on the events of the mixed flow, against matching.

``DepthBuilder`` runs in the output stage's release path, once per released batch, so its
cost per event is what matters. The command stream is ``bench_matching.mixed_flow``
(passive limits near the touch, cancels, replaces, sweeping IOCs) on 1 book and on 100
books; it goes through ``MatchingEngine`` once, in batches of ``--batch`` commands, and its
event batches are kept. Timed on those same batches, each the median of ``--runs`` runs
with a fresh builder (top ``--levels`` levels):

* ``build``: ``DepthBuilder.process`` alone (events → messages);
* ``build+encode``: the same plus msgpack encoding of every message, what a publisher does
  before its socket;
* ``matching``: ``MatchingEngine.process`` on the commands that made the events, so the
  builder's cost reads against the stage that feeds it.

``events/s`` counts every event of the batches (BOOK_TOP and REJECTED included, as the
output stage sees them); ``µs/event`` is its inverse.

    python perf/bench_market_data.py --quick --json market_data.json
"""

from __future__ import annotations

import sys
import time
from functools import partial

import harness
import numpy as np
from bench_matching import mixed_flow, specs

from stages.marketdata import DepthBuilder, encode
from stages.matching import MatchingEngine

CASES = ("build", "build+encode", "matching")


def recorded(cmds: np.ndarray, symbols: int, batch: int) -> tuple[list, list]:
    """(command batches, the event batches matching answered them with)."""
    engine = MatchingEngine(specs(symbols), order_capacity=1 << 16)
    parts = [cmds[a : a + batch].copy() for a in range(0, len(cmds), batch)]
    return parts, [engine.process(p.copy()).copy() for p in parts]


def time_build(events: list[np.ndarray], levels: int, with_encode: bool) -> tuple[float, int]:
    """(seconds, messages) for a fresh builder over every batch."""
    builder = DepthBuilder(levels)
    messages = 0
    t0 = time.perf_counter()
    if with_encode:
        for batch in events:
            for message in builder.process(batch):
                encode(message)
                messages += 1
    else:
        for batch in events:
            messages += len(builder.process(batch))
    return time.perf_counter() - t0, messages


def time_matching(parts: list[np.ndarray], symbols: int) -> tuple[float, int]:
    engine = MatchingEngine(specs(symbols), order_capacity=1 << 16)
    work = [p.copy() for p in parts]
    t0 = time.perf_counter()
    for p in work:
        engine.process(p)
    return time.perf_counter() - t0, 0


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser("market_data", __doc__)
    parser.add_argument("--batch", type=int, default=1024, help="commands per matching batch")
    parser.add_argument("--levels", type=int, default=10, help="depth levels published (N)")
    args = harness.parse(parser, argv)
    n = harness.by_mode(args, smoke=3_000, quick=200_000, full=1_000_000)

    results = []
    for symbols in (1, 100):
        parts, events = recorded(mixed_flow(n, symbols), symbols, args.batch)
        n_events = sum(len(e) for e in events)
        time_build(events[:4], args.levels, True)  # warm: first calls outside the timing
        time_matching(parts[:4], symbols)
        samples = harness.round_robin(
            {
                "build": partial(time_build, events, args.levels, False),
                "build+encode": partial(time_build, events, args.levels, True),
                "matching": partial(time_matching, parts, symbols),
            },
            args.runs,
        )
        matching = harness.median(s for s, _ in samples["matching"])
        for case in CASES:
            seconds = harness.median(s for s, _ in samples[case])
            results.append({"case": case, "symbols": symbols, "levels": args.levels,
                            "commands": n, "events": n_events,
                            "messages": samples[case][-1][1],
                            "events_per_s": n_events / seconds,
                            "us_per_event": 1e6 * seconds / n_events,
                            "seconds_median": seconds,
                            "x_matching_time": seconds / matching})  # fmt: skip

    harness.print_table(
        f"market data (DepthBuilder, top {args.levels}) on the mixed flow's events, "
        f"batches of {args.batch} commands, median of {args.runs} runs",
        [
            harness.Column("case", "<"),
            "books",
            "events",
            "messages",
            "M events/s",
            "µs/event",
            "x matching time",
        ],
        [
            (
                r["case"],
                str(r["symbols"]),
                str(r["events"]),
                str(r["messages"]),
                f"{r['events_per_s'] / 1e6:.3f}",
                f"{r['us_per_event']:.3f}",
                f"{r['x_matching_time']:.1f}x",
            )
            for r in results
        ],
        [
            "events/s counts every event matching emitted (BOOK_TOP, REJECTED included);",
            "x matching time: the case's time over matching's on the commands that made them",
        ],
    )
    return harness.finish(args, {"results": results})


if __name__ == "__main__":
    sys.exit(main())
