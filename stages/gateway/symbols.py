"""The gateway's view of the tradable symbols: names to ids, and the fee schedule.

Clients may name a symbol (``"BTC-USD"``) or give its id; the records carry only the id, so
the gateway resolves names here and refuses a symbol it does not list before anything is
sequenced. Trade events do not carry the fee (an event is 64 bytes and full); risk charges
``floor(price × qty × quote_per_price_lot × bps / 10000)`` at the maker's or taker's rate
when it settles, and nothing else, so the gateway computes the same figure from the same
configuration (``fee``) for the trade report.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from stages.risk.config import InstrumentConfig, RiskConfig

_BPS = 10_000


class SymbolInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One symbol as the gateway knows it; fees None when the gateway has no schedule."""

    symbol: int
    name: str = ""
    maker_fee_bps: int | None = None
    taker_fee_bps: int | None = None
    quote_per_price_lot: int = 1


class SymbolTable:
    """Symbols by id and by name; ``resolve`` turns a request's symbol into an id."""

    def __init__(self, symbols: Iterable[SymbolInfo]) -> None:
        self.by_id: dict[int, SymbolInfo] = {}
        self.by_name: dict[str, int] = {}
        for info in symbols:
            if info.symbol in self.by_id:
                raise ValueError(f"symbol id {info.symbol} is listed twice")
            self.by_id[info.symbol] = info
            if info.name:
                if info.name in self.by_name:
                    raise ValueError(f"symbol name {info.name!r} is listed twice")
                self.by_name[info.name] = info.symbol

    @classmethod
    def from_risk(cls, config: RiskConfig) -> SymbolTable:
        """The instruments of a risk configuration, with their fee schedule."""
        return cls(_info(i) for i in config.instruments)

    def resolve(self, symbol: str | int) -> int | None:
        """The id of ``symbol`` (a name or an id), None if the gateway does not list it."""
        if isinstance(symbol, str):
            return self.by_name.get(symbol)
        return symbol if symbol in self.by_id else None

    def fee(self, symbol: int, price: int, qty: int, maker: bool) -> int | None:
        """The fee settlement charges for a fill of ``qty`` at ``price`` (None: unknown)."""
        info = self.by_id.get(symbol)
        bps = None if info is None else (info.maker_fee_bps if maker else info.taker_fee_bps)
        if bps is None:
            return None
        return price * qty * info.quote_per_price_lot * bps // _BPS


def _info(instrument: InstrumentConfig) -> SymbolInfo:
    return SymbolInfo(
        symbol=instrument.symbol,
        name=instrument.name,
        maker_fee_bps=instrument.maker_fee_bps,
        taker_fee_bps=instrument.taker_fee_bps,
        quote_per_price_lot=instrument.quote_per_price_lot,
    )
