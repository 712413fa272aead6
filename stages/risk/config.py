"""The risk engine's configuration: assets, instruments (with their scales and fees), limits.

Configuration is a set of msgspec ``Struct``s so the pipeline can decode it from TOML with the
same names, and a bad value is refused at construction with a message naming the field, the
value and what would be right — never later, in the hot path.

Units: a symbol trades ``base`` against ``quote``. One lot is ``base_per_lot`` units of the base
asset; ``price × qty`` lots cost ``price × qty × quote_per_price_lot`` units of the quote asset.
Every amount is an exact integer; nothing is ever rounded except fees (floored when charged,
ceiled when held, so a hold always covers what a fill can cost).
"""

from __future__ import annotations

import msgspec

from stages.risk.layout import AMOUNT_LIMIT

MAX_ID = 2**16 - 1  # symbol and asset ids live in the records' u2 `symbol` field
#: The most open orders risk tracks (``order_capacity``); matching's pool has the same ceiling.
MAX_ORDER_CAPACITY = 2**28
#: The largest ``max_qty``, as in ``stages.matching.symbols.MAX_QTY``: the quantities of
#: MAX_ORDER_CAPACITY orders at one price sum within an int64 (matching's level totals).
MAX_QTY = (2**63 - 1) // MAX_ORDER_CAPACITY


class AssetConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One asset accounts can hold (a currency, a coin, a contract's settlement unit)."""

    asset: int  # asset id, the `symbol` field of DEPOSIT / WITHDRAW commands
    name: str = ""

    def __post_init__(self) -> None:
        _require("AssetConfig", 0 <= self.asset <= MAX_ID, "asset", self.asset, f"0..{MAX_ID}")


class InstrumentConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One tradable symbol: what it exchanges, at which scales, fees and price protections.

    The matching-side rules (tick, lot, quantity limits, static band) live here too, so one
    config entry describes one symbol; the ``Engine`` hands them to the matching engine.
    """

    symbol: int
    base: int  # asset id of what is bought / sold
    quote: int  # asset id of what is paid
    name: str = ""
    base_per_lot: int = 1  # base units per lot of qty
    quote_per_price_lot: int = 1  # quote units per (price unit × lot)
    maker_fee_bps: int = 0  # charged in the quote asset to the maker of a trade
    taker_fee_bps: int = 0  # charged in the quote asset to the taker of a trade
    collar_bps: int = 0  # limit prices must lie within ± this of the reference price; 0 = off
    reference_price: int = 0  # reference for the collar before the first trade; 0 = none
    market_band_bps: int = 500  # a market buy is bounded at best ask + this band
    # matching rules (stages.matching.symbols.SymbolSpec)
    tick_size: int = 1
    lot_size: int = 1
    min_qty: int = 1
    max_qty: int = MAX_QTY  # at most MAX_QTY = 2**35 - 1 (SymbolSpec checks it)
    price_band_low: int = 0
    price_band_high: int = 0

    def __post_init__(self) -> None:
        req = _requirer("InstrumentConfig", self.symbol)
        req(0 <= self.symbol <= MAX_ID, "symbol", self.symbol, f"0..{MAX_ID}")
        req(0 <= self.base <= MAX_ID, "base", self.base, f"an asset id 0..{MAX_ID}")
        req(0 <= self.quote <= MAX_ID, "quote", self.quote, f"an asset id 0..{MAX_ID}")
        req(self.base != self.quote, "quote", self.quote, f"an asset other than base ({self.base})")
        req(self.base_per_lot >= 1, "base_per_lot", self.base_per_lot, ">= 1")
        req(self.quote_per_price_lot >= 1, "quote_per_price_lot", self.quote_per_price_lot, ">= 1")
        for name in ("maker_fee_bps", "taker_fee_bps"):
            value = getattr(self, name)
            req(0 <= value <= 10_000, name, value, "0..10000 basis points")
        req(0 <= self.collar_bps <= 10_000, "collar_bps", self.collar_bps, "0..10000")
        req(self.reference_price >= 0, "reference_price", self.reference_price, ">= 0")
        req(
            0 <= self.market_band_bps <= 100_000,
            "market_band_bps",
            self.market_band_bps,
            "0..100000",
        )
        req(self.tick_size >= 1, "tick_size", self.tick_size, ">= 1")
        req(self.lot_size >= 1, "lot_size", self.lot_size, ">= 1")
        req(self.min_qty >= 1, "min_qty", self.min_qty, ">= 1")
        # the upper bound (MAX_QTY) is matching's rule: SymbolSpec refuses more, naming it
        req(self.max_qty >= self.min_qty, "max_qty", self.max_qty, f">= min_qty ({self.min_qty})")


class AccountLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-account limits; 0 means "no limit". Quantities are lots, notional is quote units.

    ``max_position`` bounds, per symbol, the net position plus every open order on the side
    that would grow it (the worst case if they all fill); at most 2**61, which also bounds
    it when no limit is set, so positions stay far inside int64.
    """

    max_order_qty: int = 0
    max_order_notional: int = 0
    max_open_orders: int = 0
    max_position: int = 0

    def __post_init__(self) -> None:
        for name in ("max_order_qty", "max_order_notional", "max_open_orders", "max_position"):
            value = getattr(self, name)
            _require("AccountLimits", value >= 0, name, value, ">= 0 (0 = no limit)")
        _require(
            "AccountLimits",
            self.max_position <= AMOUNT_LIMIT,
            "max_position",
            self.max_position,
            f"0..{AMOUNT_LIMIT} (2**61 lots, the bound of every position; 0 = that bound)",
        )


class AccountConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Limits that differ from the defaults for one account."""

    account: int
    limits: AccountLimits = msgspec.field(default_factory=AccountLimits)

    def __post_init__(self) -> None:
        _require("AccountConfig", self.account >= 1, "account", self.account, ">= 1")


class RiskConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the risk engine needs. Account ids are 1 .. max_accounts - 1.

    Account 0 is the fee account: it receives every fee and never trades (a kill switch for
    account 0 means "every account").
    """

    assets: list[AssetConfig] = msgspec.field(
        default_factory=lambda: [AssetConfig(0, "USD"), AssetConfig(1, "BTC")]
    )
    instruments: list[InstrumentConfig] = msgspec.field(
        default_factory=lambda: [InstrumentConfig(symbol=1, base=1, quote=0, name="BTC-USD")]
    )
    max_accounts: int = 1024
    order_capacity: int = 1 << 16  # open orders risk tracks at once
    default_limits: AccountLimits = msgspec.field(default_factory=AccountLimits)
    accounts: list[AccountConfig] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        req = _requirer("RiskConfig", None)
        req(2 <= self.max_accounts <= 2**24, "max_accounts", self.max_accounts, "2..2**24")
        req(
            16 <= self.order_capacity <= MAX_ORDER_CAPACITY,
            "order_capacity",
            self.order_capacity,
            "16..2**28",
        )
        asset_ids = [a.asset for a in self.assets]
        req(len(set(asset_ids)) == len(asset_ids), "assets", asset_ids, "distinct asset ids")
        symbols = [i.symbol for i in self.instruments]
        req(len(set(symbols)) == len(symbols), "instruments", symbols, "distinct symbol ids")
        for inst in self.instruments:
            for leg in (inst.base, inst.quote):
                req(leg in asset_ids, f"instruments[symbol={inst.symbol}]", leg, "a listed asset")
        for acc in self.accounts:
            req(acc.account < self.max_accounts, "accounts", acc.account, "< max_accounts")


def _requirer(struct: str, key: object):
    where = struct if key is None else f"{struct}[{key}]"

    def req(ok: bool, field: str, value: object, expected: str) -> None:
        _require(where, ok, field, value, expected)

    return req


def _require(where: str, ok: bool, field: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(f"{where}.{field} = {value!r} is invalid: expected {expected}")
