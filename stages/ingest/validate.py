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

from stages.kernel_codes import (
    CF_POST_ONLY,
    CMD_CANCEL,
    CMD_DEPOSIT,
    CMD_HALT,
    CMD_KILL_SWITCH,
    CMD_KILL_SWITCH_RELEASE,
    CMD_NEW,
    CMD_REDUCE,
    CMD_REPLACE,
    CMD_RESUME,
    CMD_WITHDRAW,
    KNOWN_COMMAND_FLAGS,
    MAX_ORDER_TYPE,
    MAX_SIDE,
    MAX_STP,
    MAX_TIF,
    OT_LIMIT,
    OT_MARKET,
    R_INVALID_COMMAND,
    R_INVALID_PRICE,
    R_INVALID_QTY,
    R_UNKNOWN_ACCOUNT,
    TIF_GTC,
)
from stages.record_words import (
    C_ACCOUNT,
    C_FLAGS,
    C_KIND,
    C_ORDER_ID,
    C_ORDER_TYPE,
    C_PRICE,
    C_QTY,
    C_REASON,
    C_SEQ,
    C_SIDE,
    C_STP,
    C_TIF,
    command_words,
    get,
    put,
)


@njit(cache=True, _nrt=False)
def _check_one(kind, order_id, price, qty, account, side, otype, tif, stp, flags, n_acc) -> int:
    if kind in (CMD_NEW, CMD_CANCEL, CMD_REDUCE, CMD_REPLACE, CMD_DEPOSIT, CMD_WITHDRAW):
        if account == 0 or account >= n_acc:
            return R_UNKNOWN_ACCOUNT
    elif kind in (CMD_HALT, CMD_RESUME, CMD_KILL_SWITCH, CMD_KILL_SWITCH_RELEASE):
        if account >= n_acc:
            return R_UNKNOWN_ACCOUNT
        return 0
    else:
        return R_INVALID_COMMAND
    if kind in (CMD_DEPOSIT, CMD_WITHDRAW):
        return R_INVALID_QTY if qty <= 0 else 0
    if order_id <= 0:
        return R_INVALID_COMMAND
    if kind == CMD_CANCEL:
        return 0
    if qty <= 0:
        return R_INVALID_QTY
    if kind == CMD_REDUCE:
        return 0
    if kind == CMD_REPLACE:
        return R_INVALID_PRICE if price <= 0 else 0
    # NEW
    if side > MAX_SIDE or otype > MAX_ORDER_TYPE or tif > MAX_TIF or stp > MAX_STP:
        return R_INVALID_COMMAND
    if (flags & ~KNOWN_COMMAND_FLAGS) != 0:
        return R_INVALID_COMMAND
    if (flags & CF_POST_ONLY) != 0 and (otype != OT_LIMIT or tif != TIF_GTC):
        return R_INVALID_COMMAND
    if otype == OT_MARKET:
        return R_INVALID_PRICE if price < 0 else 0
    return R_INVALID_PRICE if price <= 0 else 0


@njit(cache=True, _nrt=False)
def _validate(words, n_acc, last_seq, check_seq):
    """Returns (refused, index of the first seq not above its predecessor or -1); with a bad
    seq nothing is written."""
    prev = last_seq
    for i in range(words.shape[0] if check_seq else 0):
        seq = get(words, i, C_SEQ)
        if seq <= prev:
            return 0, i
        prev = seq
    bad = 0
    for i in range(words.shape[0]):
        if get(words, i, C_REASON) != 0:
            continue
        r = _check_one(
            get(words, i, C_KIND), get(words, i, C_ORDER_ID), get(words, i, C_PRICE),
            get(words, i, C_QTY), get(words, i, C_ACCOUNT), get(words, i, C_SIDE),
            get(words, i, C_ORDER_TYPE), get(words, i, C_TIF), get(words, i, C_STP),
            get(words, i, C_FLAGS), n_acc,
        )  # fmt: skip
        if r != 0:
            put(words, i, C_REASON, r)
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
    as int64 words (``record_words.command_words``), for callers that hold that view anyway
    (the Engine).
    """
    bad, bad_seq = _validate(words, max_accounts, last_seq, check_seq)
    return int(bad), int(bad_seq)
