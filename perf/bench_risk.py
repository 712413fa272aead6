"""Benchmark the risk engine alone and the whole in-process Engine against matching alone.

The command stream is ``bench_matching.mixed_flow`` on one book (passive limits, cancels,
replaces, sweeping IOCs from 97 funded accounts), so the figures compare with that script's.
Three things are timed on the same stream, in batches of ``--batch``, each the median of
``--runs`` runs with fresh engines (first calls, i.e. numba compile or cache load, excluded):

* risk alone: ``RiskEngine.pre_trade`` over the command batches and ``post_trade`` over the
  event batches matching produced for them (recorded beforehand, so matching is not timed);
  "checks/s" counts commands through the pre-trade pass, "orders/s" commands through both;
* matching alone: ``MatchingEngine.process``;
* Engine: validate + throttle + risk + matching + settlement (``Engine.process``).

    python perf/bench_risk.py --quick --json risk.json
"""

from __future__ import annotations

import sys
import time
from functools import partial

import harness
import numpy as np
from bench_matching import mixed_flow

from stages.engine import Engine, EngineConfig
from stages.matching import MatchingEngine
from stages.records import COMMAND_DTYPE, CommandType
from stages.risk.config import AssetConfig, InstrumentConfig, RiskConfig
from stages.risk.engine import RiskEngine

ACCOUNTS = 97
USD, BTC = 0, 1


def config() -> EngineConfig:
    risk = RiskConfig(
        assets=[AssetConfig(USD, "USD"), AssetConfig(BTC, "BTC")],
        instruments=[
            InstrumentConfig(symbol=1, base=BTC, quote=USD, maker_fee_bps=1, taker_fee_bps=5)
        ],
        max_accounts=128,
        order_capacity=1 << 17,
    )
    return EngineConfig(risk=risk, matching_order_capacity=1 << 16)


def stream(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(funding deposits, the mixed flow) with contiguous seqs from 1."""
    deposits = np.zeros(2 * ACCOUNTS, dtype=COMMAND_DTYPE)
    for i in range(2 * ACCOUNTS):
        d = deposits[i]
        d["seq"], d["kind"], d["account"] = i + 1, CommandType.DEPOSIT, 1 + i // 2
        d["symbol"], d["qty"] = i % 2, 10**15
    flow = mixed_flow(n, 1)
    flow["seq"] += len(deposits)
    return deposits, flow


def batches(flow: np.ndarray, size: int) -> list[np.ndarray]:
    return [flow[a : a + size].copy() for a in range(0, len(flow), size)]


def time_matching(deposits, parts) -> tuple[float, list[np.ndarray]]:
    engine = MatchingEngine(config().symbol_specs(), order_capacity=1 << 16)
    engine.process(deposits.copy())
    work = [p.copy() for p in parts]
    out = []
    t0 = time.perf_counter()
    for p in work:
        out.append(engine.process(p))
    seconds = time.perf_counter() - t0
    return seconds, out


def recorded_events(deposits, parts) -> list[np.ndarray]:
    engine = MatchingEngine(config().symbol_specs(), order_capacity=1 << 16)
    engine.process(deposits.copy())
    return [engine.process(p.copy()).copy() for p in parts]


def time_risk(deposits, parts, events) -> tuple[float, float, int]:
    """(seconds in pre_trade, seconds in pre_trade + post_trade, commands rejected)."""
    risk = RiskEngine(config().risk)
    risk.pre_trade(deposits.copy())
    work = [p.copy() for p in parts]
    pre = 0.0
    rejected = 0
    clock = time.perf_counter
    t_all = clock()
    for cmds, evs in zip(work, events, strict=True):
        t0 = clock()
        rejected += risk.pre_trade(cmds)
        pre += clock() - t0
        risk.post_trade(evs)
    return pre, clock() - t_all, rejected


def time_engine(deposits, parts) -> float:
    engine = Engine(config())
    engine.process(deposits.copy())
    work = [p.copy() for p in parts]
    t0 = time.perf_counter()
    for p in work:
        engine.process(p)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser("risk", __doc__)
    parser.add_argument("--batch", type=int, default=1024, help="commands per call")
    args = harness.parse(parser, argv)
    n = harness.by_mode(args, smoke=5_000, quick=200_000, full=2_000_000)

    deposits, flow = stream(n)
    parts = batches(flow, args.batch)
    events = recorded_events(deposits, parts)
    # first calls (compile / cache load) outside the timed runs
    warm = batches(flow[:2048], args.batch)
    time_risk(deposits, warm, recorded_events(deposits, warm))
    time_engine(deposits, warm)
    time_matching(deposits, warm)

    samples = harness.round_robin(
        {
            "risk": partial(time_risk, deposits, parts, events),
            "matching": lambda: time_matching(deposits, parts)[0],
            "engine": partial(time_engine, deposits, parts),
        },
        args.runs,
    )
    pre, both, rejected_by_run = zip(*samples["risk"], strict=True)
    rejected = rejected_by_run[-1]
    matching = harness.median(samples["matching"])
    engine = harness.median(samples["engine"])
    figures = [
        ("risk pre-trade checks", harness.median(pre)),
        ("risk pre + post-trade", harness.median(both)),
        ("matching alone", matching),
        ("Engine (whole chain)", engine),
    ]
    m_rate = n / matching
    results = []
    for name, seconds in figures:
        rate = n / seconds
        results.append({"what": name, "orders_per_s": rate, "seconds_median": seconds,
                        "x_matching": rate / m_rate, "orders": n})  # fmt: skip
    ratio = engine / matching
    harness.print_table(
        f"risk and Engine, mixed flow on 1 book, {n} commands, batches of {args.batch}, "
        f"median of {args.runs} runs ({rejected} rejected by risk)",
        [harness.Column("what", "<"), "M orders/s", "x matching"],
        [(r["what"], f"{r['orders_per_s'] / 1e6:.3f}", f"{r['x_matching']:.2f}x") for r in results],
        [
            f"Engine takes {ratio:.2f}x the time of matching alone",
            "targets: >= 5 M risk checks/s; the Engine within 2x of matching alone",
        ],
    )
    return harness.finish(
        args, {"results": results, "engine_over_matching": ratio, "rejected": rejected}
    )


if __name__ == "__main__":
    sys.exit(main())
