"""Benchmark the compiled matching engine against the pure-Python reference book.

The flow imitates a busy order book: ~50 % passive limit orders a few ticks from the
touch, ~30 % cancels and replaces of recent orders, ~20 % aggressive limit IOC orders
that sweep 1-5 levels, on 1 book and on 100 books (orders spread uniformly). Every
command counts as one order in the rate. Both engines process the same pre-generated
command stream in batches of ``--batch`` records; each figure is the median of
``--runs`` runs with a fresh engine; the first-call (numba compile or cache load) time is
measured separately and excluded.

    python perf/bench_matching.py --quick --json matching.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stages.matching import MatchingEngine, SymbolSpec  # noqa: E402
from stages.records import COMMAND_DTYPE, CommandType, EventType, Side, TimeInForce  # noqa: E402
from tests.reference_book import ReferenceEngine  # noqa: E402

MID = 10_000
REJECTED = EventType.REJECTED


def mixed_flow(n: int, symbols: int, seed: int = 7) -> np.ndarray:
    """``n`` commands of the mixed flow described in the module docstring.

    Cancels and replaces must hit live orders to be realistic, so the stream is generated
    in chunks that are run through a scratch engine; the next chunk picks its targets
    among the orders still resting (a few may fill within the chunk and be rejected).
    """
    chunk = max(64, 8 * symbols)  # about 64 commands per book between refreshes, or fewer
    rng = np.random.default_rng(seed)
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    cmds["seq"] = np.arange(1, n + 1)
    scratch = MatchingEngine(specs(symbols), emit_book_top=False)
    mids = np.full(symbols, MID, dtype=np.int64)
    u = rng.random(n)
    sym_of = rng.integers(0, symbols, n)
    side_of = rng.integers(0, 2, n)
    away = rng.geometric(0.35, n)  # passive distance from the touch, in ticks
    sweep = rng.integers(1, 6, n)
    qty_of = rng.integers(1, 11, n)
    drift = rng.integers(-1, 2, n)
    next_id = 1
    for start in range(0, n, chunk):
        live: list[list[tuple[int, int]]] = [[] for _ in range(symbols)]  # (id, price)
        for row in scratch.resting_orders():
            live[int(row[0]) - 1].append((int(row[3]), int(row[2])))
        for i in range(start, min(n, start + chunk)):
            s = int(sym_of[i])
            side = int(side_of[i])
            c = cmds[i]
            c["symbol"] = s + 1
            if u[i] < 0.5 or (u[i] < 0.8 and not live[s]):
                px = mids[s] - away[i] if side == Side.BUY else mids[s] + away[i]
                c["kind"], c["order_id"], c["side"], c["price"] = CommandType.NEW, next_id, side, px
                c["qty"] = qty_of[i]
                next_id += 1
            elif u[i] < 0.8:
                oid, opx = live[s].pop(int(rng.integers(0, len(live[s]))))
                c["order_id"] = oid
                if u[i] < 0.65:
                    c["kind"] = CommandType.CANCEL
                else:  # move one tick (or keep the price) with a new size
                    c["kind"], c["price"], c["qty"] = CommandType.REPLACE, opx + drift[i], qty_of[i]
            else:
                px = mids[s] + sweep[i] if side == Side.BUY else mids[s] - sweep[i]
                c["kind"], c["order_id"], c["side"], c["price"] = CommandType.NEW, next_id, side, px
                c["qty"], c["tif"] = 2 * qty_of[i], TimeInForce.IOC
                next_id += 1
                mids[s] += drift[i]
            c["account"] = 1 + (int(c["order_id"]) - 1) % 97
        scratch.process(cmds[start : start + chunk])
    return cmds


def specs(symbols: int) -> list[SymbolSpec]:
    return [SymbolSpec(s + 1) for s in range(symbols)]


def run_engine(kind: str, cmds: np.ndarray, symbols: int, batch: int) -> tuple[float, int]:
    """Seconds to process ``cmds`` in batches with a fresh engine, and rejected commands."""
    if kind == "tradepipe":
        engine = MatchingEngine(specs(symbols), order_capacity=1 << 16)
    else:
        engine = ReferenceEngine(specs(symbols))
    rejected = 0
    t0 = time.perf_counter()
    for a in range(0, len(cmds), batch):
        rejected += int(np.count_nonzero(engine.process(cmds[a : a + batch])["kind"] == REJECTED))
    return time.perf_counter() - t0, rejected


def first_call_seconds(cold: bool) -> float:
    """First MatchingEngine.process call in a fresh interpreter (cold = empty numba cache)."""
    code = (
        "import time, numpy as np\n"
        "t = time.perf_counter()\n"
        "from stages.matching import MatchingEngine, SymbolSpec\n"
        "from stages.records import COMMAND_DTYPE\n"
        "MatchingEngine([SymbolSpec(1)]).process(np.zeros(1, dtype=COMMAND_DTYPE))\n"
        "print(time.perf_counter() - t)\n"
    )
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if cold:
            env["NUMBA_CACHE_DIR"] = tmp
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small streams, finishes < 60 s")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median), >= 3")
    parser.add_argument("--batch", type=int, default=1024, help="commands per process() call")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold compile timing")
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error(f"--runs {args.runs} is too few: the median needs >= 3")
    n_fast = 300_000 if args.quick else 2_000_000
    n_ref = 30_000 if args.quick else 200_000

    compile_cold = None if args.no_cold else first_call_seconds(cold=True)
    compile_warm = first_call_seconds(cold=False)
    run_engine("tradepipe", mixed_flow(2000, 1), 1, args.batch)  # this process's first call

    results = []
    for symbols in (1, 100):
        for engine, n in (("tradepipe", n_fast), ("reference", n_ref)):
            cmds = mixed_flow(n, symbols)
            times = []
            for _ in range(args.runs):
                seconds, rejected = run_engine(engine, cmds, symbols, args.batch)
                times.append(seconds)
            med = statistics.median(times)
            results.append({"engine": engine, "symbols": symbols, "orders_per_s": n / med,
                            "orders": n, "rejected": rejected, "seconds_median": med})  # fmt: skip

    print(f"matching engine, mixed flow, batches of {args.batch}, median of {args.runs} runs")
    print(f"{'engine':<10} {'symbols':>7} {'orders':>10} {'rejected':>9} {'M orders/s':>11} "
          f"{'x reference':>12}")  # fmt: skip
    for r in results:
        ref = next(
            x for x in results if x["engine"] == "reference" and x["symbols"] == r["symbols"]
        )
        r["x_reference"] = r["orders_per_s"] / ref["orders_per_s"]
        print(f"{r['engine']:<10} {r['symbols']:>7} {r['orders']:>10} "
              f"{100 * r['rejected'] / r['orders']:>8.1f}% "
              f"{r['orders_per_s'] / 1e6:>11.3f} {r['x_reference']:>11.1f}x")  # fmt: skip
    cold = "skipped" if compile_cold is None else f"{compile_cold:.2f} s"
    print(f"first call: {cold} with an empty numba cache, {compile_warm:.2f} s with the cache")
    print("targets: >= 5 M orders/s on one book, >= 20x the pure-Python reference")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "first_call_s": {
            "cold": compile_cold, "cached": compile_warm}}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
