"""Benchmark the gateway's domain core per request: no sockets, no processes, no rings.

``stages.gateway.Gateway`` in front of the in-process ``Engine``, as the gateway process
drives it, on the mix ``tradepipe load`` sends (55 % passive limits 1..20 ticks off the
mid, 30 % cancels of resting orders, the rest IOCs crossing the mid), two sessions of
``BATCH`` requests per round, each session's requests joined into one batch frame. Per
request, the median over the runs of:

* ``take_in``: ``Gateway.on_frames`` (split, decode, sessions, client order ids, command
  records) and the round's records joined into one batch, as ``GatewayProcess._fit``;
* ``reports``: ``Gateway.on_events_into`` the round's outbox, on the engine's answers
  (execution reports, logs);
* ``market_data``: ``DepthBuilder.process`` on the same answers;
* ``encode``: each session's reports of the round as one frame (``Codec.encode_batch``).

The engine's own time is not counted (the pipeline's stages have their own benches). The
garbage collector is tuned as the gateway process tunes it (``stage.GC_THRESHOLD``). This is
the floor of the gateway process's CPU per request; in the running pipeline, sharing cores
with the other stages and the clients, it is higher (``perf/bench_gateway.py``).

    python perf/bench_gateway_core.py --quick --json gateway_core.json
"""

from __future__ import annotations

import gc
import random
import time

import harness

from pipeline.config import default_engine
from ringbuffer.records import concat_records
from stages.engine import Engine
from stages.gateway import protocol as P
from stages.gateway.codec import Codec
from stages.gateway.commands import records
from stages.gateway.sessions import Gateway, Outbox
from stages.gateway.stage import GC_THRESHOLD
from stages.gateway.symbols import SymbolTable
from stages.ingest.admin import deposit
from stages.ingest.synthetic import Stamper
from stages.marketdata import DepthBuilder

BATCH = 64  # requests per session per round
SESSIONS = (b"session-1", b"session-2")  # accounts 1 and 2
MID = 10_000
PARTS = ("take_in", "reports", "market_data", "encode")
CODEC = Codec.MSGPACK


class Venue:
    """The gateway, the engine and the mix of one run."""

    def __init__(self, seed: int) -> None:
        config = default_engine()
        self.engine = Engine(config)
        self.stamper = Stamper()
        self.gateway = Gateway(
            SymbolTable.from_risk(config.risk), max_accounts=config.risk.max_accounts
        )
        self.depth = DepthBuilder(levels=10)
        self.rng = random.Random(seed)
        self.resting: dict[bytes, list[str]] = {}
        self.n = 0
        assets = [asset.asset for asset in config.risk.assets]
        funding = [deposit(a, x, 10**12) for a in range(1, len(SESSIONS) + 1) for x in assets]
        self.engine.process(self.stamper.stamp(concat_records(funding)))
        for account, identity in enumerate(SESSIONS, 1):
            self.gateway.on_frame(identity, CODEC.encode(P.Logon(account=account)), 0.0)
            self.resting[identity] = []

    def frame(self, identity: bytes) -> bytes:
        """``BATCH`` requests of the mix as one batch frame."""
        rng, resting, frames = self.rng, self.resting[identity], []
        for _ in range(BATCH):
            self.n += 1
            roll, buy = rng.random(), rng.random() < 0.5
            if resting and roll < 0.30:
                cid = resting.pop(rng.randrange(len(resting)))
                message: P.Message = P.Cancel(client_order_id=cid)
            elif roll < 0.85:
                cid = f"p{self.n}"
                offset = rng.randint(1, 20)
                price = MID - offset if buy else MID + offset
                side = "buy" if buy else "sell"
                message = P.NewOrder(cid, "BTC-USD", side, qty=rng.randint(1, 10), price=price)
                resting.append(cid)
            else:
                side, price = ("buy", MID + 5) if buy else ("sell", MID - 5)
                qty = rng.randint(1, 5)
                message = P.NewOrder(f"i{self.n}", "BTC-USD", side, qty, price, tif="ioc")
            frames.append(CODEC.encode(message))
        return CODEC.join(frames)

    def rounds(self, count: int) -> dict[str, float]:
        """``count`` rounds; µs per request of each part."""
        spent = dict.fromkeys(PARTS, 0)
        clock, requests = time.perf_counter_ns, 0
        for _ in range(count):
            frames = [(identity, self.frame(identity)) for identity in SESSIONS]
            t0 = clock()
            steps = []
            for identity, frame in frames:
                steps += self.gateway.on_frames(identity, frame, 1.0)
            commands = records(b"".join([s.packed for s in steps if s.packed]))
            t1 = clock()
            events = self.engine.process(self.stamper.stamp(commands))
            t2 = clock()
            outbox: Outbox = {}
            self.gateway.on_events_into(outbox, events)
            t3 = clock()
            self.depth.process(events)
            t4 = clock()
            for codec, messages in outbox.values():
                codec.encode_batch(messages)
            t5 = clock()
            requests += len(steps)
            for part, ns in zip(PARTS, (t1 - t0, t3 - t2, t4 - t3, t5 - t4), strict=True):
                spent[part] += ns
        return {f"{part}_us": spent[part] / requests / 1e3 for part in PARTS}


def one_run(rounds: int, seed: int) -> dict[str, float]:
    venue = Venue(seed)
    venue.rounds(max(rounds // 10, 1))  # warm: kernels loaded, books filled
    return venue.rounds(rounds)


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser("gateway_core", __doc__, runs=5)
    args = harness.parse(parser, argv)
    rounds = harness.by_mode(args, smoke=20, quick=300, full=1_000)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    samples = harness.round_robin({"core": lambda: one_run(rounds, seed=1)}, args.runs)
    row = harness.median_fields(samples["core"], [f"{part}_us" for part in PARTS])
    row["total_us"] = sum(row[f"{part}_us"] for part in PARTS)
    row["requests"] = rounds * BATCH * len(SESSIONS)
    harness.print_table(
        "gateway core: CPU per request, Gateway in front of the in-process Engine",
        ["take in µs", "reports µs", "market data µs", "encode µs", "total µs"],
        [[f"{row[f'{part}_us']:.1f}" for part in PARTS] + [f"{row['total_us']:.1f}"]],
        [
            f"{BATCH} requests per session per round, {len(SESSIONS)} sessions, "
            f"{row['requests']:,} requests per run; the engine's time not counted",
            f"one core at this cost: {1e6 / row['total_us']:,.0f} requests/s",
        ],
    )
    return harness.finish(args, {"results": [row]})


if __name__ == "__main__":
    raise SystemExit(main())
