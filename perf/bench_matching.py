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

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from functools import cache, partial
from pathlib import Path

import harness
import numpy as np

from stages.matching import MatchingEngine, SymbolSpec
from stages.records import COMMAND_DTYPE, CommandType, EventType, Side, TimeInForce

ROOT = Path(__file__).resolve().parent.parent
MID = 10_000
REJECTED = EventType.REJECTED


@cache
def reference_engine_class() -> type:
    """The pure-Python oracle of the differential tests, ``tests/reference_book.py``.

    ``tests`` is not an installed package, so the module is loaded from its file (it
    imports only the installed ``stages``) rather than by putting the repository on
    ``sys.path``.
    """
    spec = importlib.util.spec_from_file_location(
        "reference_book", ROOT / "tests" / "reference_book.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.ReferenceEngine


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
        engine = reference_engine_class()(specs(symbols))
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


COLUMNS = ("symbols", "orders", "rejected", "M orders/s", "x reference")


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser("matching", __doc__)
    parser.add_argument("--batch", type=int, default=1024, help="commands per process() call")
    parser.add_argument(
        "--no-cold", action="store_true", help="skip the cold compile timing (--smoke does)"
    )
    args = harness.parse(parser, argv)
    sizes = {
        "tradepipe": harness.by_mode(args, smoke=5_000, quick=300_000, full=2_000_000),
        "reference": harness.by_mode(args, smoke=1_000, quick=30_000, full=200_000),
    }

    cold = not (args.no_cold or args.smoke)  # an empty cache compiles for ~10 s
    compile_cold = first_call_seconds(cold=True) if cold else None
    compile_warm = first_call_seconds(cold=False)
    run_engine("tradepipe", mixed_flow(2000, 1), 1, args.batch)  # this process's first call

    results = []
    for symbols in (1, 100):
        streams = {engine: mixed_flow(n, symbols) for engine, n in sizes.items()}
        samples = harness.round_robin(
            {e: partial(run_engine, e, cmds, symbols, args.batch) for e, cmds in streams.items()},
            args.runs,
        )
        for engine, n in sizes.items():
            med = harness.median(seconds for seconds, _ in samples[engine])
            rejected = samples[engine][-1][1]
            results.append({"engine": engine, "symbols": symbols, "orders_per_s": n / med,
                            "orders": n, "rejected": rejected, "seconds_median": med})  # fmt: skip

    rows = []
    for r in results:
        ref = next(
            x for x in results if x["engine"] == "reference" and x["symbols"] == r["symbols"]
        )
        r["x_reference"] = r["orders_per_s"] / ref["orders_per_s"]
        rows.append((r["engine"], str(r["symbols"]), str(r["orders"]),
                     f"{100 * r['rejected'] / r['orders']:.1f}%",
                     f"{r['orders_per_s'] / 1e6:.3f}", f"{r['x_reference']:.1f}x"))  # fmt: skip
    cold_text = "skipped" if compile_cold is None else f"{compile_cold:.2f} s"
    harness.print_table(
        f"matching engine, mixed flow, batches of {args.batch}, median of {args.runs} runs",
        [harness.Column("engine", "<"), *COLUMNS],
        rows,
        [
            f"first call: {cold_text} with an empty numba cache, "
            f"{compile_warm:.2f} s with the cache",
            "targets: >= 5 M orders/s on one book, >= 20x the pure-Python reference",
        ],
    )
    return harness.finish(
        args, {"results": results, "first_call_s": {"cold": compile_cold, "cached": compile_warm}}
    )


if __name__ == "__main__":
    sys.exit(main())
