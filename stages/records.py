"""The fixed-size binary records every stage exchanges, and every code they carry.

This module is the contract between ingest, risk, matching and persistence: the rings and
the journal hold nothing but these two 64-byte layouts (one cache line each), and every
command type, side, time in force, self-trade-prevention mode, event type and reject
reason is a value of one enum here, so a reason is a number with one name, not a string
built in three places. ``docs/records.md`` documents every field and code.

Units: prices are integers in the symbol's price unit (its tick is a multiple of that
unit), quantities are integers in lots, timestamps are ``time.perf_counter_ns()`` (the
same monotonic clock in every process on a host).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

RECORD_SIZE = 64


class CommandType(IntEnum):
    """What a command record asks for (``COMMAND_DTYPE.kind``)."""

    NEW = 1  # a new order: order_type, tif, flags, stp, side, price, qty
    CANCEL = 2  # cancel order_id (account must own it)
    REDUCE = 3  # reduce order_id's open quantity BY qty; keeps time priority
    REPLACE = 4  # move order_id to price / total open qty; see docs/records.md
    HALT = 10  # halt trading in symbol
    RESUME = 11  # resume trading in symbol
    KILL_SWITCH = 12  # account != 0: that account; account == 0: every account
    KILL_SWITCH_RELEASE = 13
    DEPOSIT = 20  # credit qty units of asset `symbol` to account
    WITHDRAW = 21  # debit qty units of asset `symbol` from account


class Side(IntEnum):
    BUY = 0
    SELL = 1


class OrderType(IntEnum):
    LIMIT = 0
    MARKET = 1


class TimeInForce(IntEnum):
    GTC = 0  # rests until cancelled
    IOC = 1  # fill what is available now, cancel the rest
    FOK = 2  # fill all of it now or nothing


class SelfTradePrevention(IntEnum):
    """What happens when an order would trade against a resting order of its own account."""

    NONE = 0  # trade with yourself
    CANCEL_RESTING = 1  # cancel the resting order, keep matching ("expire maker")
    CANCEL_AGGRESSOR = 2  # cancel the rest of the incoming order ("expire taker")
    CANCEL_BOTH = 3  # cancel both
    DECREMENT_AND_CANCEL = 4  # reduce both by the smaller quantity, cancel the smaller


class CommandFlag(IntEnum):
    """Bits of ``COMMAND_DTYPE.flags``."""

    POST_ONLY = 1  # reject instead of taking liquidity; never repriced


class CommandOrigin(IntEnum):
    """Where a command entered (``COMMAND_DTYPE.origin``); no kernel reads it.

    A restarted ingest skips as many of its source's commands as the journal holds of
    ``SOURCE`` origin: the admin commands an operator sent in between are not its source's.
    """

    SOURCE = 0  # the configured load: synthetic, a file, a gateway
    CONTROL = 1  # an admin command from the control plane (tradepipe halt, deposit, ...)


class EventType(IntEnum):
    """What an event record reports (``EVENT_DTYPE.kind``)."""

    ACCEPTED = 1  # order_id now rests (or was processed) with qty open
    REJECTED = 2  # command refused; reason says why; nothing changed
    TRADE = 3  # one side of a trade; emitted in pairs: taker's, then maker's
    CANCELLED = 4  # qty of order_id removed; reason says why (user, IOC remainder, STP...)
    REPLACED = 5  # order_id now at price with qty open
    BOOK_TOP = 6  # best level of `side` changed: price, qty (total), other_id (order count)
    HALTED = 7  # symbol halted
    RESUMED = 8  # symbol resumed
    BALANCE = 9  # deposit/withdrawal applied: qty units of asset `symbol`
    KILL_SWITCH = 10  # kill switch engaged for account (0 = global)
    KILL_SWITCH_RELEASED = 11


class EventFlag(IntEnum):
    """Bits of ``EVENT_DTYPE.flags``."""

    MAKER = 1  # TRADE: this side was the resting (maker) order
    TAKER = 2  # TRADE: this side was the incoming (taker) order
    DONE = 4  # the order is complete: no quantity left open after this event


class Reason(IntEnum):
    """Why a command was rejected or an order cancelled (``reason`` of both dtypes).

    One enum for the whole pipeline: ingest, risk and matching each own a range so a code
    also says which stage decided.
    """

    OK = 0
    # --- cancellations that are not errors (CANCELLED events) ---
    USER_CANCEL = 1
    IOC_REMAINDER = 2
    FOK_NOT_FILLED = 3
    MARKET_NO_LIQUIDITY = 4  # market order remainder with nothing left to take
    SELF_TRADE = 5  # removed by self-trade prevention
    KILL_SWITCH_CANCEL = 6  # resting order cancelled by a kill switch
    # --- ingest: malformed or throttled input (20..39) ---
    INVALID_COMMAND = 20  # unknown kind, side, order type, tif, stp or flags
    INVALID_QTY = 21  # zero or negative quantity
    INVALID_PRICE = 22  # non-positive limit price
    THROTTLED = 23  # per-client new-order token bucket empty
    THROTTLED_CANCEL = 24  # per-client cancel/replace token bucket empty
    SYMBOL_RATE = 25  # per-symbol message-rate guard
    BUSY = 26  # pipeline full; a source that cannot wait rejected it
    UNKNOWN_ACCOUNT = 27
    # --- risk (40..69) ---
    INSUFFICIENT_FUNDS = 40
    LIMIT_MAX_QTY = 41
    LIMIT_MAX_NOTIONAL = 42
    LIMIT_OPEN_ORDERS = 43
    LIMIT_POSITION = 44
    PRICE_COLLAR = 45
    KILL_SWITCH = 46  # account or global kill switch engaged
    SYMBOL_HALTED = 47
    INSUFFICIENT_BALANCE = 48  # withdrawal above the free balance
    NOTIONAL_NO_PRICE = 49  # a notional limit is set and no price values the order
    # --- matching (70..99) ---
    UNKNOWN_SYMBOL = 70
    UNKNOWN_ORDER = 71
    DUPLICATE_ORDER_ID = 72
    NOT_OWNER = 73  # cancel/replace of another account's order
    TICK_SIZE = 74  # price not a multiple of the tick
    LOT_SIZE = 75  # qty not a multiple of the lot
    MIN_QTY = 76
    MAX_QTY = 77
    PRICE_BAND = 78  # outside the symbol's static price band
    POST_ONLY_WOULD_TAKE = 79
    REDUCE_TOO_LARGE = 80  # reduce by more than (or all of) the open qty: use cancel


#: A command travelling ingest -> risk -> matching, and the journal's record.
COMMAND_DTYPE = np.dtype(
    [
        ("seq", "<i8"),  # assigned by ingest, contiguous from 1
        ("ts_ingest", "<i8"),  # perf_counter_ns stamped by ingest
        ("ts_risk", "<i8"),  # perf_counter_ns stamped by risk (0 before)
        ("order_id", "<i8"),  # order the command is about
        ("price", "<i8"),  # limit price (NEW, REPLACE); 0 for market orders
        ("qty", "<i8"),  # lots (NEW, REPLACE total, REDUCE by); asset units (DEPOSIT...)
        ("account", "<u4"),
        ("symbol", "<u2"),  # symbol id; asset id for DEPOSIT / WITHDRAW
        ("kind", "u1"),  # CommandType
        ("side", "u1"),  # Side
        ("order_type", "u1"),  # OrderType
        ("tif", "u1"),  # TimeInForce
        ("stp", "u1"),  # SelfTradePrevention
        ("flags", "u1"),  # CommandFlag bits
        ("reason", "u1"),  # Reason set by ingest or risk when it rejects; 0 = passed
        ("origin", "u1"),  # CommandOrigin: the load source, or the control plane
        ("_pad", "u1", (2,)),
    ]
)

#: An outcome travelling matching -> persistence / risk settlement / gateway / market data.
EVENT_DTYPE = np.dtype(
    [
        ("seq", "<i8"),  # seq of the command that produced this event
        ("ts_ingest", "<i8"),  # copied from the command (its ts_risk stays in the journal)
        ("order_id", "<i8"),
        ("other_id", "<i8"),  # TRADE: counterparty order id; BOOK_TOP: order count
        ("price", "<i8"),
        ("qty", "<i8"),
        ("dt_match", "<u4"),  # ns from ts_ingest to the matching stamp (saturates at 2**32-1)
        ("account", "<u4"),  # account owning order_id
        ("symbol", "<u2"),
        ("kind", "u1"),  # EventType
        ("side", "u1"),  # Side of order_id (BOOK_TOP: side of the level)
        ("reason", "u1"),  # Reason (REJECTED, CANCELLED)
        ("flags", "u1"),  # EventFlag bits
        ("_pad", "u1", (2,)),
    ]
)

assert COMMAND_DTYPE.itemsize == RECORD_SIZE, COMMAND_DTYPE.itemsize
assert EVENT_DTYPE.itemsize == RECORD_SIZE, EVENT_DTYPE.itemsize


def empty_commands(n: int) -> np.ndarray:
    """A zeroed batch of ``n`` command records."""
    return np.zeros(n, dtype=COMMAND_DTYPE)


def empty_events(n: int) -> np.ndarray:
    """A zeroed batch of ``n`` event records."""
    return np.zeros(n, dtype=EVENT_DTYPE)
