"""A small, obviously correct pure-Python matching engine: the oracle for the compiled one.

Written for reading, not speed: each side of a book is a plain list of resting orders kept
in priority order (best price first, then oldest first), every rule is an ``if`` in the
order ``docs/matching.md`` states it. The differential tests feed the same command streams
to this and to ``stages.matching.MatchingEngine`` and require identical events, depth and
resting orders; ``perf/bench_matching.py`` uses it as the pure-Python peer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.matching.symbols import SymbolSpec
from stages.records import (
    EVENT_DTYPE,
    CommandFlag,
    CommandType,
    EventFlag,
    EventType,
    OrderType,
    Reason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

STP = SelfTradePrevention


@dataclass
class Order:
    order_id: int
    account: int
    symbol: int
    side: int
    price: int
    qty: int  # open quantity
    stp: int
    flags: int


@dataclass
class Book:
    spec: SymbolSpec
    halted: bool = False

    def __post_init__(self) -> None:
        self.sides: tuple[list[Order], list[Order]] = ([], [])  # bids, asks; best first

    def better(self, side: int, a: int, b: int) -> bool:
        """Is price a strictly better than b for resting orders of ``side``?"""
        return a > b if side == Side.BUY else a < b

    def rest(self, order: Order) -> None:
        """Insert behind every order with the same or a better price (time priority)."""
        orders = self.sides[order.side]
        at = len(orders)
        for i, o in enumerate(orders):
            if self.better(order.side, order.price, o.price):
                at = i
                break
        orders.insert(at, order)

    def top(self, side: int) -> tuple[int, int, int]:
        orders = self.sides[side]
        if not orders:
            return (0, 0, 0)
        price, qty, count = orders[0].price, 0, 0
        for o in orders:  # the best level is the run of orders at the first price
            if o.price != price:
                break
            qty += o.qty
            count += 1
        return (price, qty, count)

    def depth(self, side: int) -> list[tuple[int, int, int]]:
        levels: list[tuple[int, int, int]] = []
        for o in self.sides[side]:
            if levels and levels[-1][0] == o.price:
                p, q, c = levels[-1]
                levels[-1] = (p, q + o.qty, c + 1)
            else:
                levels.append((o.price, o.qty, 1))
        return levels


def acceptable(side: int, limit: int, price: int) -> bool:
    """May an aggressor of ``side`` with ``limit`` (0 = no limit) trade at ``price``?"""
    if limit == 0:
        return True
    return price <= limit if side == Side.BUY else price >= limit


class ReferenceEngine:
    """Same interface subset as MatchingEngine: process, depth, resting_orders, open_orders."""

    def __init__(self, symbols: list[SymbolSpec], emit_book_top: bool = True) -> None:
        self.books = {s.symbol: Book(s) for s in sorted(symbols, key=lambda s: s.symbol)}
        self.orders: dict[int, Order] = {}  # open orders by id
        self.emit_book_top = emit_book_top

    # ------------------------------------------------------------------ queries
    def open_orders(self) -> int:
        return len(self.orders)

    def depth(self, symbol: int, levels: int) -> tuple[list, list]:
        book = self.books[symbol]
        return book.depth(Side.BUY)[:levels], book.depth(Side.SELL)[:levels]

    def resting_orders(self) -> list[tuple[int, ...]]:
        rows = []
        for sym, book in self.books.items():
            for side in (Side.BUY, Side.SELL):
                for o in book.sides[side]:
                    rows.append((sym, side, o.price, o.order_id, o.account, o.qty, o.stp, o.flags))
        return rows

    # ------------------------------------------------------------------ processing
    def process(self, commands: np.ndarray) -> np.ndarray:
        events: list[tuple] = []
        self.out = events
        names = commands.dtype.names
        for row in commands.tolist():  # plain Python values, one dict per command
            self.cmd = dict(zip(names, row, strict=True))
            self.one(self.cmd)
        return np.array(events, dtype=EVENT_DTYPE)

    def emit(self, kind, order_id=0, other_id=0, price=0, qty=0, account=0, symbol=0, side=0,
             reason=0, flags=0) -> None:  # fmt: skip
        c = self.cmd
        self.out.append((int(c["seq"]), int(c["ts_ingest"]), order_id, other_id, price, qty, 0,
                         account, symbol, kind, side, reason, flags, (0, 0)))  # fmt: skip

    def reject(self, reason: int) -> None:
        c = self.cmd
        self.emit(EventType.REJECTED, int(c["order_id"]), 0, int(c["price"]), int(c["qty"]),
                  int(c["account"]), int(c["symbol"]), int(c["side"]), reason)  # fmt: skip

    def tops(self, book: Book, before: list) -> None:
        if not self.emit_book_top:
            return
        for side in (Side.BUY, Side.SELL):
            now = book.top(side)
            if now != before[side]:
                p, q, c = now
                self.emit(EventType.BOOK_TOP, 0, c, p, q, 0, book.spec.symbol, side)

    def one(self, c) -> None:
        kind = int(c["kind"])
        if int(c["reason"]) != 0:
            return self.reject(int(c["reason"]))
        if kind == CommandType.NEW:
            return self.new(c)
        if kind in (CommandType.CANCEL, CommandType.REDUCE, CommandType.REPLACE):
            return self.amend(c, kind)
        sym, acct, qty = int(c["symbol"]), int(c["account"]), int(c["qty"])
        if kind in (CommandType.HALT, CommandType.RESUME):
            if sym not in self.books:
                return self.reject(Reason.UNKNOWN_SYMBOL)
            self.books[sym].halted = kind == CommandType.HALT
            event = EventType.HALTED if kind == CommandType.HALT else EventType.RESUMED
            return self.emit(event, account=acct, symbol=sym)
        if kind == CommandType.KILL_SWITCH:
            return self.kill_switch(acct, sym)
        if kind == CommandType.KILL_SWITCH_RELEASE:
            return self.emit(EventType.KILL_SWITCH_RELEASED, account=acct, symbol=sym)
        if kind in (CommandType.DEPOSIT, CommandType.WITHDRAW):
            if qty <= 0:
                return self.reject(Reason.INVALID_QTY)
            signed = qty if kind == CommandType.DEPOSIT else -qty
            return self.emit(EventType.BALANCE, qty=signed, account=acct, symbol=sym)
        return self.reject(Reason.INVALID_COMMAND)

    def check_price_qty(self, spec: SymbolSpec, price: int, qty: int, limit: bool) -> int:
        """Reason for the first symbol rule the (price, qty) breaks, else 0."""
        if qty % spec.lot_size:
            return Reason.LOT_SIZE
        if qty < spec.min_qty:
            return Reason.MIN_QTY
        if qty > spec.max_qty:
            return Reason.MAX_QTY
        if limit and price % spec.tick_size:
            return Reason.TICK_SIZE
        if limit and (
            (spec.price_band_low and price < spec.price_band_low)
            or (spec.price_band_high and price > spec.price_band_high)
        ):
            return Reason.PRICE_BAND
        return 0

    def crosses(self, book: Book, side: int, price: int) -> bool:
        opposite = book.sides[1 - side]
        return bool(opposite) and acceptable(side, price, opposite[0].price)

    def new(self, c) -> None:
        sym, side, price, qty = int(c["symbol"]), int(c["side"]), int(c["price"]), int(c["qty"])
        oid, acct, otype, tif = (
            int(c["order_id"]),
            int(c["account"]),
            int(c["order_type"]),
            int(c["tif"]),
        )
        stp, flags = int(c["stp"]), int(c["flags"])
        post = bool(flags & CommandFlag.POST_ONLY)
        if sym not in self.books:
            return self.reject(Reason.UNKNOWN_SYMBOL)
        book = self.books[sym]
        if side not in (0, 1) or otype not in (0, 1) or tif not in (0, 1, 2) or stp not in range(5):
            return self.reject(Reason.INVALID_COMMAND)
        if flags & ~CommandFlag.POST_ONLY:
            return self.reject(Reason.INVALID_COMMAND)
        if post and (otype != OrderType.LIMIT or tif != TimeInForce.GTC):
            return self.reject(Reason.INVALID_COMMAND)
        if oid <= 0:
            return self.reject(Reason.INVALID_COMMAND)
        if qty <= 0:
            return self.reject(Reason.INVALID_QTY)
        if price < 0 or (otype == OrderType.LIMIT and price == 0):
            return self.reject(Reason.INVALID_PRICE)
        if book.halted:
            return self.reject(Reason.SYMBOL_HALTED)
        if oid in self.orders:
            return self.reject(Reason.DUPLICATE_ORDER_ID)
        bad = self.check_price_qty(book.spec, price, qty, otype == OrderType.LIMIT)
        if bad:
            return self.reject(bad)
        if post and self.crosses(book, side, price):
            return self.reject(Reason.POST_ONLY_WOULD_TAKE)
        before = [book.top(0), book.top(1)]
        self.emit(EventType.ACCEPTED, oid, 0, price, qty, acct, sym, side)
        order = Order(oid, acct, sym, side, price, qty, stp, flags)
        if tif == TimeInForce.FOK and not self.fok_fillable(book, order):
            self.emit(EventType.CANCELLED, oid, 0, price, qty, acct, sym, side,
                      Reason.FOK_NOT_FILLED, EventFlag.DONE)  # fmt: skip
        else:
            self.match(book, order, price)
            if order.qty > 0:
                if otype == OrderType.MARKET:
                    self.cancel_rest(order, Reason.MARKET_NO_LIQUIDITY)
                elif tif == TimeInForce.IOC:
                    self.cancel_rest(order, Reason.IOC_REMAINDER)
                else:
                    self.orders[oid] = order
                    book.rest(order)
        self.tops(book, before)

    def cancel_rest(self, order: Order, reason: int) -> None:
        self.emit(EventType.CANCELLED, order.order_id, 0, order.price, order.qty, order.account,
                  order.symbol, order.side, reason, EventFlag.DONE)  # fmt: skip
        order.qty = 0

    def fok_fillable(self, book: Book, order: Order) -> bool:
        """Would matching fill ``order`` completely with trades (see docs/matching.md)?"""
        available = 0
        for maker in book.sides[1 - order.side]:
            if not acceptable(order.side, order.price, maker.price):
                return False
            if order.stp != STP.NONE and maker.account == order.account:
                if order.stp == STP.CANCEL_RESTING:
                    continue
                return False
            available += maker.qty
            if available >= order.qty:
                return True
        return False

    def remove(self, book: Book, maker: Order) -> None:
        book.sides[maker.side].remove(maker)
        del self.orders[maker.order_id]

    def match(self, book: Book, taker: Order, limit: int) -> None:
        """Trade ``taker`` against the opposite side; ``taker.qty`` ends as what is left."""
        opposite = book.sides[1 - taker.side]
        i = 0
        while taker.qty > 0 and i < len(opposite):
            maker = opposite[i]
            if not acceptable(taker.side, limit, maker.price):
                break
            if taker.stp != STP.NONE and maker.account == taker.account:
                if taker.stp == STP.CANCEL_RESTING:
                    self.cancel_maker(book, maker, maker.qty)
                    continue  # list shrank; i now points at the next order
                if taker.stp == STP.CANCEL_AGGRESSOR:
                    self.cancel_rest(taker, Reason.SELF_TRADE)
                    return
                if taker.stp == STP.CANCEL_BOTH:
                    self.cancel_rest(taker, Reason.SELF_TRADE)
                    self.cancel_maker(book, maker, maker.qty)
                    return
                # DECREMENT_AND_CANCEL
                m = min(taker.qty, maker.qty)
                taker.qty -= m
                self.emit(EventType.CANCELLED, taker.order_id, 0, taker.price, m, taker.account,
                          taker.symbol, taker.side, Reason.SELF_TRADE,
                          EventFlag.DONE if taker.qty == 0 else 0)  # fmt: skip
                if self.cancel_maker(book, maker, m):
                    continue
                i += 1
                continue
            q = min(taker.qty, maker.qty)
            taker.qty -= q
            maker.qty -= q
            self.emit(EventType.TRADE, taker.order_id, maker.order_id, maker.price, q,
                      taker.account, taker.symbol, taker.side, 0,
                      EventFlag.TAKER | (EventFlag.DONE if taker.qty == 0 else 0))  # fmt: skip
            self.emit(EventType.TRADE, maker.order_id, taker.order_id, maker.price, q,
                      maker.account, maker.symbol, maker.side, 0,
                      EventFlag.MAKER | (EventFlag.DONE if maker.qty == 0 else 0))  # fmt: skip
            if maker.qty == 0:
                self.remove(book, maker)
            else:
                i += 1

    def cancel_maker(self, book: Book, maker: Order, qty: int) -> bool:
        """Self-trade cancel of ``qty`` of a resting order; True if it left the book."""
        done = qty == maker.qty
        self.emit(EventType.CANCELLED, maker.order_id, 0, maker.price, qty, maker.account,
                  maker.symbol, maker.side, Reason.SELF_TRADE,
                  EventFlag.DONE if done else 0)  # fmt: skip
        maker.qty -= qty
        if done:
            self.remove(book, maker)
        return done

    def amend(self, c, kind: int) -> None:
        oid, acct, price, qty = (
            int(c["order_id"]),
            int(c["account"]),
            int(c["price"]),
            int(c["qty"]),
        )
        order = self.orders.get(oid)
        if order is None:
            return self.reject(Reason.UNKNOWN_ORDER)
        if order.account != acct:
            return self.reject(Reason.NOT_OWNER)
        book = self.books[order.symbol]
        spec = book.spec
        if kind == CommandType.REDUCE:
            if qty <= 0:
                return self.reject(Reason.INVALID_QTY)
            if qty >= order.qty:
                return self.reject(Reason.REDUCE_TOO_LARGE)
            if qty % spec.lot_size:
                return self.reject(Reason.LOT_SIZE)
        if kind == CommandType.REPLACE:
            if book.halted:
                return self.reject(Reason.SYMBOL_HALTED)
            if qty <= 0:
                return self.reject(Reason.INVALID_QTY)
            if price <= 0:
                return self.reject(Reason.INVALID_PRICE)
            bad = self.check_price_qty(spec, price, qty, True)
            if bad:
                return self.reject(bad)
            if order.flags & CommandFlag.POST_ONLY and self.crosses(book, order.side, price):
                return self.reject(Reason.POST_ONLY_WOULD_TAKE)
        before = [book.top(0), book.top(1)]
        if kind == CommandType.CANCEL:
            self.emit(EventType.CANCELLED, oid, 0, order.price, order.qty, acct, order.symbol,
                      order.side, Reason.USER_CANCEL, EventFlag.DONE)  # fmt: skip
            self.remove(book, order)
        elif kind == CommandType.REDUCE:
            order.qty -= qty
            self.emit(EventType.REPLACED, oid, 0, order.price, order.qty, acct, order.symbol,
                      order.side)  # fmt: skip
        else:
            self.emit(EventType.REPLACED, oid, 0, price, qty, acct, order.symbol, order.side)
            if price == order.price and qty <= order.qty:
                order.qty = qty  # smaller (or same) at the same price: keeps its place
            else:
                self.remove(book, order)  # loses time priority
                order.price = price
                order.qty = qty
                self.match(book, order, price)
                if order.qty > 0:
                    self.orders[oid] = order
                    book.rest(order)
        self.tops(book, before)

    def kill_switch(self, acct: int, sym: int) -> None:
        before = {s: [b.top(0), b.top(1)] for s, b in self.books.items()}
        for book in self.books.values():
            for side in (Side.BUY, Side.SELL):
                for o in list(book.sides[side]):
                    if acct == 0 or o.account == acct:
                        self.emit(EventType.CANCELLED, o.order_id, 0, o.price, o.qty, o.account,
                                  o.symbol, o.side, Reason.KILL_SWITCH_CANCEL,
                                  EventFlag.DONE)  # fmt: skip
                        self.remove(book, o)
        self.emit(EventType.KILL_SWITCH, account=acct, symbol=sym)
        for s, book in self.books.items():
            self.tops(book, before[s])
