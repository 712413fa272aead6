"""A LOBSTER slice's starting book: one resting order per level of its first orderbook row.

A LOBSTER slice starts with a non-empty book. Its orderbook file's first row (the book
after the first message) is entered as one GTC order per non-empty level, ids
``SEED_ID_BASE + 2 × level + side``. Messages that name an order never added then apply
to the seeded order at their side and price while it has shares left (the translation
kernel looks it up by ``seed_key``). The translator's updates of the remaining sizes are
a prediction; after every batch ``SeededBook.resync`` replaces them with what the
engine's events did to those orders (an IOC for a newer order at a seeded level takes
the older seeded order first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import types as nbtypes
from numba.typed import Dict

from stages.feed_replay.driver import REPLAY_ACCOUNT
from stages.ingest.lobster import (
    ASK_PRICE_COL,
    ASK_SIZE_COL,
    BID_PRICE_COL,
    BID_SIZE_COL,
    EMPTY_ASK_PRICE,
    EMPTY_BID_PRICE,
    LEVEL_COLUMNS,
)
from stages.records import COMMAND_DTYPE, CommandType, EventType, Side

#: Order ids of the seeded LOBSTER book: this base + 2 × level + side.
SEED_ID_BASE = 1 << 61


@numba.njit(inline="always")
def seed_key(price, side):
    """The key of a seeded level: its price and side (prices are bounded by 2**62)."""
    return price * 2 + side


def seed_commands(first_row: np.ndarray, levels: int, symbol: int) -> np.ndarray:
    """One resting GTC order per non-empty level of a LOBSTER orderbook row."""
    rows = []
    for lvl in range(min(levels, first_row.shape[0] // LEVEL_COLUMNS)):
        level = first_row[LEVEL_COLUMNS * lvl : LEVEL_COLUMNS * (lvl + 1)]
        ask_price, ask_size = level[ASK_PRICE_COL], level[ASK_SIZE_COL]
        bid_price, bid_size = level[BID_PRICE_COL], level[BID_SIZE_COL]
        if ask_size > 0 and ask_price != EMPTY_ASK_PRICE:
            rows.append((SEED_ID_BASE + 2 * lvl + 1, ask_price, ask_size, int(Side.SELL)))
        if bid_size > 0 and bid_price != EMPTY_BID_PRICE:
            rows.append((SEED_ID_BASE + 2 * lvl, bid_price, bid_size, int(Side.BUY)))
    commands = np.zeros(len(rows), dtype=COMMAND_DTYPE)
    for i, (oid, price, size, side) in enumerate(rows):
        commands[i]["order_id"] = oid
        commands[i]["price"] = price
        commands[i]["qty"] = size
        commands[i]["side"] = side
    commands["kind"] = int(CommandType.NEW)
    commands["symbol"] = symbol
    commands["account"] = REPLAY_ACCOUNT
    return commands


@dataclass
class SeededBook:
    """The seeded orders (``commands``, slot = index) and what is left of each.

    ``slot_of_level`` (a numba typed dict, for the kernel) maps ``seed_key`` to a slot;
    ``remaining[slot]`` and ``order_ids[slot]`` are that order's open size and id.
    """

    commands: np.ndarray
    slot_of_level: Dict
    remaining: np.ndarray
    order_ids: np.ndarray
    slot_of_id: dict[int, int]

    @classmethod
    def from_row(cls, first_row: np.ndarray | None, symbol: int) -> SeededBook:
        """The orders of every level ``first_row`` has (none without a row)."""
        if first_row is None:
            commands = np.zeros(0, dtype=COMMAND_DTYPE)
        else:
            first_row = np.asarray(first_row, dtype=np.int64)
            commands = seed_commands(first_row, first_row.shape[0] // LEVEL_COLUMNS, symbol)
        slot_of_level = Dict.empty(key_type=nbtypes.int64, value_type=nbtypes.int64)
        for i, cmd in enumerate(commands):
            # seed_key's Python body: the kernel's key, without compiling for a few orders
            slot_of_level[seed_key.py_func(int(cmd["price"]), int(cmd["side"]))] = i
        order_ids = commands["order_id"].astype(np.int64)
        return cls(
            commands,
            slot_of_level,
            commands["qty"].astype(np.int64),
            order_ids,
            {int(oid): i for i, oid in enumerate(order_ids)},
        )

    def __len__(self) -> int:
        return len(self.commands)

    def resync(self, events: np.ndarray, before: np.ndarray) -> None:
        """Set the remaining sizes to ``before`` (the sizes at the start of the batch)
        updated by what the engine's ``events`` did to the seeded orders."""
        remaining = self.remaining
        remaining[:] = before
        ids = events["order_id"]
        mask = (ids >= SEED_ID_BASE) & (ids < SEED_ID_BASE + 2 * len(remaining) + 2)
        for event in events[mask]:
            slot = self.slot_of_id.get(int(event["order_id"]))
            if slot is None:
                continue
            kind = int(event["kind"])
            if kind == EventType.TRADE:
                remaining[slot] -= int(event["qty"])
            elif kind == EventType.CANCELLED:
                remaining[slot] = 0
            elif kind == EventType.REPLACED:
                remaining[slot] = int(event["qty"])
