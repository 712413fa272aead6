"""The matching engine: one price-time order book per symbol behind a batch API.

``MatchingEngine`` is the in-process domain core of the matching stage (tests, backtests,
replay tools and the stage process all use it). It owns the preallocated state arrays of
the compiled core (``book.run_batch`` and the modules it calls), grows them between
commands when they fill up, and turns the core's canonical order export
(``export.py``) into a state hash and a snapshot. It launches nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Sequence

import msgspec
import numpy as np

from ringbuffer.records import copy_records
from stages.record_words import command_words, event_words
from stages.records import COMMAND_DTYPE, EVENT_DTYPE
from stages.snapshot_body import decode_body

from .book import run_batch
from .events import TOPS_PER_BOOK
from .export import export_orders, import_orders
from .layout import (
    B_BAND_HI,
    B_BAND_LO,
    B_HALTED,
    B_LOT,
    B_MAX,
    B_MIN,
    B_NLEVELS,
    B_SYMBOL,
    B_TICK,
    BK_WIDTH,
    C_HTCOUNT,
    C_LFREE,
    C_OFREE,
    C_OPEN,
    CTR_WIDTH,
    EXPORT_WIDTH,
    L_COUNT,
    L_PRICE,
    L_QTY,
    LV_WIDTH,
    O_ID,
    ORD_WIDTH,
    ST_DONE,
    ST_GROW_HASH,
    ST_GROW_LEVELS,
    ST_GROW_ORDERS,
    ST_GROW_SIDES,
    ST_OUT_FULL,
    X_BOOK,
    X_PRICE,
    X_SIDE,
)
from .order_pool import rebuild_index
from .symbols import MAX_ORDER_CAPACITY, SymbolSpec

SNAPSHOT_FORMAT = "tradepipe.matching"
SNAPSHOT_VERSION = 1


class EventBufferFull(BufferError):
    """``process_into`` ran out of room in the caller's event buffer.

    The engine state reflects exactly the first ``commands_done`` commands, whose events are
    the first ``events_written`` records of the buffer: resume with
    ``commands[commands_done:]`` and a buffer of at least ``events_needed`` records.
    """

    def __init__(self, commands_done: int, events_written: int, events_needed: int, size: int):
        super().__init__(
            f"event buffer of {size} records is too small: command {commands_done} may emit "
            f"up to {events_needed} events but only {size - events_written} slots are left; "
            f"resume with commands[{commands_done}:] and a buffer of >= {events_needed} records"
        )
        self.commands_done = commands_done
        self.events_written = events_written
        self.events_needed = events_needed


class OrderPoolFull(RuntimeError):
    """The engine holds ``MAX_ORDER_CAPACITY`` orders and a command needs one more row.

    The state reflects exactly the commands before ``commands_done``; nothing of that one
    was applied. The ceiling keeps every level total within int64 (``symbols.MAX_QTY``).
    """

    def __init__(self, commands_done: int) -> None:
        super().__init__(
            f"the matching engine holds {MAX_ORDER_CAPACITY} orders, its maximum "
            f"(stages.matching.symbols.MAX_ORDER_CAPACITY): command {commands_done} and the "
            "later ones were not applied; cancel orders (or shard the symbols) first"
        )
        self.commands_done = commands_done


class _SnapshotBody(msgspec.Struct, frozen=True):
    format: str
    version: int
    order_capacity: int
    emit_book_top: bool
    symbols: list[SymbolSpec]
    halted: list[int]
    orders: bytes  # export_orders rows, int64 little-endian, EXPORT_WIDTH per row


class MatchingEngine:
    """Deterministic price-time matching over command batches (see ``docs/matching.md``)."""

    def __init__(
        self,
        symbols: Sequence[SymbolSpec],
        order_capacity: int = 1 << 16,
        emit_book_top: bool = True,
    ) -> None:
        specs = sorted(symbols, key=lambda s: s.symbol)
        if not specs:
            raise ValueError("MatchingEngine needs at least one SymbolSpec, got none")
        for a, b in itertools.pairwise(specs):
            if a.symbol == b.symbol:
                raise ValueError(
                    f"symbol {a.symbol} is configured twice: symbol ids must be unique"
                )
        if not 1 <= order_capacity <= MAX_ORDER_CAPACITY:
            raise ValueError(
                f"order_capacity = {order_capacity} is invalid: expected 1..{MAX_ORDER_CAPACITY} "
                "(2**28, the most orders an engine holds)"
            )
        self._specs = tuple(specs)
        self._order_capacity = int(order_capacity)
        self._emit_book_top = bool(emit_book_top)
        nb = len(specs)
        # the state arrays of the compiled core (layout.py: PriceLevels, OrderPool)
        self._book_of_symbol = np.full(1 << 16, -1, dtype=np.int64)
        self._books = np.zeros((nb, BK_WIDTH), dtype=np.int64)
        for i, s in enumerate(specs):
            self._book_of_symbol[s.symbol] = i
            self._books[i, B_TICK] = s.tick_size
            self._books[i, B_LOT] = s.lot_size
            self._books[i, B_MIN] = s.min_qty
            self._books[i, B_MAX] = s.max_qty
            self._books[i, B_BAND_LO] = s.price_band_low
            self._books[i, B_BAND_HI] = s.price_band_high
            self._books[i, B_SYMBOL] = s.symbol
        side_capacity = 64
        self._side_keys = np.zeros((2 * nb, side_capacity), dtype=np.int64)
        self._side_levels = np.zeros((2 * nb, side_capacity), dtype=np.int64)
        self._counters = np.zeros(CTR_WIDTH, dtype=np.int64)
        self._order_rows = np.zeros((0, ORD_WIDTH), dtype=np.int64)
        self._order_free = np.zeros(0, dtype=np.int64)
        self._level_rows = np.zeros((0, LV_WIDTH), dtype=np.int64)
        self._level_free = np.zeros(0, dtype=np.int64)
        self._grow_orders(self._order_capacity)
        self._grow_levels(max(64, self._order_capacity // 4))
        # sized by use, not capacity: a small table stays in cache; it doubles at half load
        self._order_index = np.zeros((1024, 2), dtype=np.int64)
        self._tops = np.zeros(TOPS_PER_BOOK * nb, dtype=np.int64)  # scratch of save_tops
        self._events = np.zeros(4096, dtype=EVENT_DTYPE)
        self._events_end = 0  # events of the last process() call end here

    # ------------------------------------------------------------------ batch processing
    def process(self, commands: np.ndarray, append: bool = False) -> np.ndarray:
        """Process a batch of COMMAND_DTYPE records in order; return the EVENT_DTYPE records
        produced (a view of an internal buffer, valid until the next call).

        With ``append`` the events follow those of the previous call in the buffer and the
        view covers both calls (a caller splitting a batch gets one array, no copies).
        """
        cw = self._command_words(commands)
        t0 = time.perf_counter_ns()
        i = 0
        pos = self._events_end if append else 0
        while True:
            ew = event_words(self._events)
            i, pos, status, need = self._run(cw, i, ew, pos, t0)
            if status == ST_DONE:
                self._events_end = pos
                return self._events[:pos]
            if status == ST_OUT_FULL:
                grown = np.zeros(max(2 * len(self._events), pos + need), dtype=EVENT_DTYPE)
                copy_records(grown[:pos], self._events[:pos])
                self._events = grown
            else:
                self._grow(status, i)

    def process_into(self, commands: np.ndarray, out: np.ndarray) -> int:
        """HOT. Same as ``process``, writing into ``out``; returns the number of events.

        Pools, levels and the hash table grow between commands when needed. ``out`` is the
        caller's (e.g. a ring claim) and cannot grow: if a command might not fit, nothing of
        it is applied and ``EventBufferFull`` says where to resume. A buffer of
        ``2 * open_orders() + 8 * len(commands) + 2 * symbols`` records always suffices.
        """
        if out.dtype != EVENT_DTYPE or not out.flags.c_contiguous:
            raise TypeError(
                f"out must be a C-contiguous EVENT_DTYPE array, got dtype {out.dtype} "
                f"(contiguous={out.flags.c_contiguous})"
            )
        cw = self._command_words(commands)
        ew = event_words(out)
        t0 = time.perf_counter_ns()
        i = pos = 0
        while True:
            i, pos, status, need = self._run(cw, i, ew, pos, t0)
            if status == ST_DONE:
                return pos
            if status == ST_OUT_FULL:
                raise EventBufferFull(i, pos, need, len(out))
            self._grow(status, i)

    def _run(self, cw: np.ndarray, start: int, ew: np.ndarray, pos: int, t0: int):
        return run_batch(
            cw, start, ew, pos, t0, self._emit_book_top, self._book_of_symbol, self._books,
            self._side_keys, self._side_levels, self._level_rows, self._level_free,
            self._order_rows, self._order_free, self._order_index, self._counters, self._tops,
        )  # fmt: skip

    @staticmethod
    def _command_words(commands: np.ndarray) -> np.ndarray:
        if commands.dtype != COMMAND_DTYPE:
            raise TypeError(f"commands must be a COMMAND_DTYPE array, got dtype {commands.dtype}")
        return command_words(np.ascontiguousarray(commands).reshape(-1))

    # ------------------------------------------------------------------ growth (cold path)
    def _grow(self, status: int, at: int = 0) -> None:
        if status == ST_GROW_ORDERS:
            held = len(self._order_rows)
            extra = min(max(1024, held), MAX_ORDER_CAPACITY - held)
            if extra <= 0:
                raise OrderPoolFull(at)
            self._grow_orders(extra)
        elif status == ST_GROW_LEVELS:
            self._grow_levels(max(64, len(self._level_rows)))
        elif status == ST_GROW_SIDES:
            cap = self._side_keys.shape[1]
            for name in ("_side_keys", "_side_levels"):
                old = getattr(self, name)
                new = np.zeros((old.shape[0], 2 * cap), dtype=np.int64)
                new[:, :cap] = old
                setattr(self, name, new)
        elif status == ST_GROW_HASH:
            self._order_index = np.zeros((2 * len(self._order_index), 2), dtype=np.int64)
            rebuild_index(self._order_rows, self._order_index, self._counters)
        else:  # pragma: no cover - a core/wrapper mismatch, not a user error
            raise RuntimeError(f"matching core returned unknown status {status}")

    def _grow_orders(self, extra: int) -> None:
        old = len(self._order_rows)
        self._order_rows = np.concatenate(
            [self._order_rows, np.zeros((extra, ORD_WIDTH), dtype=np.int64)]
        )
        nfree = int(self._counters[C_OFREE])
        order_free = np.zeros(old + extra, dtype=np.int64)
        order_free[:nfree] = self._order_free[:nfree]
        # push new rows so the lowest index is popped first (deterministic, cache friendly)
        order_free[nfree : nfree + extra] = np.arange(old + extra - 1, old - 1, -1)
        self._order_free = order_free
        self._counters[C_OFREE] = nfree + extra

    def _grow_levels(self, extra: int) -> None:
        old = len(self._level_rows)
        self._level_rows = np.concatenate(
            [self._level_rows, np.zeros((extra, LV_WIDTH), dtype=np.int64)]
        )
        nfree = int(self._counters[C_LFREE])
        level_free = np.zeros(old + extra, dtype=np.int64)
        level_free[:nfree] = self._level_free[:nfree]
        level_free[nfree : nfree + extra] = np.arange(old + extra - 1, old - 1, -1)
        self._level_free = level_free
        self._counters[C_LFREE] = nfree + extra

    # ------------------------------------------------------------------ queries
    @property
    def symbols(self) -> tuple[SymbolSpec, ...]:
        return self._specs

    def _book(self, symbol: int) -> int:
        b = int(self._book_of_symbol[symbol]) if 0 <= symbol < len(self._book_of_symbol) else -1
        if b < 0:
            known = [s.symbol for s in self._specs]
            raise KeyError(f"symbol {symbol} is not configured; known symbols: {known}")
        return b

    def depth(self, symbol: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
        """(bids, asks): int64 arrays of (price, qty, count) rows, best first."""
        b = self._book(symbol)
        sides = []
        for side in (0, 1):
            n = int(self._books[b, B_NLEVELS + side])
            rows = self._side_levels[2 * b + side, :n][::-1][: max(0, levels)]
            sides.append(self._level_rows[rows][:, [L_PRICE, L_QTY, L_COUNT]].copy())
        return sides[0], sides[1]

    def _best(self, symbol: int, side: int) -> tuple[int, int] | None:
        b = self._book(symbol)
        n = int(self._books[b, B_NLEVELS + side])
        if n == 0:
            return None
        lvl = self._side_levels[2 * b + side, n - 1]
        return int(self._level_rows[lvl, L_PRICE]), int(self._level_rows[lvl, L_QTY])

    def best_bid(self, symbol: int) -> tuple[int, int] | None:
        """(price, total qty) of the best bid level, or None when no bids rest."""
        return self._best(symbol, 0)

    def best_ask(self, symbol: int) -> tuple[int, int] | None:
        """(price, total qty) of the best ask level, or None when no asks rest."""
        return self._best(symbol, 1)

    def open_orders(self) -> int:
        """Number of orders resting in all books."""
        return int(self._counters[C_OPEN])

    def is_halted(self, symbol: int) -> bool:
        return bool(self._books[self._book(symbol), B_HALTED])

    def resting_orders(self) -> np.ndarray:
        """Every resting order in canonical order: rows of (symbol, side, price, order id,
        account, open qty, stp, flags); books by symbol id, bids then asks, best level first,
        oldest first within a level."""
        rows = self._export()
        rows[:, X_BOOK] = self._books[rows[:, X_BOOK], B_SYMBOL]
        return rows

    def _export(self) -> np.ndarray:
        rows = np.zeros((self.open_orders(), EXPORT_WIDTH), dtype=np.int64)
        export_orders(self._books, self._side_levels, self._level_rows, self._order_rows, rows)
        return rows

    # ------------------------------------------------------------------ determinism & state
    def _spec_table(self) -> np.ndarray:
        cols = [B_SYMBOL, B_TICK, B_LOT, B_MIN, B_MAX, B_BAND_LO, B_BAND_HI, B_HALTED]
        return np.ascontiguousarray(self._books[:, cols])

    def state_hash(self) -> str:
        """Hex blake2b digest over the whole book state: symbol rules, halts and every
        resting order in priority order. Pool layout, capacities and timestamps are not
        state and do not change it."""
        h = hashlib.blake2b(digest_size=32)
        h.update(f"{SNAPSHOT_FORMAT}/{SNAPSHOT_VERSION}".encode())
        h.update(self._spec_table().astype("<i8").tobytes())
        h.update(self._export().astype("<i8").tobytes())
        return h.hexdigest()

    def snapshot(self) -> bytes:
        """The whole book state as bytes (msgpack); ``restore`` rebuilds an equal engine."""
        body = _SnapshotBody(
            format=SNAPSHOT_FORMAT,
            version=SNAPSHOT_VERSION,
            order_capacity=self._order_capacity,
            emit_book_top=self._emit_book_top,
            symbols=list(self._specs),
            halted=[int(x) for x in self._books[:, B_HALTED]],
            orders=self._export().astype("<i8").tobytes(),
        )
        return msgspec.msgpack.encode(body)

    @classmethod
    def restore(cls, data: bytes) -> MatchingEngine:
        """An engine equal to the one ``snapshot`` was taken from (same hash, same future)."""
        body = decode_body(
            data, _SnapshotBody, SNAPSHOT_FORMAT, SNAPSHOT_VERSION, "a matching-engine"
        )
        rows = np.frombuffer(body.orders, dtype="<i8").reshape(-1, EXPORT_WIDTH).astype(np.int64)
        engine = cls(
            body.symbols,
            order_capacity=min(max(body.order_capacity, len(rows) + 1), MAX_ORDER_CAPACITY),
            emit_book_top=body.emit_book_top,
        )
        if len(body.halted) != len(engine._books):
            raise ValueError(
                f"snapshot has {len(body.halted)} halt flags for {len(engine._books)} symbols"
            )
        engine._books[:, B_HALTED] = body.halted
        # (book, side, price) of every level
        levels = np.unique(rows[:, [X_BOOK, X_SIDE, X_PRICE]], axis=0)
        if int(engine._counters[C_LFREE]) <= len(levels):
            engine._grow_levels(len(levels) + 1)
        per_side = np.bincount(2 * levels[:, 0] + levels[:, 1], minlength=2 * len(engine._books))
        while engine._side_keys.shape[1] <= int(per_side.max(initial=0)):
            engine._grow(ST_GROW_SIDES)
        while 2 * (len(rows) + 1) > len(engine._order_index):
            engine._grow(ST_GROW_HASH)
        import_orders(
            engine._books, engine._side_keys, engine._side_levels, engine._level_rows,
            engine._level_free, engine._order_rows, engine._order_free, engine._order_index,
            engine._counters, rows,
        )  # fmt: skip
        assert int(engine._counters[C_HTCOUNT]) == len(rows)
        return engine

    def _debug_live_rows(self) -> int:
        """Pool rows in use (tests check it matches open_orders)."""
        return int(np.count_nonzero(self._order_rows[:, O_ID]))
