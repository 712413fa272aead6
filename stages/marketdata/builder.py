"""The publisher side of market data: matching's events in, per-symbol messages out.

``DepthBuilder`` rebuilds every book as aggregated price levels (price → total open qty,
order count) from the events matching emits, and after each batch compares the top N
levels of every symbol the batch touched with what it last published. What events do to
the book (``docs/records.md``, ``docs/matching.md``):

* ``ACCEPTED`` opens an order at its price with its full qty. It does not rest yet: as the
  aggressor it may trade first (``TRADE`` with the TAKER flag, priced at the *maker's*
  price), lose qty to self-trade prevention or have its rest cancelled (IOC, FOK, market:
  ``CANCELLED``). Whatever is left when its command's events end rests at its own price.
  So the builder keeps it *pending* until the next command's event or the end of the batch.
* ``TRADE`` / ``CANCELLED`` take their qty off the order; a resting order takes it off its
  level, and leaves the level (count − 1) when nothing of it is left. A decrement-and-
  cancel that leaves qty open (``CANCELLED`` without DONE) keeps the order at its place.
* ``REPLACED`` (replace and reduce) gives the order's new price and total open qty, never
  the old ones: the builder keeps every open order (id → side, price, open qty), takes the
  old qty off the old level, and makes the order pending again, since a replace that
  crosses trades as an aggressor before its rest rests.
* ``HALTED`` / ``RESUMED`` change the symbol's status; ``BOOK_TOP``, ``REJECTED`` and the
  account events change no book.

The order map makes the builder depend on having seen every event since the books were
empty; a publisher started later seeds it with ``from_resting`` (matching's
``resting_orders()``, e.g. from a snapshot of the engine).

Cost: one pass of plain Python over the events that can change a book (the others are
dropped first with one numpy mask), a dict lookup or two per event, then O(N) per touched
symbol for the top-N diff. ``perf/bench_market_data.py`` measures it.
"""

from __future__ import annotations

from bisect import bisect_left, insort

import numpy as np

from stages.records import EVENT_DTYPE, EventFlag, EventType, Side

from .messages import (
    BBO,
    Depth,
    Level,
    LevelUpdate,
    Message,
    Snapshot,
    Status,
    Trades,
    TradeTick,
)

_ACCEPTED = int(EventType.ACCEPTED)
_TRADE = int(EventType.TRADE)
_CANCELLED = int(EventType.CANCELLED)
_REPLACED = int(EventType.REPLACED)
_HALTED = int(EventType.HALTED)
_RESUMED = int(EventType.RESUMED)
_TAKER = int(EventFlag.TAKER)
#: the events that take qty off an order
_TAKES = frozenset((_TRADE, _CANCELLED))
#: the event kinds that change a book or a symbol's status; every other kind is skipped
BOOK_EVENTS = np.array(
    [_ACCEPTED, _TRADE, _CANCELLED, _REPLACED, _HALTED, _RESUMED], dtype=EVENT_DTYPE["kind"]
)
_SIDES = (Side.BUY, Side.SELL)
#: the event fields the builder reads, in the order its loop unpacks them
_COLUMNS = ("seq", "ts_ingest", "order_id", "price", "qty", "symbol", "kind", "side", "flags")


class InconsistentEvents(ValueError):
    """The events contradict the book the builder holds (it missed events, or was not
    seeded with the orders resting when it started)."""


_INF = float("inf")


class _SideLevels:
    """One side of one book: price → [total qty, order count], the prices sorted, and
    whether a change since the last messages may have moved its top N.

    ``lo <= price <= hi`` is the range of prices subscribers see (bids: from the N-th
    level's price up, asks: up to it; unbounded while fewer than N levels are shown): a
    change outside it — a level added, changed or removed below the N-th — cannot change
    the top N, so it leaves the side clean and costs no diff at the end of the batch.
    """

    __slots__ = ("dirty", "hi", "high_best", "levels", "lo", "prices", "sent")

    def __init__(self, high_best: bool) -> None:
        self.levels: dict[int, list[int]] = {}
        self.prices: list[int] = []  # ascending; the best is last for bids, first for asks
        self.high_best = high_best
        self.dirty = False
        self.lo: float = -_INF
        self.hi: float = _INF
        self.sent: list[tuple[int, int, int]] = []  # the top N subscribers hold, best first

    def add(self, price: int, qty: int) -> None:
        """An order of ``qty`` rests at ``price``."""
        level = self.levels.get(price)
        if level is None:
            self.levels[price] = [qty, 1]
            insort(self.prices, price)
        else:
            level[0] += qty
            level[1] += 1
        if self.lo <= price <= self.hi:
            self.dirty = True

    def take(self, price: int, qty: int, leaves: bool) -> None:
        """``qty`` of an order resting at ``price`` is gone; ``leaves``: all of the order."""
        level = self.levels.get(price)
        if level is None:
            raise InconsistentEvents(f"no level at price {price} to take {qty} from")
        level[0] -= qty
        if leaves:
            level[1] -= 1
            if level[1] == 0:
                if level[0] != 0:
                    raise InconsistentEvents(
                        f"the last order left price {price} with {level[0]} still counted"
                    )
                del self.levels[price]
                del self.prices[bisect_left(self.prices, price)]
        if self.lo <= price <= self.hi:
            self.dirty = True

    def top(self, n: int) -> list[tuple[int, int, int]]:
        """(price, qty, count) of the best ``n`` levels, best first."""
        prices = self.prices[: -n - 1 : -1] if self.high_best else self.prices[:n]
        levels = self.levels
        return [(p, *levels[p]) for p in prices]

    def publish(self, n: int) -> list[LevelUpdate] | None:
        """The updates that bring subscribers from ``sent`` to the top ``n`` now (None when
        nothing changed); ``sent``, the view range and the dirty flag follow."""
        self.dirty = False
        top = self.top(n)
        sent = self.sent
        if top == sent:
            return None
        side = Side.BUY if self.high_best else Side.SELL
        now = {p: (q, c) for p, q, c in top}
        updates = [LevelUpdate(side, p, 0, 0) for p, _, _ in sent if p not in now]
        before = {p: (q, c) for p, q, c in sent}
        updates += [LevelUpdate(side, p, q, c) for p, q, c in top if before.get(p) != (q, c)]
        self.sent = top
        self.set_view(n)
        return updates

    def set_view(self, n: int) -> None:
        """The view range of ``sent``: see the class docstring."""
        edge = self.sent[-1][0] if len(self.sent) >= n else None
        if self.high_best:
            self.lo = -_INF if edge is None else edge
        else:
            self.hi = _INF if edge is None else edge

    def best(self) -> tuple[int, int]:
        """(price, total qty) of the best level; (0, 0) when the side is empty."""
        if not self.prices:
            return 0, 0
        price = self.prices[-1] if self.high_best else self.prices[0]
        return price, self.levels[price][0]


class _Symbol:
    """One symbol's book, its message sequence and what its subscribers were last sent."""

    __slots__ = ("cmd_seq", "halted", "sent_bbo", "sent_halted", "seq", "sides", "symbol",
                 "trades")  # fmt: skip

    def __init__(self, symbol: int) -> None:
        self.symbol = symbol
        self.sides = (_SideLevels(high_best=True), _SideLevels(high_best=False))
        self.seq = 0  # the last message sequence number used
        self.cmd_seq = 0  # the command seq of the last event applied
        self.halted = False
        self.sent_halted = False
        self.sent_bbo = (0, 0, 0, 0)
        self.trades: list[TradeTick] = []  # of the batch being applied


class DepthBuilder:
    """Turns released EVENT_DTYPE batches into market-data messages, per symbol in order.

    ``process(events)`` applies one batch and returns its messages; ``snapshot(symbol)``
    the full top N valid at the symbol's current sequence number. Deterministic: the same
    events (however batched into the same batches) give the same messages, byte for byte.
    """

    def __init__(self, levels: int = 10, epoch: int = 0) -> None:
        if levels < 1:
            raise ValueError(f"DepthBuilder levels = {levels} is invalid: expected >= 1")
        self.levels = levels
        self.epoch = epoch
        self._symbols: dict[int, _Symbol] = {}
        # open orders: id -> [side levels, price, open qty, resting?]
        self._orders: dict[int, list] = {}
        self._pending: list[int] = []  # orders of the current command not resting yet
        self.unknown_orders = 0  # events about orders the builder never saw open

    @classmethod
    def from_resting(cls, rows: np.ndarray, levels: int = 10, epoch: int = 0) -> DepthBuilder:
        """A builder whose books start as matching's ``resting_orders()`` rows (symbol, side,
        price, order id, account, open qty, stp, flags), in that method's order.

        The messages start at sequence 1 with a new epoch: subscribers take a snapshot.
        """
        builder = cls(levels, epoch)
        for symbol, side, price, oid, _account, qty, *_ in np.asarray(rows).tolist():
            levels_of_side = builder._symbol(symbol).sides[side]
            levels_of_side.add(price, qty)
            builder._orders[oid] = [levels_of_side, price, qty, True]
        for state in builder._symbols.values():
            for side in state.sides:
                side.publish(levels)
            state.sent_bbo = (*state.sides[0].best(), *state.sides[1].best())
        return builder

    def _symbol(self, symbol: int) -> _Symbol:
        state = self._symbols.get(symbol)
        if state is None:
            state = self._symbols[symbol] = _Symbol(symbol)
        return state

    @property
    def symbols(self) -> list[int]:
        """The ids of every symbol an event has named so far, ascending."""
        return sorted(self._symbols)

    # ------------------------------------------------------------------ applying events
    def process(self, events: np.ndarray) -> list[Message]:
        """HOT. Apply one released batch of events; return its messages.

        Per symbol the batch touched, in symbol id order: ``Trades`` (if any traded),
        ``Depth`` (if a level of the top N changed), ``BBO`` (if it changed), ``Status``
        (if halted / resumed); each takes the symbol's next sequence number.
        """
        events = events[np.isin(events["kind"], BOOK_EVENTS)]
        if len(events) == 0:
            return []
        orders = self._orders
        symbols = self._symbols
        pending = self._pending
        current = -1
        columns = [events[name].tolist() for name in _COLUMNS]
        for seq, ts, oid, price, qty, symbol, kind, side, flags in zip(*columns, strict=True):
            if seq != current:
                if pending:
                    self._rest_pending()
                current = seq
            if kind in _TAKES:
                if flags & _TAKER:  # only a TRADE has it: the public trade, once per pair
                    (symbols.get(symbol) or self._symbol(symbol)).trades.append(
                        TradeTick(price, qty, _SIDES[side], ts, seq)
                    )
                order = orders.get(oid)
                if order is None:
                    self.unknown_orders += 1
                    continue
                left = order[2] - qty
                if order[3]:
                    order[0].take(order[1], qty, left <= 0)
                if left <= 0:
                    del orders[oid]
                else:
                    order[2] = left
            elif kind == _ACCEPTED:
                state = symbols.get(symbol) or self._symbol(symbol)
                orders[oid] = [state.sides[side], price, qty, False]
                pending.append(oid)
            elif kind == _REPLACED:
                order = orders.get(oid)
                if order is None:
                    self.unknown_orders += 1
                    continue
                if order[3]:
                    order[0].take(order[1], order[2], True)
                    order[3] = False
                order[1], order[2] = price, qty
                pending.append(oid)
            else:  # HALTED / RESUMED
                self._symbol(symbol).halted = kind == _HALTED
        # a batch ends with whole commands (matching writes them whole), so what is
        # pending now rests; were a command cut, its later events still find the order
        if pending:
            self._rest_pending()
        # the symbols the batch named, ascending, with the seq of each one's last event
        backwards = events["symbol"][::-1]
        touched, last = np.unique(backwards, return_index=True)
        cmd_seqs = events["seq"][::-1][last]
        messages: list[Message] = []
        for symbol, cmd_seq in zip(touched.tolist(), cmd_seqs.tolist(), strict=True):
            self._messages(self._symbol(symbol), cmd_seq, messages)
        return messages

    def _rest_pending(self) -> None:
        """What is left of the current command's orders rests at their prices."""
        orders = self._orders
        for oid in self._pending:
            order = orders.get(oid)
            if order is not None and not order[3]:
                order[0].add(order[1], order[2])
                order[3] = True
        self._pending.clear()

    def _messages(self, state: _Symbol, cmd_seq: int, out: list[Message]) -> None:
        """Append the symbol's messages for the batch just applied."""
        state.cmd_seq = cmd_seq
        epoch, symbol = self.epoch, state.symbol
        if state.trades:
            state.seq += 1
            out.append(Trades(epoch, symbol, state.seq, cmd_seq, tuple(state.trades)))
            state.trades.clear()
        bids, asks = state.sides
        if bids.dirty or asks.dirty:  # the best level is always in view: else no BBO change
            updates: list[LevelUpdate] = []
            for levels in state.sides:
                if levels.dirty:
                    updates += levels.publish(self.levels) or ()
            if updates:
                state.seq += 1
                out.append(Depth(epoch, symbol, state.seq, cmd_seq, tuple(updates)))
            bbo = (*bids.best(), *asks.best())
            if bbo != state.sent_bbo:
                state.seq += 1
                out.append(BBO(epoch, symbol, state.seq, cmd_seq, *bbo))
                state.sent_bbo = bbo
        if state.halted != state.sent_halted:
            state.seq += 1
            out.append(Status(epoch, symbol, state.seq, cmd_seq, state.halted))
            state.sent_halted = state.halted

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, symbol: int) -> Snapshot:
        """The top N of both sides as subscribers hold them after message ``seq``.

        Call it between batches (``process`` leaves nothing half-applied). A symbol no
        event has named yet is empty at seq 0.
        """
        state = self._symbols.get(symbol) or _Symbol(symbol)
        bids, asks = (tuple(Level(*row) for row in side.sent) for side in state.sides)
        return Snapshot(
            self.epoch, symbol, state.seq, state.cmd_seq, self.levels, bids, asks,
            state.sent_halted,
        )  # fmt: skip

    def seq(self, symbol: int) -> int:
        """The last sequence number used for ``symbol`` (0: no message yet)."""
        state = self._symbols.get(symbol)
        return 0 if state is None else state.seq
