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

How, for speed: the events that can change a book are picked with one numpy mask; the
per-event work (the open orders by id, what each event does to a level) is one compiled
call (``order_map.py``) that returns level deltas; numpy nets them per level, and Python
touches each changed level once, then diffs the top N of each symbol whose visible prices
changed. Python work per batch is thus per level and per symbol touched, not per event.
``perf/bench_market_data.py`` measures it.
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
from .order_map import OrderMap

_ACCEPTED = int(EventType.ACCEPTED)
_TRADE = int(EventType.TRADE)
_CANCELLED = int(EventType.CANCELLED)
_REPLACED = int(EventType.REPLACED)
_HALTED = int(EventType.HALTED)
_RESUMED = int(EventType.RESUMED)
_TAKER = int(EventFlag.TAKER)
#: the event kinds that change a book or a symbol's status; every other kind is skipped
BOOK_EVENTS = np.array(
    [_ACCEPTED, _TRADE, _CANCELLED, _REPLACED, _HALTED, _RESUMED], dtype=EVENT_DTYPE["kind"]
)
#: by kind code: whether it is one of BOOK_EVENTS (a lookup costs ~3 µs a batch where
#: ``np.isin`` costs ~50 µs, and the gateway builds market data from every released batch)
_IS_BOOK_EVENT = np.zeros(256, dtype=bool)
_IS_BOOK_EVENT[BOOK_EVENTS] = True
_IS_STATUS = np.zeros(256, dtype=bool)
_IS_STATUS[[_HALTED, _RESUMED]] = True
_SIDES = (Side.BUY, Side.SELL)
#: the fields of a TRADE event a public trade is made of, as the loop unpacks them
_TRADE_COLUMNS = ("symbol", "price", "qty", "side", "ts_ingest", "seq")
#: positions of fields in an event row (``events.tolist()``)
_KIND, _FLAGS, _PRICE, _QTY, _SIDE, _TS, _SEQ, _SYMBOL = (
    EVENT_DTYPE.names.index(name)
    for name in ("kind", "flags", "price", "qty", "side", "ts_ingest", "seq", "symbol")
)
#: up to this many events a batch's trades and status changes are found in Python
#: (``_trades_and_status_small``), above it with numpy
SMALL_EVENTS = 16


#: up to this many delta rows are netted in Python (``_net_small``), above it with numpy
#: (``_net_numpy``): each numpy call costs microseconds whatever its size, and netting a few
#: rows took a dozen of them (~45 µs for the ~15 rows of an 8-event batch; ~10 µs in Python)
SMALL_DELTAS = 32


def net_levels(deltas: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The (slot, price, Δqty, Δcount) rows netted per level (slot, price), ascending, the
    levels whose net change is nothing left out."""
    if len(deltas) <= SMALL_DELTAS:
        return _net_small(deltas.tolist())
    return _net_numpy(deltas)


def _net_small(rows: list[list[int]]) -> list[tuple[int, int, int, int]]:
    net: dict[tuple[int, int], list[int]] = {}
    for slot, price, qty, count in rows:
        level = net.get((slot, price))
        if level is None:
            net[(slot, price)] = [qty, count]
        else:
            level[0] += qty
            level[1] += count
    return [(s, p, q, c) for (s, p), (q, c) in sorted(net.items()) if q or c]


def _net_numpy(deltas: np.ndarray) -> list[tuple[int, int, int, int]]:
    deltas = deltas[np.lexsort((deltas[:, 1], deltas[:, 0]))]
    slot, price = deltas[:, 0], deltas[:, 1]
    starts = np.flatnonzero(
        np.concatenate(([True], (slot[1:] != slot[:-1]) | (price[1:] != price[:-1])))
    )
    qty = np.add.reduceat(deltas[:, 2], starts)
    count = np.add.reduceat(deltas[:, 3], starts)
    moved = (qty != 0) | (count != 0)
    return list(
        zip(
            slot[starts][moved].tolist(), price[starts][moved].tolist(),
            qty[moved].tolist(), count[moved].tolist(), strict=True,
        )
    )  # fmt: skip


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

    def change(self, price: int, qty: int, count: int) -> None:
        """The level at ``price`` gains ``qty`` and ``count`` orders (net of one batch;
        negative: loses them); a level left without orders goes."""
        level = self.levels.get(price)
        if level is None:
            if count <= 0 or qty <= 0:
                raise InconsistentEvents(f"{-qty} taken off price {price}, where nothing rests")
            self.levels[price] = [qty, count]
            insort(self.prices, price)
        else:
            level[0] += qty
            level[1] += count
            if level[1] <= 0:
                if level[1] < 0 or level[0] != 0:
                    raise InconsistentEvents(
                        f"price {price} left with {level[0]} qty in {level[1]} orders"
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
        shown = {p for p, _, _ in top}
        updates = [LevelUpdate(side, p, 0, 0) for p, _, _ in sent if p not in shown]
        unchanged = set(sent)  # (price, qty, count) rows subscribers already hold
        updates += [LevelUpdate(side, *row) for row in top if row not in unchanged]
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

    def __init__(self, levels: int = 10, epoch: int = 0, order_capacity: int = 1 << 12) -> None:
        """``levels``: N, the depth published per side; ``epoch``: this publisher run's
        number (see ``messages.py``); ``order_capacity``: open orders held before the first
        growth (the arrays double when full)."""
        if levels < 1:
            raise ValueError(f"DepthBuilder levels = {levels} is invalid: expected >= 1")
        self.levels = levels
        self.epoch = epoch
        self._symbols: dict[int, _Symbol] = {}
        # open orders by id, compiled: events -> level deltas
        self._orders = OrderMap(order_capacity)

    @property
    def unknown_orders(self) -> int:
        """Events about orders the builder never saw open (it started late, unseeded)."""
        return self._orders.unknown_orders

    @classmethod
    def from_resting(cls, rows: np.ndarray, levels: int = 10, epoch: int = 0) -> DepthBuilder:
        """A builder whose books start as matching's ``resting_orders()`` rows (symbol, side,
        price, order id, account, open qty, stp, flags), in that method's order.

        The messages start at sequence 1 with a new epoch: subscribers take a snapshot.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1, 8)
        builder = cls(levels, epoch, order_capacity=max(1 << 12, 2 * len(rows)))
        accepted = np.zeros(len(rows), dtype=EVENT_DTYPE)  # each order opens and rests
        accepted["seq"] = np.arange(1, len(rows) + 1)
        accepted["kind"] = _ACCEPTED
        accepted["symbol"], accepted["side"], accepted["price"] = rows[:, 0], rows[:, 1], rows[:, 2]
        accepted["order_id"], accepted["qty"] = rows[:, 3], rows[:, 5]
        builder._apply_deltas(builder._orders.deltas(accepted))
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
        kind = events["kind"]
        events = events[_IS_BOOK_EVENT[kind]]
        if len(events) == 0:
            return []
        self._apply_deltas(self._orders.deltas(events))
        if len(events) <= SMALL_EVENTS:
            self._trades_and_status_small(events)
        else:
            self._trades_and_status(events)
        # the symbols the batch named, ascending, with the seq of each one's last event
        symbols, seqs = events["symbol"], events["seq"]
        first = symbols[0]
        if first == symbols[-1] and (symbols == first).all():  # one symbol (np.unique: ~15 µs)
            touched, cmd_seqs = [int(first)], [int(seqs[-1])]
        else:
            unique, last = np.unique(symbols[::-1], return_index=True)
            touched, cmd_seqs = unique.tolist(), seqs[::-1][last].tolist()
        messages: list[Message] = []
        for symbol, cmd_seq in zip(touched, cmd_seqs, strict=True):
            self._messages(self._symbol(symbol), cmd_seq, messages)
        return messages

    def _trades_and_status(self, events: np.ndarray) -> None:
        """The public trades (the TAKER event of each pair) and halts / resumes of a batch,
        in event order, picked with numpy."""
        kind = events["kind"]
        taker = (kind == _TRADE) & ((events["flags"] & _TAKER) != 0)
        if taker.any():
            trades = events[taker]
            columns = [trades[name].tolist() for name in _TRADE_COLUMNS]
            for symbol, price, qty, side, ts, seq in zip(*columns, strict=True):
                self._symbol(symbol).trades.append(TradeTick(price, qty, _SIDES[side], ts, seq))
        status = _IS_STATUS[kind]
        if status.any():
            for symbol, k in zip(
                events["symbol"][status].tolist(), kind[status].tolist(), strict=True
            ):
                self._symbol(symbol).halted = k == _HALTED

    def _trades_and_status_small(self, events: np.ndarray) -> None:
        """``_trades_and_status`` for a few events: one ``tolist`` and a Python loop (the
        numpy way costs ~30 µs in fixed calls, more than a handful of events in Python)."""
        for row in events.tolist():
            kind = row[_KIND]
            if kind == _TRADE:
                if row[_FLAGS] & _TAKER:
                    trade = TradeTick(
                        row[_PRICE], row[_QTY], _SIDES[row[_SIDE]], row[_TS], row[_SEQ]
                    )
                    self._symbol(row[_SYMBOL]).trades.append(trade)
            elif kind in (_HALTED, _RESUMED):
                self._symbol(row[_SYMBOL]).halted = kind == _HALTED

    def _apply_deltas(self, deltas: np.ndarray) -> None:
        """Change each level the (slot, price, Δqty, Δcount) rows touch, once (``net_levels``)."""
        symbols = self._symbols
        for s, p, q, c in net_levels(deltas):
            state = symbols.get(s >> 1) or self._symbol(s >> 1)
            state.sides[s & 1].change(p, q, c)

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
