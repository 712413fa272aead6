"""Operator commands as command records: halt, resume, kill switch, deposit.

An operator's request (``tradepipe halt BTC-USD``, a control message the supervisor hands
to ingest) must enter the same sequenced, journaled command stream as orders, so that a
replay of the journal halts, kills and credits exactly where the live run did. Each
function here returns one unsequenced ``COMMAND_DTYPE`` record (``seq`` and ``ts_ingest``
0: ingest stamps them with the batch they join), encoded the way the engine reads it:

| request | kind | account | symbol field | qty |
|---|---|---|---|---|
| ``halt(s)`` / ``resume(s)`` | HALT / RESUME | 0 | the symbol | 0 |
| ``kill_switch(a)`` | KILL_SWITCH (``release``: KILL_SWITCH_RELEASE) | a | 0 | 0 |
| ``kill_switch(None)`` | the same, global | 0 | 0 | 0 |
| ``deposit(a, x, n)`` | DEPOSIT | a | the asset | n |

Account 0 is the fee account and, in a kill switch, means "every account" (risk's global
switch, ``G_KILL_ALL``; matching then cancels every resting order): so ``kill_switch(0)``
is refused here rather than silently meaning all; pass None for that. Values that do not
fit their fields, or that the engine would reject for certain (an account 0 deposit, an
amount risk never holds), raise ``ValueError`` naming the value and the range, before
anything is sequenced.
"""

from __future__ import annotations

import numpy as np

from stages.records import COMMAND_DTYPE, CommandType
from stages.risk.config import MAX_ID
from stages.risk.layout import AMOUNT_LIMIT

#: the largest account id a record holds (``account`` is a uint32)
MAX_ACCOUNT = 2**32 - 1
#: the most one deposit may credit: risk refuses to hold more of one asset over all accounts
MAX_AMOUNT = AMOUNT_LIMIT


def halt(symbol: int) -> np.ndarray:
    """HALT ``symbol``: risk and matching reject its new orders until a RESUME."""
    return _record(CommandType.HALT, symbol=_symbol(symbol))


def resume(symbol: int) -> np.ndarray:
    """RESUME a halted ``symbol``."""
    return _record(CommandType.RESUME, symbol=_symbol(symbol))


def kill_switch(account: int | None, release: bool = False) -> np.ndarray:
    """Engage (or with ``release`` lift) the kill switch of ``account``, or of every account
    with None. Engaging also cancels the account's (every) resting order."""
    kind = CommandType.KILL_SWITCH_RELEASE if release else CommandType.KILL_SWITCH
    if account is None:
        return _record(kind)  # account 0: risk's global switch
    if account == 0:
        raise ValueError(
            "account 0 is the fee account, and in a kill switch would mean every account: "
            "pass None for every account"
        )
    return _record(kind, account=_account(account))


def deposit(account: int, asset: int, amount: int) -> np.ndarray:
    """Credit ``amount`` units of ``asset`` to ``account`` (a BALANCE event confirms it)."""
    _check("asset", asset, 0, MAX_ID, "an asset id")
    _check("amount", amount, 1, MAX_AMOUNT, "the most of one asset risk holds is 2**61")
    return _record(CommandType.DEPOSIT, account=_account(account), symbol=asset, qty=amount)


def _record(kind: CommandType, *, account: int = 0, symbol: int = 0, qty: int = 0) -> np.ndarray:
    record = np.zeros(1, dtype=COMMAND_DTYPE)
    record["kind"] = kind
    record["account"] = account
    record["symbol"] = symbol
    record["qty"] = qty
    return record


def _symbol(symbol: int) -> int:
    _check("symbol", symbol, 0, MAX_ID, "a symbol id")
    return symbol


def _account(account: int) -> int:
    """An account id 1..MAX_ACCOUNT (0, the fee account, stands for "every account")."""
    _check("account", account, 1, MAX_ACCOUNT, "account 0 is the fee account")
    return account


def _check(name: str, value: int, low: int, high: int, why: str) -> None:
    # a bool is an int to Python, never an id to a caller; numpy integers are fine
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} {value!r} is not an integer")
    if not low <= value <= high:
        raise ValueError(f"{name} {value} is out of range: expected {low}..{high} ({why})")
