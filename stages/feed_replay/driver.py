"""The engine side of a feed replay: one ``MatchingEngine``, fed batches of commands.

The translators write command fields into preallocated int64 columns; ``command_batch``
turns the first ``n`` of them into a ``COMMAND_DTYPE`` batch numbered from ``seq0`` (every
order of a replay is a LIMIT order of ``REPLAY_ACCOUNT``), which the replay hands to
``MatchingEngine.process``. The replays build their engine here; like the rest of the
package, this uses only the public API of ``stages.matching``.
"""

from __future__ import annotations

import time

import numpy as np

from stages.matching import MatchingEngine, SymbolSpec
from stages.records import COMMAND_DTYPE, OrderType

#: The one account every replayed order belongs to (cancels must come from the owner).
REPLAY_ACCOUNT = 1
#: Commands handed to the engine at once (bounds the event buffer).
ENGINE_BATCH = 1 << 15


def new_engine(symbols: list[int], order_capacity: int | None = None) -> MatchingEngine:
    """An engine with one default-rules book per symbol id, without BOOK_TOP events (a
    replay reads the books' depth itself)."""
    specs = [SymbolSpec(symbol=symbol) for symbol in symbols]
    if order_capacity is None:
        return MatchingEngine(specs, emit_book_top=False)
    return MatchingEngine(specs, order_capacity, emit_book_top=False)


def command_batch(
    n: int, seq0: int, oid, price, qty, sym, kind, side, tif
) -> np.ndarray:  # fmt: skip
    """The first ``n`` translated commands as a batch, sequence numbers ``seq0 ..``.

    ``sym`` and ``tif`` may be a scalar (every command the same) or a column.
    Vectorised: one column copy per field.
    """
    commands = np.zeros(n, dtype=COMMAND_DTYPE)
    commands["seq"] = np.arange(seq0, seq0 + n)
    commands["ts_ingest"] = time.perf_counter_ns()
    commands["order_id"] = oid[:n]
    commands["price"] = price[:n]
    commands["qty"] = qty[:n]
    commands["symbol"] = sym if np.isscalar(sym) else sym[:n]
    commands["kind"] = kind[:n]
    commands["side"] = side[:n]
    commands["tif"] = tif if np.isscalar(tif) else tif[:n]
    commands["order_type"] = int(OrderType.LIMIT)
    commands["account"] = REPLAY_ACCOUNT
    return commands
