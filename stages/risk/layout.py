"""Column indices of the risk engine's preallocated state arrays, shared by its kernels.

The risk state is a handful of int64 numpy arrays (so numba kernels can work on them, and a
snapshot is a dump of them); these names say what each column holds. The records' words are
named in ``stages.record_words``, the codes in ``stages.kernel_codes``.
"""

from __future__ import annotations

# balances[account, asset_index, column]
FREE = 0
HELD = 1

# positions[account, symbol_index, column] (lots)
POS_NET = 0  # filled buys minus filled sells
POS_OPEN_BUY = 1  # open quantity of the account's buy orders
POS_OPEN_SELL = 2
POS_COLUMNS = 3

# accounts[account, column]
ACC_OPEN_ORDERS = 0
ACC_KILLED = 1
ACC_MAX_QTY = 2  # limits: 0 = none
ACC_MAX_NOTIONAL = 3
ACC_MAX_OPEN = 4
ACC_MAX_POSITION = 5
ACC_COLUMNS = 6

# symbols[symbol_index, column]: configuration, then state learnt from commands and events
SYM_BASE = 0  # asset index
SYM_QUOTE = 1  # asset index
SYM_BASE_PER_LOT = 2
SYM_QUOTE_SCALE = 3
SYM_MAKER_BPS = 4
SYM_TAKER_BPS = 5
SYM_COLLAR_BPS = 6
SYM_REF_PRICE = 7
SYM_MARKET_BAND_BPS = 8
SYM_TICK = 9
SYM_HALTED = 10
SYM_BEST_BID = 11  # from BOOK_TOP events; 0 = empty side
SYM_BEST_ASK = 12
SYM_LAST_PRICE = 13  # price of the last trade; 0 before the first
SYM_COLUMNS = 14

# glob[column]
G_KILL_ALL = 0
G_OPEN_ORDERS = 1  # orders in the order table
G_MAX_ORDERS = 2  # the order pool's capacity
G_FREE_HEAD = 3  # first free row of the order pool (-1 = none)
G_ROUND_FIRST_SEQ = 4  # seq of the first command pre-traded since all was settled; 0 = none
G_LAST_PRETRADE_SEQ = 5  # seq of the last command pre-traded
G_SETTLED_SEQ = 6  # highest seq of an event settled
G_COLUMNS = 7

# above every price: round_sell_min while no sell passed (the least of none), and how far
# into the asks a market buy (no limit price) may reach in round_buy_max
UNBOUNDED_PRICE = (1 << 63) - 1

# rows[row, column]: the order pool, found by order id through the `keys` hash (orders.py)
O_ACCOUNT = 0
O_SYMBOL = 1  # symbol index
O_SIDE = 2
O_PRICE = 3  # price the hold is computed at (limit, or a market buy's protection price)
O_OPEN = 4  # open quantity as far as risk knows
O_HELD = 5  # amount held for it (quote units for a buy, base units for a sell)
O_NEW_SEQ = 6  # seq of the NEW command: a REJECTED event with this seq drops the order
O_REP_SEQ = 7  # seq of a REPLACE waiting for matching's answer; 0 = none
O_COLUMNS = 8

FEE_ACCOUNT = 0
BPS = 10_000
AMOUNT_LIMIT = 1 << 61  # notional ceiling: leaves room for fees up to 100 % below 2**62
