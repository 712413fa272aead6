"""Synthetic order flow: a seeded, realistic mix of commands for load, benchmarks and demos.

The mix is the kind matching engines are usually measured on: about 58 % passive limit
orders a few ticks from the touch, about 22 % cancels and replaces of recent resting orders
(30 % are drawn; those with no target left become passive orders), and 20 % aggressive IOC
orders sweeping one to five levels, on a mid price
that random-walks per symbol. Generation is vectorised (no Python per command), so the
source can feed a pipeline at millions of commands per second; the same seed always
gives the same flow.

Commands come out unsequenced (``seq`` and ``ts_ingest`` zero): stamping them is ingest's
job (``Stamper``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from stages.records import COMMAND_DTYPE, CommandType, OrderType, Side, TimeInForce

PASSIVE_SHARE = 0.5
CANCEL_REPLACE_SHARE = 0.3  # half cancels, half replaces
RECENT_WINDOW = 16  # cancels/replaces target one of the last this-many passive orders


class SyntheticFlow:
    """An endless, seeded command stream over ``symbols`` and accounts ``1..accounts``.

    ``next(n)`` returns the next ``n`` commands; consecutive calls continue the same
    stream (order ids keep growing, mids keep walking).
    """

    def __init__(
        self,
        symbols: Sequence[int],
        accounts: int,
        seed: int = 7,
        mid: int = 10_000,
        tick: int = 1,
        max_qty: int = 10,
    ) -> None:
        if not symbols:
            raise ValueError("a synthetic flow needs at least one symbol")
        if accounts < 1:
            raise ValueError(f"a synthetic flow needs at least one account, got {accounts}")
        self.symbols = np.asarray(symbols, dtype=np.uint16)
        self.accounts = accounts
        self.tick = tick
        self.max_qty = max_qty
        self._rng = np.random.default_rng(seed)
        self._mids = np.full(len(self.symbols), mid, dtype=np.int64)
        self._next_order_id = 1
        self._recent = np.zeros(0, dtype=COMMAND_DTYPE)  # passive orders of earlier chunks

    def next(self, n: int) -> np.ndarray:
        """The next ``n`` commands of the stream."""
        rng = self._rng
        out = np.zeros(n, dtype=COMMAND_DTYPE)
        draw = rng.random(n)
        passive = draw < PASSIVE_SHARE
        amend = (draw >= PASSIVE_SHARE) & (draw < PASSIVE_SHARE + CANCEL_REPLACE_SHARE)
        aggressive = ~(passive | amend)
        cancel = draw < PASSIVE_SHARE + CANCEL_REPLACE_SHARE / 2
        # Pick each amend's target among recent passive orders (of this chunk or the last);
        # an amend with no target left becomes one more passive order.
        targets = self._pick_targets(passive, amend, rng)
        resting = passive | (amend & (targets < 0))
        amend &= targets >= 0

        which = rng.integers(0, len(self.symbols), n)
        side = rng.integers(0, 2, n).astype(np.uint8)
        mids = self._walk_mids(which, aggressive, rng)
        buy = side == Side.BUY

        new = resting | aggressive
        ids = np.cumsum(new) + self._next_order_id - 1
        self._next_order_id += int(new.sum())
        out["order_id"][new] = ids[new]
        out["kind"][new] = CommandType.NEW
        out["order_type"][new] = OrderType.LIMIT
        out["symbol"][new] = self.symbols[which[new]]
        out["side"][new] = side[new]
        out["account"][new] = 1 + (ids[new] % self.accounts)
        out["qty"][new] = rng.integers(1, self.max_qty + 1, int(new.sum()))

        away = rng.geometric(0.35, n) * self.tick
        out["price"][resting] = np.where(buy, mids - away, mids + away)[resting]
        sweep = rng.integers(1, 6, n) * self.tick
        out["price"][aggressive] = np.where(buy, mids + sweep, mids - sweep)[aggressive]
        out["qty"][aggressive] *= 4
        out["tif"][aggressive] = TimeInForce.IOC

        pool = np.concatenate([self._recent, out[passive]])
        self._recent = pool[-RECENT_WINDOW:].copy()
        rows = pool[targets[amend]]
        out["order_id"][amend] = rows["order_id"]
        out["account"][amend] = rows["account"]
        out["symbol"][amend] = rows["symbol"]
        out["side"][amend] = rows["side"]
        is_cancel = cancel[amend]
        out["kind"][amend] = np.where(is_cancel, CommandType.CANCEL, CommandType.REPLACE)
        drift = rng.integers(-1, 2, len(rows)) * self.tick
        moved = np.maximum(rows["price"] + drift, self.tick)
        out["price"][amend] = np.where(is_cancel, 0, moved)
        out["qty"][amend] = np.where(is_cancel, 0, rows["qty"])
        return out

    def _pick_targets(self, passive: np.ndarray, amend: np.ndarray, rng) -> np.ndarray:
        """Index into (earlier chunk's recent passive orders + this chunk's passive orders)
        of the order each amend row targets; -1 where there is none (or it was taken)."""
        passive_before = np.cumsum(passive) - passive + len(self._recent)
        target = passive_before - rng.integers(1, RECENT_WINDOW + 1, len(passive))
        target[~amend | (target < 0)] = -1
        rows = np.flatnonzero(target >= 0)
        _, first = np.unique(target[rows], return_index=True)
        taken = np.full(len(passive), -1, dtype=np.int64)
        taken[rows[first]] = target[rows[first]]
        return taken

    def _walk_mids(self, which: np.ndarray, moves: np.ndarray, rng) -> np.ndarray:
        """Each symbol's mid at every command: it steps ±1 tick on that symbol's aggressive orders."""
        steps = np.where(moves, rng.integers(-1, 2, len(which)) * self.tick, 0)
        mids = np.empty(len(which), dtype=np.int64)
        for index in range(len(self.symbols)):
            mine = which == index
            walk = np.cumsum(steps[mine]) + self._mids[index]
            mids[mine] = walk
            if len(walk):
                self._mids[index] = max(walk[-1], 10 * self.tick)
        return np.maximum(mids, 10 * self.tick)

    def funding(self, assets: Sequence[int], amount: int) -> np.ndarray:
        """DEPOSIT commands giving every account ``amount`` of every asset."""
        accounts = np.arange(1, self.accounts + 1, dtype=np.uint32)
        out = np.zeros(len(accounts) * len(assets), dtype=COMMAND_DTYPE)
        out["kind"] = CommandType.DEPOSIT
        out["account"] = np.repeat(accounts, len(assets))
        out["symbol"] = np.tile(np.asarray(assets, dtype=np.uint16), len(accounts))
        out["qty"] = amount
        return out


class Stamper:
    """Ingest's stamp: contiguous sequence numbers and the ingest timestamp, per batch.

    Not the Disruptor's ``Sequencer`` (a ring's producer side, ``ringbuffer``): this numbers
    commands before they enter a ring.
    """

    def __init__(self, last_seq: int = 0) -> None:
        self.last_seq = last_seq

    def stamp(self, commands: np.ndarray) -> np.ndarray:
        """Number ``commands`` in place after the last stamped one; hot, O(1) Python."""
        first = self.last_seq + 1
        commands["seq"] = np.arange(first, first + len(commands), dtype=np.int64)
        commands["ts_ingest"] = time.perf_counter_ns()
        self.last_seq += len(commands)
        return commands
