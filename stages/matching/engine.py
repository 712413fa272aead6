"""The matching engine: one price-time order book per symbol behind a batch API.

``MatchingEngine`` is the in-process domain core of the matching stage (tests, backtests,
replay tools and the stage process all use it). It owns the preallocated state arrays of
the compiled core (``book.py``), grows them between commands when they fill up, and turns
the core's canonical order export into a state hash and a snapshot. It launches nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Sequence

import msgspec
import numpy as np

from ringbuffer.records import copy_records
from stages.records import COMMAND_DTYPE, EVENT_DTYPE
from stages.snapshot_body import decode_body

from . import book
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
)
from .symbols import MAX_ORDER_CAPACITY, SymbolSpec

SNAPSHOT_FORMAT = "tradepipe.matching"
SNAPSHOT_VERSION = 1
_EXPORT_WIDTH = 8


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
    orders: bytes  # export_orders rows, int64 little-endian, _EXPORT_WIDTH per row


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
        self._sym_index = np.full(1 << 16, -1, dtype=np.int64)
        self._bk = np.zeros((nb, BK_WIDTH), dtype=np.int64)
        for i, s in enumerate(specs):
            self._sym_index[s.symbol] = i
            self._bk[i, B_TICK] = s.tick_size
            self._bk[i, B_LOT] = s.lot_size
            self._bk[i, B_MIN] = s.min_qty
            self._bk[i, B_MAX] = s.max_qty
            self._bk[i, B_BAND_LO] = s.price_band_low
            self._bk[i, B_BAND_HI] = s.price_band_high
            self._bk[i, B_SYMBOL] = s.symbol
        side_cap = 64
        self._spx = np.zeros((2 * nb, side_cap), dtype=np.int64)
        self._slv = np.zeros((2 * nb, side_cap), dtype=np.int64)
        self._ctr = np.zeros(CTR_WIDTH, dtype=np.int64)
        self._ord = np.zeros((0, ORD_WIDTH), dtype=np.int64)
        self._ofree = np.zeros(0, dtype=np.int64)
        self._lv = np.zeros((0, LV_WIDTH), dtype=np.int64)
        self._lfree = np.zeros(0, dtype=np.int64)
        self._grow_orders(self._order_capacity)
        self._grow_levels(max(64, self._order_capacity // 4))
        # sized by use, not capacity: a small table stays in cache; it doubles at half load
        self._ht = np.zeros((1024, 2), dtype=np.int64)
        self._scratch = np.zeros(6 * nb, dtype=np.int64)
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
            ew = self._events.view("<i8").reshape(-1, 8)
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
        ew = out.view("<i8").reshape(-1, 8)
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
        return book.run_batch(
            cw, start, ew, pos, t0, self._emit_book_top, self._sym_index, self._bk,
            self._spx, self._slv, self._lv, self._lfree, self._ord, self._ofree, self._ht,
            self._ctr, self._scratch,
        )  # fmt: skip

    @staticmethod
    def _command_words(commands: np.ndarray) -> np.ndarray:
        if commands.dtype != COMMAND_DTYPE:
            raise TypeError(f"commands must be a COMMAND_DTYPE array, got dtype {commands.dtype}")
        return np.ascontiguousarray(commands).reshape(-1).view("<i8").reshape(-1, 8)

    # ------------------------------------------------------------------ growth (cold path)
    def _grow(self, status: int, at: int = 0) -> None:
        if status == ST_GROW_ORDERS:
            extra = min(max(1024, len(self._ord)), MAX_ORDER_CAPACITY - len(self._ord))
            if extra <= 0:
                raise OrderPoolFull(at)
            self._grow_orders(extra)
        elif status == ST_GROW_LEVELS:
            self._grow_levels(max(64, len(self._lv)))
        elif status == ST_GROW_SIDES:
            cap = self._spx.shape[1]
            for name in ("_spx", "_slv"):
                old = getattr(self, name)
                new = np.zeros((old.shape[0], 2 * cap), dtype=np.int64)
                new[:, :cap] = old
                setattr(self, name, new)
        elif status == ST_GROW_HASH:
            self._ht = np.zeros((2 * len(self._ht), 2), dtype=np.int64)
            book.rebuild_hash(self._ord, self._ht, self._ctr)
        else:  # pragma: no cover - a core/wrapper mismatch, not a user error
            raise RuntimeError(f"matching core returned unknown status {status}")

    def _grow_orders(self, extra: int) -> None:
        old = len(self._ord)
        self._ord = np.concatenate([self._ord, np.zeros((extra, ORD_WIDTH), dtype=np.int64)])
        nfree = int(self._ctr[C_OFREE])
        ofree = np.zeros(old + extra, dtype=np.int64)
        ofree[:nfree] = self._ofree[:nfree]
        # push new rows so the lowest index is popped first (deterministic, cache friendly)
        ofree[nfree : nfree + extra] = np.arange(old + extra - 1, old - 1, -1)
        self._ofree = ofree
        self._ctr[C_OFREE] = nfree + extra

    def _grow_levels(self, extra: int) -> None:
        old = len(self._lv)
        self._lv = np.concatenate([self._lv, np.zeros((extra, LV_WIDTH), dtype=np.int64)])
        nfree = int(self._ctr[C_LFREE])
        lfree = np.zeros(old + extra, dtype=np.int64)
        lfree[:nfree] = self._lfree[:nfree]
        lfree[nfree : nfree + extra] = np.arange(old + extra - 1, old - 1, -1)
        self._lfree = lfree
        self._ctr[C_LFREE] = nfree + extra

    # ------------------------------------------------------------------ queries
    @property
    def symbols(self) -> tuple[SymbolSpec, ...]:
        return self._specs

    def _book(self, symbol: int) -> int:
        b = int(self._sym_index[symbol]) if 0 <= symbol < len(self._sym_index) else -1
        if b < 0:
            known = [s.symbol for s in self._specs]
            raise KeyError(f"symbol {symbol} is not configured; known symbols: {known}")
        return b

    def depth(self, symbol: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
        """(bids, asks): int64 arrays of (price, qty, count) rows, best first."""
        b = self._book(symbol)
        sides = []
        for side in (0, 1):
            n = int(self._bk[b, B_NLEVELS + side])
            rows = self._slv[2 * b + side, :n][::-1][: max(0, levels)]
            sides.append(self._lv[rows][:, [L_PRICE, L_QTY, L_COUNT]].copy())
        return sides[0], sides[1]

    def _best(self, symbol: int, side: int) -> tuple[int, int] | None:
        b = self._book(symbol)
        n = int(self._bk[b, B_NLEVELS + side])
        if n == 0:
            return None
        lvl = self._slv[2 * b + side, n - 1]
        return int(self._lv[lvl, L_PRICE]), int(self._lv[lvl, L_QTY])

    def best_bid(self, symbol: int) -> tuple[int, int] | None:
        """(price, total qty) of the best bid level, or None when no bids rest."""
        return self._best(symbol, 0)

    def best_ask(self, symbol: int) -> tuple[int, int] | None:
        """(price, total qty) of the best ask level, or None when no asks rest."""
        return self._best(symbol, 1)

    def open_orders(self) -> int:
        """Number of orders resting in all books."""
        return int(self._ctr[C_OPEN])

    def is_halted(self, symbol: int) -> bool:
        return bool(self._bk[self._book(symbol), B_HALTED])

    def resting_orders(self) -> np.ndarray:
        """Every resting order in canonical order: rows of (symbol, side, price, order id,
        account, open qty, stp, flags); books by symbol id, bids then asks, best level first,
        oldest first within a level."""
        rows = self._export()
        rows[:, 0] = self._bk[rows[:, 0], B_SYMBOL]
        return rows

    def _export(self) -> np.ndarray:
        rows = np.zeros((self.open_orders(), _EXPORT_WIDTH), dtype=np.int64)
        book.export_orders(self._bk, self._slv, self._lv, self._ord, rows)
        return rows

    # ------------------------------------------------------------------ determinism & state
    def _spec_table(self) -> np.ndarray:
        cols = [B_SYMBOL, B_TICK, B_LOT, B_MIN, B_MAX, B_BAND_LO, B_BAND_HI, B_HALTED]
        return np.ascontiguousarray(self._bk[:, cols])

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
            halted=[int(x) for x in self._bk[:, B_HALTED]],
            orders=self._export().astype("<i8").tobytes(),
        )
        return msgspec.msgpack.encode(body)

    @classmethod
    def restore(cls, data: bytes) -> MatchingEngine:
        """An engine equal to the one ``snapshot`` was taken from (same hash, same future)."""
        body = decode_body(
            data, _SnapshotBody, SNAPSHOT_FORMAT, SNAPSHOT_VERSION, "a matching-engine"
        )
        rows = np.frombuffer(body.orders, dtype="<i8").reshape(-1, _EXPORT_WIDTH).astype(np.int64)
        engine = cls(
            body.symbols,
            order_capacity=min(max(body.order_capacity, len(rows) + 1), MAX_ORDER_CAPACITY),
            emit_book_top=body.emit_book_top,
        )
        if len(body.halted) != len(engine._bk):
            raise ValueError(
                f"snapshot has {len(body.halted)} halt flags for {len(engine._bk)} symbols"
            )
        engine._bk[:, B_HALTED] = body.halted
        levels = np.unique(rows[:, :3], axis=0)  # (book, side, price) of every level
        if int(engine._ctr[C_LFREE]) <= len(levels):
            engine._grow_levels(len(levels) + 1)
        per_side = np.bincount(2 * levels[:, 0] + levels[:, 1], minlength=2 * len(engine._bk))
        while engine._spx.shape[1] <= int(per_side.max(initial=0)):
            engine._grow(ST_GROW_SIDES)
        while 2 * (len(rows) + 1) > len(engine._ht):
            engine._grow(ST_GROW_HASH)
        book.import_orders(
            engine._bk, engine._spx, engine._slv, engine._lv, engine._lfree, engine._ord,
            engine._ofree, engine._ht, engine._ctr, rows,
        )  # fmt: skip
        assert int(engine._ctr[C_HTCOUNT]) == len(rows)
        return engine

    def _debug_live_rows(self) -> int:
        """Pool rows in use (tests check it matches open_orders)."""
        return int(np.count_nonzero(self._ord[:, O_ID]))
