"""Builders of command and event records for the risk, engine and throttle tests (a helper
module: test modules import from here, never from each other)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from stages.records import (
    CommandType,
    EventFlag,
    EventType,
    OrderType,
    Side,
    TimeInForce,
    empty_commands,
    empty_events,
)

USD, BTC = 0, 1
BTCUSD = 1


class Seq:
    """Hands out increasing sequence numbers, like ingest does."""

    def __init__(self) -> None:
        self._it = itertools.count(1)

    def __call__(self) -> int:
        return next(self._it)


def _batch(empty: Callable[[int], np.ndarray], rows: tuple[dict, ...]) -> np.ndarray:
    """A zeroed batch with one record per dict, each field set from its dict."""
    batch = empty(len(rows))
    for i, row in enumerate(rows):
        for key, value in row.items():
            batch[key][i] = value
    return batch


def commands(*rows: dict) -> np.ndarray:
    return _batch(empty_commands, rows)


def new(seq, order_id, account, side, price, qty, *, symbol=BTCUSD, market=False, tif=0, ts=0):
    return dict(
        seq=seq, kind=CommandType.NEW, order_id=order_id, account=account, side=side,
        price=price, qty=qty, symbol=symbol,
        order_type=OrderType.MARKET if market else OrderType.LIMIT,
        tif=TimeInForce(tif), ts_ingest=ts,
    )  # fmt: skip


def buy(seq, order_id, account, price, qty, **kw):
    return new(seq, order_id, account, Side.BUY, price, qty, **kw)


def sell(seq, order_id, account, price, qty, **kw):
    return new(seq, order_id, account, Side.SELL, price, qty, **kw)


def admin(seq, kind, account=0, symbol=0, qty=0, ts=0):
    return dict(seq=seq, kind=kind, account=account, symbol=symbol, qty=qty, ts_ingest=ts)


def deposit(seq, account, asset, amount):
    return admin(seq, CommandType.DEPOSIT, account, asset, amount)


def withdraw(seq, account, asset, amount):
    return admin(seq, CommandType.WITHDRAW, account, asset, amount)


def cancel(seq, order_id, account, symbol=BTCUSD, ts=0):
    return dict(
        seq=seq, kind=CommandType.CANCEL, order_id=order_id, account=account, symbol=symbol,
        ts_ingest=ts,
    )  # fmt: skip


def replace(seq, order_id, account, price, qty, symbol=BTCUSD, ts=0):
    return dict(
        seq=seq, kind=CommandType.REPLACE, order_id=order_id, account=account, price=price,
        qty=qty, symbol=symbol, ts_ingest=ts,
    )  # fmt: skip


def events(*rows: dict) -> np.ndarray:
    return _batch(empty_events, rows)


def ev(kind: EventType, seq, order_id, account, side, price=0, qty=0, *, flags=0, reason=0,
       symbol=BTCUSD, other_id=0):  # fmt: skip
    return dict(
        kind=kind, seq=seq, order_id=order_id, account=account, side=side, price=price,
        qty=qty, flags=flags, reason=reason, symbol=symbol, other_id=other_id,
    )  # fmt: skip


def trade(seq, taker, maker, price, qty, *, taker_done=False, maker_done=False):
    """The TRADE pair matching emits: ``taker`` and ``maker`` are (order_id, account, side)."""
    t_flags = EventFlag.TAKER | (EventFlag.DONE if taker_done else 0)
    m_flags = EventFlag.MAKER | (EventFlag.DONE if maker_done else 0)
    return [
        ev(EventType.TRADE, seq, taker[0], taker[1], taker[2], price, qty, flags=t_flags,
           other_id=maker[0]),
        ev(EventType.TRADE, seq, maker[0], maker[1], maker[2], price, qty, flags=m_flags,
           other_id=taker[0]),
    ]  # fmt: skip
