"""Ingest checks: a malformed command gets an INVALID_* (or UNKNOWN_ACCOUNT) reason at the door.

Everything here is a property of the command alone (plus the number of accounts), so it is
checked once, before throttling, risk or matching spend work on it: unknown kind, side, order
type, time in force, self-trade-prevention mode or flag bits; post-only on anything but a GTC
limit order; order ids <= 0; non-positive quantities; non-positive limit prices or negative
market protection prices; order commands from account 0 (reserved for fees and "every
account") or beyond the configured accounts. A refused command keeps flowing with ``reason``
set, so matching answers it with one REJECTED event.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stages.records import (
    COMMAND_DTYPE,
    CommandFlag,
    CommandType,
    OrderType,
    Reason,
    SelfTradePrevention,
    TimeInForce,
)

_NEW = int(CommandType.NEW)
_CANCEL = int(CommandType.CANCEL)
_REDUCE = int(CommandType.REDUCE)
_REPLACE = int(CommandType.REPLACE)
_HALT = int(CommandType.HALT)
_RESUME = int(CommandType.RESUME)
_KILL = int(CommandType.KILL_SWITCH)
_KILL_RELEASE = int(CommandType.KILL_SWITCH_RELEASE)
_DEPOSIT = int(CommandType.DEPOSIT)
_WITHDRAW = int(CommandType.WITHDRAW)
_MARKET = int(OrderType.MARKET)
_LIMIT = int(OrderType.LIMIT)
_GTC = int(TimeInForce.GTC)
_MAX_ORDER_TYPE = int(max(OrderType))
_MAX_TIF = int(max(TimeInForce))
_MAX_STP = int(max(SelfTradePrevention))
_POST_ONLY = int(CommandFlag.POST_ONLY)
_KNOWN_FLAGS = int(CommandFlag.POST_ONLY)
_INVALID_COMMAND = int(Reason.INVALID_COMMAND)
_INVALID_QTY = int(Reason.INVALID_QTY)
_INVALID_PRICE = int(Reason.INVALID_PRICE)
_UNKNOWN_ACCOUNT = int(Reason.UNKNOWN_ACCOUNT)


@njit(cache=True, _nrt=False)
def _check_one(kind, order_id, price, qty, account, side, otype, tif, stp, flags, n_acc) -> int:
    if kind in (_NEW, _CANCEL, _REDUCE, _REPLACE, _DEPOSIT, _WITHDRAW):
        if account == 0 or account >= n_acc:
            return _UNKNOWN_ACCOUNT
    elif kind in (_HALT, _RESUME, _KILL, _KILL_RELEASE):
        if account >= n_acc:
            return _UNKNOWN_ACCOUNT
        return 0
    else:
        return _INVALID_COMMAND
    if kind in (_DEPOSIT, _WITHDRAW):
        return _INVALID_QTY if qty <= 0 else 0
    if order_id <= 0:
        return _INVALID_COMMAND
    if kind == _CANCEL:
        return 0
    if qty <= 0:
        return _INVALID_QTY
    if kind == _REDUCE:
        return 0
    if kind == _REPLACE:
        return _INVALID_PRICE if price <= 0 else 0
    # NEW
    if side > 1 or otype > _MAX_ORDER_TYPE or tif > _MAX_TIF or stp > _MAX_STP:
        return _INVALID_COMMAND
    if (flags & ~_KNOWN_FLAGS) != 0:
        return _INVALID_COMMAND
    if (flags & _POST_ONLY) != 0 and (otype != _LIMIT or tif != _GTC):
        return _INVALID_COMMAND
    if otype == _MARKET:
        return _INVALID_PRICE if price < 0 else 0
    return _INVALID_PRICE if price <= 0 else 0


@njit(cache=True, _nrt=False)
def _validate(kind, order_id, price, qty, account, side, otype, tif, stp, flags, reason, n_acc):
    bad = 0
    for i in range(kind.shape[0]):
        if reason[i] != 0:
            continue
        r = _check_one(
            kind[i], order_id[i], price[i], qty[i], account[i], side[i], otype[i], tif[i],
            stp[i], flags[i], n_acc,
        )  # fmt: skip
        if r != 0:
            reason[i] = r
            bad += 1
    return bad


def validate(commands: np.ndarray, max_accounts: int) -> int:
    """Set ``reason`` of every malformed command in ``commands`` (in place); returns how many.

    Hot: one compiled pass, no allocation per record. Commands already refused are skipped.
    Account ids must be below ``max_accounts``; account 0 may only send admin commands.
    """
    if commands.dtype != COMMAND_DTYPE:
        raise TypeError(f"commands must be a COMMAND_DTYPE array, got dtype {commands.dtype}")
    c = commands
    return int(
        _validate(
            c["kind"], c["order_id"], c["price"], c["qty"], c["account"], c["side"],
            c["order_type"], c["tif"], c["stp"], c["flags"], c["reason"], np.int64(max_accounts),
        )
    )  # fmt: skip
