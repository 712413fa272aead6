"""Every code of ``stages.records`` as a plain int, for compiled kernels.

numba folds a module-level int into the code as a constant; an ``IntEnum`` member it would
type as an enum. So kernels import their codes from here: one name per code, ``PREFIX_NAME``
(``CMD_NEW``, ``EV_TRADE``, ``R_SELF_TRADE``, ...), each *taken from* its enum, never
written as a literal. ``tests/test_record_words.py`` checks that every member of every
enum has its constant here with the same value.
"""

from __future__ import annotations

from stages.records import (
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

#: enum -> the prefix of its constants here (the test walks this)
PREFIXES = {
    CommandType: "CMD",
    Side: "SIDE",
    OrderType: "OT",
    TimeInForce: "TIF",
    SelfTradePrevention: "STP",
    CommandFlag: "CF",
    EventType: "EV",
    EventFlag: "EF",
    Reason: "R",
}

# --- command kinds (``COMMAND_DTYPE.kind``)
CMD_NEW = int(CommandType.NEW)
CMD_CANCEL = int(CommandType.CANCEL)
CMD_REDUCE = int(CommandType.REDUCE)
CMD_REPLACE = int(CommandType.REPLACE)
CMD_HALT = int(CommandType.HALT)
CMD_RESUME = int(CommandType.RESUME)
CMD_KILL_SWITCH = int(CommandType.KILL_SWITCH)
CMD_KILL_SWITCH_RELEASE = int(CommandType.KILL_SWITCH_RELEASE)
CMD_DEPOSIT = int(CommandType.DEPOSIT)
CMD_WITHDRAW = int(CommandType.WITHDRAW)

# --- sides
SIDE_BUY = int(Side.BUY)
SIDE_SELL = int(Side.SELL)

# --- order types
OT_LIMIT = int(OrderType.LIMIT)
OT_MARKET = int(OrderType.MARKET)

# --- time in force
TIF_GTC = int(TimeInForce.GTC)
TIF_IOC = int(TimeInForce.IOC)
TIF_FOK = int(TimeInForce.FOK)

# --- self-trade prevention modes
STP_NONE = int(SelfTradePrevention.NONE)
STP_CANCEL_RESTING = int(SelfTradePrevention.CANCEL_RESTING)
STP_CANCEL_AGGRESSOR = int(SelfTradePrevention.CANCEL_AGGRESSOR)
STP_CANCEL_BOTH = int(SelfTradePrevention.CANCEL_BOTH)
STP_DECREMENT_AND_CANCEL = int(SelfTradePrevention.DECREMENT_AND_CANCEL)

# --- command flag bits
CF_POST_ONLY = int(CommandFlag.POST_ONLY)

# --- event kinds (``EVENT_DTYPE.kind``)
EV_ACCEPTED = int(EventType.ACCEPTED)
EV_REJECTED = int(EventType.REJECTED)
EV_TRADE = int(EventType.TRADE)
EV_CANCELLED = int(EventType.CANCELLED)
EV_REPLACED = int(EventType.REPLACED)
EV_BOOK_TOP = int(EventType.BOOK_TOP)
EV_HALTED = int(EventType.HALTED)
EV_RESUMED = int(EventType.RESUMED)
EV_BALANCE = int(EventType.BALANCE)
EV_KILL_SWITCH = int(EventType.KILL_SWITCH)
EV_KILL_SWITCH_RELEASED = int(EventType.KILL_SWITCH_RELEASED)

# --- event flag bits
EF_MAKER = int(EventFlag.MAKER)
EF_TAKER = int(EventFlag.TAKER)
EF_DONE = int(EventFlag.DONE)

# --- reasons
R_OK = int(Reason.OK)
R_USER_CANCEL = int(Reason.USER_CANCEL)
R_IOC_REMAINDER = int(Reason.IOC_REMAINDER)
R_FOK_NOT_FILLED = int(Reason.FOK_NOT_FILLED)
R_MARKET_NO_LIQUIDITY = int(Reason.MARKET_NO_LIQUIDITY)
R_SELF_TRADE = int(Reason.SELF_TRADE)
R_KILL_SWITCH_CANCEL = int(Reason.KILL_SWITCH_CANCEL)
R_INVALID_COMMAND = int(Reason.INVALID_COMMAND)
R_INVALID_QTY = int(Reason.INVALID_QTY)
R_INVALID_PRICE = int(Reason.INVALID_PRICE)
R_THROTTLED = int(Reason.THROTTLED)
R_THROTTLED_CANCEL = int(Reason.THROTTLED_CANCEL)
R_SYMBOL_RATE = int(Reason.SYMBOL_RATE)
R_BUSY = int(Reason.BUSY)
R_UNKNOWN_ACCOUNT = int(Reason.UNKNOWN_ACCOUNT)
R_INSUFFICIENT_FUNDS = int(Reason.INSUFFICIENT_FUNDS)
R_LIMIT_MAX_QTY = int(Reason.LIMIT_MAX_QTY)
R_LIMIT_MAX_NOTIONAL = int(Reason.LIMIT_MAX_NOTIONAL)
R_LIMIT_OPEN_ORDERS = int(Reason.LIMIT_OPEN_ORDERS)
R_LIMIT_POSITION = int(Reason.LIMIT_POSITION)
R_PRICE_COLLAR = int(Reason.PRICE_COLLAR)
R_KILL_SWITCH = int(Reason.KILL_SWITCH)
R_SYMBOL_HALTED = int(Reason.SYMBOL_HALTED)
R_INSUFFICIENT_BALANCE = int(Reason.INSUFFICIENT_BALANCE)
R_NOTIONAL_NO_PRICE = int(Reason.NOTIONAL_NO_PRICE)
R_UNKNOWN_SYMBOL = int(Reason.UNKNOWN_SYMBOL)
R_UNKNOWN_ORDER = int(Reason.UNKNOWN_ORDER)
R_DUPLICATE_ORDER_ID = int(Reason.DUPLICATE_ORDER_ID)
R_NOT_OWNER = int(Reason.NOT_OWNER)
R_TICK_SIZE = int(Reason.TICK_SIZE)
R_LOT_SIZE = int(Reason.LOT_SIZE)
R_MIN_QTY = int(Reason.MIN_QTY)
R_MAX_QTY = int(Reason.MAX_QTY)
R_PRICE_BAND = int(Reason.PRICE_BAND)
R_POST_ONLY_WOULD_TAKE = int(Reason.POST_ONLY_WOULD_TAKE)
R_REDUCE_TOO_LARGE = int(Reason.REDUCE_TOO_LARGE)

# --- bounds kernels check codes against
MAX_SIDE = int(max(Side))
MAX_ORDER_TYPE = int(max(OrderType))
MAX_TIF = int(max(TimeInForce))
MAX_STP = int(max(SelfTradePrevention))
KNOWN_COMMAND_FLAGS = sum(int(flag) for flag in CommandFlag)  # distinct bits: sum == or
