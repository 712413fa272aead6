"""Per-symbol trading rules the matching engine enforces (tick, lot, quantity limits, band).

A ``SymbolSpec`` is configuration, so it is a msgspec ``Struct``: it can be decoded from the
pipeline's TOML/JSON config with the same names, and a bad value is refused at construction
with a message that names the field, the value and what would be right, never later in the
hot path.
"""

from __future__ import annotations

import msgspec

MAX_SYMBOL_ID = 2**16 - 1  # the `symbol` field of the records is a u2
INT64_MAX = 2**63 - 1
#: The most orders one engine holds (its pool never grows past this; risk's
#: ``RiskConfig.order_capacity`` has the same ceiling).
MAX_ORDER_CAPACITY = 2**28
#: The largest ``max_qty``: a level's total quantity (and a FOK order's running total) sums
#: the open quantities of up to MAX_ORDER_CAPACITY orders, so each must be at most
#: INT64_MAX // MAX_ORDER_CAPACITY = 2**35 - 1 lots for every such sum to fit an int64.
MAX_QTY = INT64_MAX // MAX_ORDER_CAPACITY


class SymbolSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The rules of one order book.

    ``price_band_low`` / ``price_band_high``: a static band; limit prices outside
    ``[low, high]`` are rejected with ``Reason.PRICE_BAND``. A bound of 0 means "no bound on
    that side".
    """

    symbol: int  # symbol id, the `symbol` field of records (u2)
    tick_size: int = 1  # price must be a multiple of this (price units)
    lot_size: int = 1  # qty must be a multiple of this
    min_qty: int = 1
    max_qty: int = MAX_QTY  # at most MAX_QTY (2**35 - 1): level totals must fit an int64
    price_band_low: int = 0  # 0 = no lower bound
    price_band_high: int = 0  # 0 = no upper bound

    def __post_init__(self) -> None:
        _require(0 <= self.symbol <= MAX_SYMBOL_ID, "symbol", self.symbol, f"0..{MAX_SYMBOL_ID}")
        _require(self.tick_size >= 1, "tick_size", self.tick_size, ">= 1")
        _require(self.lot_size >= 1, "lot_size", self.lot_size, ">= 1")
        _require(self.min_qty >= 1, "min_qty", self.min_qty, ">= 1")
        _require(
            self.min_qty <= self.max_qty <= MAX_QTY,
            "max_qty",
            self.max_qty,
            f"between min_qty ({self.min_qty}) and {MAX_QTY} (2**35 - 1: the quantities of "
            f"the {MAX_ORDER_CAPACITY} orders an engine can hold must sum within an int64)",
        )
        _require(self.price_band_low >= 0, "price_band_low", self.price_band_low, ">= 0")
        _require(self.price_band_high >= 0, "price_band_high", self.price_band_high, ">= 0")
        if self.price_band_low and self.price_band_high:
            _require(
                self.price_band_low <= self.price_band_high,
                "price_band_high",
                self.price_band_high,
                f">= price_band_low ({self.price_band_low})",
            )


def _require(ok: bool, field: str, value: int, expected: str) -> None:
    if not ok:
        raise ValueError(f"SymbolSpec.{field} = {value!r} is invalid: expected {expected}")
