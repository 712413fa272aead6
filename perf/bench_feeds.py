"""Benchmark the market-feed paths: ITCH 5.0 parse, ITCH replay into books, LOBSTER replay.

Targets (docs/feeds.md): ITCH parse >= 20 M messages/s, ITCH replay into the books >= 3 M
messages/s, LOBSTER replay (with the 10-level book written after every message) >= 1 M
messages/s. For scale: CppTrader (C++) reports 41.5 M / 3.2 M messages/s for ITCH parse /
replay on an i7-4790K; that is a published figure, not measured here.

Peers measured in the same run: a straightforward pure-Python ``struct`` decoder of the
same file (on a prefix, as it is slow) for the parse, and the decode-only rate for the
replays, so the ratios say what the books cost on top of parsing.

Input is synthetic and generated vectorised: orders with a life cycle (add, then delete,
full execution, partial cancel then delete, or replace then delete) over several stocks,
sorted by time. The LOBSTER flow reuses it for one stock; its executions name orders at
any level, so some IOCs sweep better levels and are counted as fills of another order.

Each figure is the median of ``--runs`` runs, taken round-robin over the figures.

Usage: python perf/bench_feeds.py [--quick] [--json PATH] [--runs N]
"""

from __future__ import annotations

import io
import struct
import sys
import tempfile
from functools import partial
from pathlib import Path

import harness
import numpy as np

from stages import feed_replay
from stages.ingest import itch50, lobster

_STOCKS = 8


def _lifecycle(rng: np.random.Generator, orders: int, stocks: int):
    """Per event: time, kind letter, ref, locate, side, shares, price, new ref.

    Every order is added once and ends with exactly one of: D, full E, X then D, U then D
    of the new reference.
    """
    t_add = np.arange(orders, dtype=np.float64) * 10.0
    side = rng.integers(0, 2, orders)
    price = np.where(side == 0, rng.integers(90, 100, orders), rng.integers(101, 111, orders))
    price = price * 10000
    shares = rng.integers(2, 1000, orders)
    loc = rng.integers(1, stocks + 1, orders)
    ref = np.arange(1, orders + 1, dtype=np.int64)
    fate = rng.choice(4, orders, p=[0.6, 0.15, 0.1, 0.15])
    lag1 = t_add + rng.exponential(200.0, orders) + 1
    lag2 = lag1 + rng.exponential(200.0, orders) + 1
    ev = {k: [] for k in ("t", "kind", "ref", "loc", "side", "shares", "price", "new")}

    def put(mask, t, kind, r, sh, pr, new):
        count = int(mask.sum()) if mask.dtype == bool else len(mask)
        ev["t"].append(t[mask])
        ev["kind"].append(np.full(count, ord(kind), dtype=np.uint8))
        ev["ref"].append(r[mask])
        ev["loc"].append(loc[mask])
        ev["side"].append(side[mask])
        ev["shares"].append(sh[mask])
        ev["price"].append(pr[mask])
        ev["new"].append(new[mask])

    every = np.ones(orders, dtype=bool)
    new_ref = ref + orders
    put(every, t_add, "A", ref, shares, price, ref)
    put(fate == 0, lag1, "D", ref, shares, price, ref)
    put(fate == 1, lag1, "E", ref, shares, price, ref)
    put(fate == 2, lag1, "X", ref, shares // 2, price, ref)
    put(fate == 2, lag2, "D", ref, shares, price, ref)
    put(fate == 3, lag1, "U", ref, shares, price, new_ref)
    put(fate == 3, lag2, "D", new_ref, shares, price, new_ref)
    cat = {k: np.concatenate(v) for k, v in ev.items()}
    order = np.argsort(cat["t"], kind="stable")
    return {k: v[order] for k, v in cat.items()}


def make_itch(rng: np.random.Generator, orders: int, stocks: int = _STOCKS) -> bytes:
    """A consistent ITCH 5.0 byte stream (R and H per stock, then the order flow)."""
    ev = _lifecycle(rng, orders, stocks)
    n = len(ev["t"]) + 2 * stocks
    kinds = np.concatenate(
        [np.full(stocks, ord("R")), np.full(stocks, ord("H")), ev["kind"]]
    ).astype(np.uint8)
    lengths = itch50.LENGTH_BY_TYPE_BYTE[kinds] + 2
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    out = np.zeros(int(lengths.sum()), dtype=np.uint8)
    ts = np.arange(n, dtype=np.int64) * 1000
    locs = np.concatenate([np.arange(1, stocks + 1)] * 2 + [ev["loc"]])
    side_char = np.where(ev["side"] == 0, b"B", b"S")
    for kind in np.unique(kinds):
        name = chr(kind)
        where = np.flatnonzero(kinds == kind)
        rec = np.zeros(len(where), dtype=itch50.DTYPES[name])
        rec["type"] = name.encode()
        rec["stock_locate"] = locs[where]
        rec["timestamp_hi"] = ts[where] >> 32
        rec["timestamp_lo"] = ts[where] & 0xFFFFFFFF
        e = where - 2 * stocks  # index into the order flow
        if name == "R":
            rec["stock"] = [f"S{i:04d}".encode() for i in range(1, stocks + 1)]
            rec["round_lot_size"] = 100
        elif name == "H":
            rec["stock"] = [f"S{i:04d}".encode() for i in range(1, stocks + 1)]
            rec["trading_state"] = b"T"
        elif name == "A":
            rec["order_reference_number"] = ev["ref"][e]
            rec["buy_sell_indicator"] = side_char[e]
            rec["shares"] = ev["shares"][e]
            rec["price"] = ev["price"][e]
        elif name == "E":
            rec["order_reference_number"] = ev["ref"][e]
            rec["executed_shares"] = ev["shares"][e]
        elif name == "X":
            rec["order_reference_number"] = ev["ref"][e]
            rec["cancelled_shares"] = ev["shares"][e]
        elif name == "D":
            rec["order_reference_number"] = ev["ref"][e]
        elif name == "U":
            rec["original_order_reference_number"] = ev["ref"][e]
            rec["new_order_reference_number"] = ev["new"][e]
            rec["shares"] = ev["shares"][e]
            rec["price"] = ev["price"][e]
        length = itch50.MESSAGE_LENGTHS[name]
        raw = rec.view(np.uint8).reshape(len(where), length)
        dst = starts[where][:, None] + 2 + np.arange(length)
        out[dst] = raw
        out[starts[where]] = length >> 8
        out[starts[where] + 1] = length & 0xFF
    return out.tobytes()


def make_lobster(rng: np.random.Generator, orders: int) -> np.ndarray:
    """A one-stock LOBSTER message array from the same life cycles (U becomes 3 + 1)."""
    ev = _lifecycle(rng, orders, 1)
    kind_map = {ord("A"): 1, ord("X"): 2, ord("D"): 3, ord("E"): 4, ord("U"): 3}
    kinds = np.vectorize(kind_map.get)(ev["kind"])
    rows = np.zeros(len(kinds), dtype=lobster.MESSAGE_DTYPE)
    rows["time_ns"] = (34200 * 10**9 + ev["t"] * 1000).astype(np.int64)
    rows["type"] = kinds
    rows["order_id"] = ev["ref"]
    rows["size"] = ev["shares"]
    rows["price"] = ev["price"]
    rows["direction"] = np.where(ev["side"] == 0, 1, -1)
    # the replaced order's new id is added at the replace (as LOBSTER would show it)
    u = ev["kind"] == ord("U")
    extra = rows[u].copy()
    extra["type"] = 1
    extra["order_id"] = ev["new"][u]
    merged = np.concatenate([rows, extra])
    order = np.argsort(np.concatenate([ev["t"], ev["t"][u] + 0.5]), kind="stable")
    return merged[order]


def python_struct_parse(data: bytes, limit: int) -> int:
    """Peer: decode with struct, one message at a time (what a plain Python reader does)."""
    formats = {
        "A": struct.Struct(">HH6sQcI8sI"),
        "D": struct.Struct(">HH6sQ"),
        "E": struct.Struct(">HH6sQIQ"),
        "X": struct.Struct(">HH6sQI"),
        "U": struct.Struct(">HH6sQQII"),
    }
    pos = 0
    n = 0
    size = len(data)
    while pos < size and n < limit:
        length = int.from_bytes(data[pos : pos + 2], "big")
        kind = chr(data[pos + 2])
        fmt = formats.get(kind)
        if fmt is not None:
            fmt.unpack_from(data, pos + 3)
        pos += 2 + length
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    args = harness.parse(harness.parser("feeds", __doc__), argv)
    runs = args.runs
    orders = harness.by_mode(args, smoke=2_000, quick=200_000, full=2_000_000)
    rng = np.random.default_rng(1)
    data = make_itch(rng, orders)
    buf = np.frombuffer(data, np.uint8)
    framed = itch50.frame(buf)
    assert framed.status == itch50.FRAME_OK
    n_itch = len(framed.types)
    lob = make_lobster(rng, orders // 2)
    n_lob = len(lob)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.itch"
        path.write_bytes(data)
        feed_replay.replay_itch(path)  # compile everything once
        feed_replay.replay_lobster(lob[:1000], 10, None, io.BytesIO())
        split = itch50.split_by_type(buf, framed)
        assert len(split) == n_itch
        prefix = min(n_itch, 100_000)
        run_number = iter(range(1 << 30))

        def lobster_replay() -> None:
            # a new file per run: overwriting the last run's would time freeing its pages
            with open(Path(tmp) / f"book{next(run_number)}.csv", "wb") as out:
                feed_replay.replay_lobster(lob, 10, None, out)

        cases = {  # figure: (what to time, messages it handles)
            "itch_frame": (lambda: itch50.frame(buf), n_itch),
            "itch_parse": (lambda: itch50.split_by_type(buf, itch50.frame(buf)), n_itch),
            "itch_parse_file": (
                lambda: [c.messages() for c in itch50.iter_chunks(path)],
                n_itch,
            ),
            "python_struct_parse": (lambda: python_struct_parse(data, prefix), prefix),
            "itch_replay": (lambda: feed_replay.replay_itch(path), n_itch),
            "lobster_replay": (lobster_replay, n_lob),
            "lobster_replay_no_output": (
                lambda: feed_replay.replay_lobster(lob, 10, None, None),
                n_lob,
            ),
        }
        samples = harness.round_robin(
            {key: partial(rate_of, fn, messages) for key, (fn, messages) in cases.items()}, runs
        )
        figures = {key: harness.median(rates) for key, rates in samples.items()}

    peer = figures["python_struct_parse"]
    rows = []
    for label, key, target in ROWS:
        rate = figures[key]
        goal = f"{target / 1e6:.0f} M" if target else ""
        mark = "" if target is None else ("ok" if rate >= target else "BELOW")
        rows.append((label, f"{rate / 1e6:.2f}", f"{rate / peer:.0f}x", goal, mark))
    harness.print_table(
        f"feeds benchmark: ITCH {n_itch:,} messages, LOBSTER {n_lob:,} messages, "
        f"median of {runs} runs ({args.mode})",
        [harness.Column("what", "<"), "M msg/s", "vs Python", "target", harness.Column("", "<")],
        rows,
    )
    return harness.finish(args, {"itch_messages": n_itch, "lobster_messages": n_lob, **figures})


def rate_of(fn, messages: int) -> float:
    """Messages per second of one call of ``fn``."""
    return messages / harness.timed(fn)


ROWS = [  # label, figure, target
    ("ITCH framing pass only", "itch_frame", None),
    ("ITCH parse (frame + per-type arrays)", "itch_parse", 20e6),
    ("ITCH parse from file, 64 MiB chunks", "itch_parse_file", 20e6),
    ("peer: pure-Python struct decoder", "python_struct_parse", None),
    ("ITCH replay into books (from file)", "itch_replay", 3e6),
    ("LOBSTER replay + 10-level rows to file", "lobster_replay", 1e6),
    ("LOBSTER replay, no output", "lobster_replay_no_output", None),
]


if __name__ == "__main__":
    sys.exit(main())
