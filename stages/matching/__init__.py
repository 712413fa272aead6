"""The matching stage's domain core: deterministic price-time order books (see docs/matching.md)."""

from .engine import EventBufferFull, MatchingEngine, OrderPoolFull
from .symbols import SymbolSpec

__all__ = ["EventBufferFull", "MatchingEngine", "OrderPoolFull", "SymbolSpec"]
