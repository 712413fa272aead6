"""The symbol's rules an order must meet: lot, min and max quantity, tick and price band.

One check, shared by NEW and REPLACE, in the order ``docs/matching.md`` (validation order)
gives them; each command checks its own fields (qty > 0, price, halt, ...) before it.
The rules are the ``B_TICK`` .. ``B_BAND_HI`` columns of the book rows, from ``SymbolSpec``.
"""

from __future__ import annotations

from stages.kernel_codes import (
    R_LOT_SIZE,
    R_MAX_QTY,
    R_MIN_QTY,
    R_OK,
    R_PRICE_BAND,
    R_TICK_SIZE,
)

from .jit import njit
from .layout import B_BAND_HI, B_BAND_LO, B_LOT, B_MAX, B_MIN, B_TICK


@njit(inline="always")
def whole_lots(books, b, qty):
    """Is ``qty`` a multiple of book ``b``'s lot size?"""
    return qty % books[b, B_LOT] == 0


@njit(inline="always")
def check(books, b, price, qty, is_limit):
    """The reason of the first rule of book ``b`` that ``qty`` at ``price`` breaks, or R_OK.

    Lot, min qty, max qty; then, for a limit price (``is_limit``; a market order's price is
    only a protection bound), tick and band (a band bound of 0 is no bound).
    """
    if not whole_lots(books, b, qty):
        return R_LOT_SIZE
    if qty < books[b, B_MIN]:
        return R_MIN_QTY
    if qty > books[b, B_MAX]:
        return R_MAX_QTY
    if is_limit:
        if price % books[b, B_TICK] != 0:
            return R_TICK_SIZE
        low = books[b, B_BAND_LO]
        high = books[b, B_BAND_HI]
        if (low != 0 and price < low) or (high != 0 and price > high):
            return R_PRICE_BAND
    return R_OK
