"""The subscriber side of market data: one symbol's top N, kept in sequence.

``LocalBook`` applies a symbol's messages in the order of their sequence numbers. It
starts out of sync and only a ``Snapshot`` brings it in sync; from then on it applies the
update whose seq is exactly one more than the last, drops older ones (already contained
in what it holds), and on a jump stops applying and says it needs a snapshot — applying
past a gap would show a book that never existed. A message of another publisher epoch
(the publisher restarted) makes it out of sync too, until a snapshot of that epoch.
"""

from __future__ import annotations

from collections import deque
from enum import Enum

from stages.records import Side

from .messages import BBO, Depth, Message, Snapshot, Status, Trades, TradeTick


class Applied(Enum):
    """What ``LocalBook.apply`` did with a message."""

    APPLIED = "applied"  # the book now includes it
    STALE = "stale"  # older than (or as old as) what the book holds: dropped
    GAP = "gap"  # a message between the last applied and this one is missing: resync
    UNSYNCED = "unsynced"  # no snapshot yet (or since a gap / a new epoch): dropped


class LocalBook:
    """One symbol's top N as its subscriber holds it, with gap detection.

    ``needs_snapshot`` is True until the first snapshot, and again after a gap or a new
    publisher epoch; while it is, updates are dropped and the book is the last one known
    good. ``depth()`` has the shape of ``MatchingEngine.depth``: (price, qty, count) rows,
    best first.
    """

    def __init__(self, symbol: int, trades_kept: int = 50) -> None:
        self.symbol = symbol
        self.epoch: int | None = None
        self.seq = 0  # the last message applied (or the snapshot's)
        self.cmd_seq = 0
        self.needs_snapshot = True
        self.gaps = 0  # how many times a missing message was detected
        self.levels = 0
        self.halted = False
        self.bids: dict[int, tuple[int, int]] = {}  # price -> (qty, count)
        self.asks: dict[int, tuple[int, int]] = {}
        self.bbo = (0, 0, 0, 0)  # bid price, bid qty, ask price, ask qty
        self.last_trades: deque[TradeTick] = deque(maxlen=trades_kept)

    def apply(self, message: Message) -> Applied:
        """Apply ``message`` if it is the next one (or a snapshot the book can use)."""
        if message.symbol != self.symbol:
            raise ValueError(f"message of symbol {message.symbol} for the book of {self.symbol}")
        if isinstance(message, Snapshot):
            return self._snapshot(message)
        if message.epoch != self.epoch:
            self.needs_snapshot = True
            return Applied.UNSYNCED
        if self.needs_snapshot:
            return Applied.UNSYNCED
        if message.seq <= self.seq:
            return Applied.STALE
        if message.seq != self.seq + 1:
            self.needs_snapshot = True
            self.gaps += 1
            return Applied.GAP
        if isinstance(message, Depth):
            for update in message.updates:
                side = self.bids if update.side == Side.BUY else self.asks
                if update.qty == 0:
                    side.pop(update.price, None)
                else:
                    side[update.price] = (update.qty, update.count)
        elif isinstance(message, Trades):
            self.last_trades.extend(message.trades)
        elif isinstance(message, BBO):
            self.bbo = (message.bid_price, message.bid_qty, message.ask_price, message.ask_qty)
        elif isinstance(message, Status):
            self.halted = message.halted
        self.seq, self.cmd_seq = message.seq, message.cmd_seq
        return Applied.APPLIED

    def _snapshot(self, snap: Snapshot) -> Applied:
        """Take a snapshot when out of sync, or when it is newer than the book (which then
        missed messages it had not noticed yet); an older or equal one adds nothing."""
        in_sync = not self.needs_snapshot and snap.epoch == self.epoch
        if in_sync and snap.seq <= self.seq:
            return Applied.STALE
        self.epoch, self.seq, self.cmd_seq = snap.epoch, snap.seq, snap.cmd_seq
        self.levels, self.halted = snap.levels, snap.halted
        self.bids = {lv.price: (lv.qty, lv.count) for lv in snap.bids}
        self.asks = {lv.price: (lv.qty, lv.count) for lv in snap.asks}
        best_bid = snap.bids[0] if snap.bids else None
        best_ask = snap.asks[0] if snap.asks else None
        self.bbo = (
            best_bid.price if best_bid else 0,
            best_bid.qty if best_bid else 0,
            best_ask.price if best_ask else 0,
            best_ask.qty if best_ask else 0,
        )
        self.needs_snapshot = False
        return Applied.APPLIED

    def depth(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """(bids, asks): (price, qty, count) rows, best first."""
        bids = [(p, *self.bids[p]) for p in sorted(self.bids, reverse=True)]
        asks = [(p, *self.asks[p]) for p in sorted(self.asks)]
        return bids, asks
