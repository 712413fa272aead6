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
def _validate(words, n_acc, last_seq, check_seq):
    """Returns (refused, index of the first seq not above its predecessor or -1); with a bad
    seq nothing is written."""
    prev = last_seq
    for i in range(words.shape[0] if check_seq else 0):
        if words[i, 0] <= prev:
            return 0, i
        prev = words[i, 0]
    bad = 0
    for i in range(words.shape[0]):
        w6 = words[i, 6]
        w7 = words[i, 7]
        if (w7 >> 32) & 0xFF != 0:
            continue
        r = _check_one(
            (w6 >> 48) & 0xFF, words[i, 3], words[i, 4], words[i, 5], w6 & 0xFFFFFFFF,
            (w6 >> 56) & 0xFF, w7 & 0xFF, (w7 >> 8) & 0xFF, (w7 >> 16) & 0xFF,
            (w7 >> 24) & 0xFF, n_acc,
        )  # fmt: skip
        if r != 0:
            words[i, 7] = (w7 & ~(0xFF << 32)) | (r << 32)
            bad += 1
    return bad, -1


def validate(commands: np.ndarray, max_accounts: int) -> int:
    """Set ``reason`` of every malformed command in ``commands`` (in place); returns how many.

    Hot: one compiled pass, no allocation per record. Commands already refused are skipped.
    Account ids must be below ``max_accounts``; account 0 may only send admin commands.
    """
    return validate_words(command_words(commands), max_accounts, 0, False)[0]


def validate_sequenced(commands: np.ndarray, max_accounts: int, last_seq: int) -> tuple[int, int]:
    """``validate``, also finding the first command whose seq is not above the previous one
    (``last_seq`` before the first); returns ``(refused, that index or -1)``.

    With a bad seq nothing is validated or written: the caller decides (the ``Engine``
    raises before anything of the batch is applied).
    """
    return validate_words(command_words(commands), max_accounts, last_seq, True)


def validate_words(
    words: np.ndarray, max_accounts: int, last_seq: int, check_seq: bool
) -> tuple[int, int]:
    """``validate`` (and with ``check_seq`` ``validate_sequenced``) of a batch already viewed
    as int64 words (``command_words``), for callers that hold that view anyway (the Engine).
    """
    bad, bad_seq = _validate(words, max_accounts, last_seq, check_seq)
    return int(bad), int(bad_seq)


def command_words(commands: np.ndarray) -> np.ndarray:
    """``commands`` (a 1-d, contiguous COMMAND_DTYPE batch) as int64 rows of 8 words, sharing
    its memory, so compiled passes take one argument instead of a view per field.

    Built from the buffer, not with ``.view``: numpy checks a view of a structured dtype in
    Python (~0.7 µs), which the per-batch path of the Engine pays for nothing.
    """
    if (commands.dtype is not COMMAND_DTYPE and commands.dtype != COMMAND_DTYPE) or (
        commands.ndim != 1
    ):
        raise TypeError(f"commands must be a 1-d COMMAND_DTYPE array, got dtype {commands.dtype}")
    if not commands.flags.c_contiguous:
        raise ValueError("commands must be a contiguous array (not a strided view)")
    return np.ndarray((len(commands), 8), np.int64, commands)
