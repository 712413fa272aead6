"""Command streams and comparisons the matching tests share (engine against reference book).

``random_stream`` builds realistic-but-nasty command streams, ``magnified`` moves one to
prices and quantities near the engine's bounds, and ``assert_engine_matches_reference``
runs a stream through the compiled engine and ``tests.reference_book`` (exact Python
integers) and requires the same events and books. Test modules import from here, never
from each other.
"""

from __future__ import annotations

import itertools

import numpy as np

from stages.matching import MatchingEngine, SymbolSpec
from stages.matching.symbols import MAX_QTY
from stages.records import COMMAND_DTYPE, CommandType
from tests.reference_book import ReferenceEngine

SPECS = [
    SymbolSpec(1),
    SymbolSpec(
        7, tick_size=5, lot_size=2, min_qty=2, max_qty=40, price_band_low=60, price_band_high=140
    ),
]


def random_stream(seed: int, n: int, odd_rate: float) -> list[tuple]:
    """A realistic-but-nasty command stream: mostly valid orders near a moving mid, the
    ids of earlier orders for cancels/reduces/replaces (sometimes by the wrong account),
    and now and then malformed fields, unknown symbols and ids, admin commands."""
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    owners: dict[int, tuple[int, int, int]] = {}  # order id -> (account, price, qty) entered
    next_id = 1
    for _ in range(n):
        r = rng.random()
        sym = int(rng.choice([1, 1, 7, 7, 3])) if rng.random() < 0.1 else int(rng.choice([1, 7]))
        tick = 5 if sym == 7 else 1
        lot = 2 if sym == 7 else 1
        acct = int(rng.integers(1, 4))
        side = int(rng.integers(0, 2))
        price = int(100 + tick * rng.integers(-4, 5))
        qty = int(lot * rng.choice([1, 1, 2, 3, 5, 8, 25]))
        oid, otype, tif, stp, flags, reason = 0, 0, 0, 0, 0, 0
        if r < 0.55:
            kind = CommandType.NEW
            if owners and rng.random() < 0.05:
                oid = int(rng.choice(list(owners)))  # reuse: duplicate if still open
            else:
                oid = next_id
                next_id += 1
            owners[oid] = (acct, price, qty)
            otype = int(rng.random() < 0.1)
            if otype == 1:
                price = 0 if rng.random() < 0.5 else price
            tif = int(rng.choice([0, 0, 0, 1, 2]))
            stp = int(rng.choice([0, 0, 1, 2, 3, 4]))
            flags = int(rng.random() < 0.1)
        elif r < 0.85:
            kind = int(rng.choice([CommandType.CANCEL, CommandType.REDUCE, CommandType.REPLACE]))
            oid = int(rng.choice(list(owners))) if owners else 1
            known_acct, known_price, known_qty = owners.get(oid, (acct, price, qty))
            if rng.random() < 0.9:
                acct = known_acct
            if kind == CommandType.REDUCE:
                qty = int(lot * rng.integers(1, 4))
            elif rng.random() < 0.5:  # same price: smaller, equal or larger qty
                price = known_price
                qty = max(lot, known_qty + lot * int(rng.integers(-2, 2)))
        else:
            kind = int(rng.choice([CommandType.HALT, CommandType.RESUME, CommandType.RESUME,
                                   CommandType.RESUME, CommandType.KILL_SWITCH,
                                   CommandType.KILL_SWITCH_RELEASE, CommandType.DEPOSIT,
                                   CommandType.WITHDRAW]))  # fmt: skip
            if kind == CommandType.KILL_SWITCH and rng.random() < 0.3:
                acct = 0
        if rng.random() < odd_rate:  # break one field
            field = int(rng.integers(0, 9))
            if field == 0:
                kind = int(rng.choice([0, 5, 99]))
            elif field == 1:
                side = 2
            elif field == 2:
                price = int(rng.choice([-1, 0, price + 1, 10, 500]))
            elif field == 3:
                qty = int(rng.choice([0, -2, qty + 1, 1000]))
            elif field == 4:
                tif, otype = int(rng.integers(0, 4)), int(rng.integers(0, 3))
            elif field == 5:
                stp = 5
            elif field == 6:
                flags = int(rng.choice([1, 2, 3]))
            elif field == 7:
                oid = int(rng.choice([0, -5, 10**6]))
            else:
                reason = int(rng.choice([40, 47]))
        ts = int(rng.integers(0, 2))
        rows.append((0, ts, 0, oid, price, qty, acct, sym, kind, side, otype, tif, stp, flags,
                     reason, 0, (0, 0)))  # fmt: skip
    return rows


def to_commands(rows: list[tuple]) -> np.ndarray:
    cmds = np.array(rows, dtype=COMMAND_DTYPE)
    cmds["seq"] = np.arange(1, len(cmds) + 1)
    return cmds


def comparable(events: np.ndarray) -> np.ndarray:
    out = events.copy()
    out["dt_match"] = 0
    return out


def assert_same_events(got: np.ndarray, want: np.ndarray) -> None:
    got, want = comparable(got), comparable(want)
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w, f"event {i} differs:\n engine    {g}\n reference {w}"
    assert len(got) == len(want), f"{len(got)} events from the engine, {len(want)} expected"


def assert_same_books(engine: MatchingEngine, ref: ReferenceEngine, specs=SPECS) -> None:
    assert engine.open_orders() == ref.open_orders()
    assert engine._debug_live_rows() == ref.open_orders()
    assert [tuple(int(x) for x in r) for r in engine.resting_orders()] == ref.resting_orders()
    for spec in specs:
        bids, asks = engine.depth(spec.symbol, 1000)
        rbids, rasks = ref.depth(spec.symbol, 1000)
        assert [tuple(int(x) for x in r) for r in bids] == rbids
        assert [tuple(int(x) for x in r) for r in asks] == rasks


def assert_engine_matches_reference(
    rows, cuts, capacity=1 << 10, emit_book_top=True, specs=SPECS
) -> None:
    """Same events and books from both engines; the compiled one gets batches cut at ``cuts``."""
    cmds = to_commands(rows)
    engine = MatchingEngine(specs, order_capacity=capacity, emit_book_top=emit_book_top)
    ref = ReferenceEngine(specs, emit_book_top=emit_book_top)
    bounds = sorted({0, len(cmds), *[c % (len(cmds) + 1) for c in cuts]})
    got = [engine.process(cmds[a:b]).copy() for a, b in itertools.pairwise(bounds)]
    got_events = np.concatenate(got) if got else np.zeros(0, dtype=comparable(cmds[:0]).dtype)
    assert_same_events(got_events, ref.process(cmds))
    assert_same_books(engine, ref, specs)


# Near the bounds: prices around PRICE_BASE (a multiple of symbol 7's tick), quantities
# around QTY_BASE (a multiple of its lot) up to MAX_QTY, the largest max_qty; many orders
# of nearly max_qty rest at one level and FOK orders add them up.
QTY_BASE = (MAX_QTY - 1000) // 2 * 2
PRICE_BASES = (1_000, (2**62 // 5) * 5)


def extreme_specs(price_base: int) -> list[SymbolSpec]:
    """SPECS moved to ``price_base`` and QTY_BASE: the same rules, near the bounds."""
    return [
        SymbolSpec(1),  # the default max_qty: MAX_QTY
        SymbolSpec(
            7,
            tick_size=5,
            lot_size=2,
            min_qty=2,
            max_qty=QTY_BASE + 40,
            price_band_low=price_base - 40,
            price_band_high=price_base + 40,
        ),
    ]


def magnified(rows: list[tuple], price_base: int) -> list[tuple]:
    """``random_stream`` rows moved near the bounds (see ``extreme_specs``).

    Positive prices move by ``price_base - 100`` (ticks, bands and crossings keep their
    shape); positive quantities gain QTY_BASE, except reduce-by amounts, which stay small
    so reduces still leave something open.
    """
    out = []
    for row in rows:
        r = list(row)
        price, qty, kind = r[4], r[5], r[8]
        if price > 0:
            r[4] = price + price_base - 100
        if qty > 0 and kind != CommandType.REDUCE:
            r[5] = qty + QTY_BASE
        out.append(tuple(r))
    return out
