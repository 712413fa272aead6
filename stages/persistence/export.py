"""Journal records as rows a person or a tool can read: enum names instead of raw codes.

``tradepipe journal dump`` and ``export`` print what the journal holds; a ``kind`` of 1 means
nothing to an operator, ``NEW`` does. The layout decides the naming: COMMAND_DTYPE and
EVENT_DTYPE fields are named with the enums of ``stages.records``; any other layout is shown
as plain numbers. Not a hot path: export tools only, but still column-wise per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from enum import IntEnum
from typing import Any

import numpy as np

from stages.records import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
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

_COMMAND_ENUMS: dict[str, type[IntEnum]] = {
    "kind": CommandType,
    "side": Side,
    "order_type": OrderType,
    "tif": TimeInForce,
    "stp": SelfTradePrevention,
    "reason": Reason,
}
_EVENT_ENUMS: dict[str, type[IntEnum]] = {"kind": EventType, "side": Side, "reason": Reason}


def _name_of(enum: type[IntEnum]) -> Callable[[int], str]:
    def name(value: int) -> str:
        try:
            return enum(value).name
        except ValueError:
            return f"?{value}"  # a code this version does not know: show it, do not hide it

    return name


def _flag_names(enum: type[IntEnum]) -> Callable[[int], str]:
    def names(value: int) -> str:
        parts = [member.name for member in enum if value & member]
        rest = value & ~sum(int(m) for m in enum)
        if rest:
            parts.append(f"?{rest}")
        return "|".join(parts)

    return names


def field_names(dtype: np.dtype) -> list[str]:
    """The fields worth showing (padding left out), in layout order."""
    return [name for name in dtype.names or () if not name.startswith("_")]


def converters(dtype: np.dtype) -> dict[str, Callable[[int], str]]:
    """Per-field value -> name functions for the layouts ``stages.records`` defines."""
    if dtype == COMMAND_DTYPE:
        out = {k: _name_of(v) for k, v in _COMMAND_ENUMS.items()}
        out["flags"] = _flag_names(CommandFlag)
        return out
    if dtype == EVENT_DTYPE:
        out = {k: _name_of(v) for k, v in _EVENT_ENUMS.items()}
        out["flags"] = _flag_names(EventFlag)
        return out
    return {}


def columns(batch: np.ndarray) -> dict[str, list[Any]]:
    """The batch as columns of Python values, enum fields as names (one lookup per value)."""
    names = converters(batch.dtype)
    out: dict[str, list[Any]] = {}
    for field in field_names(batch.dtype):
        values = batch[field].tolist()
        convert = names.get(field)
        if convert is not None:
            cache = {v: convert(v) for v in set(values)}
            values = [cache[v] for v in values]
        out[field] = values
    return out


def rows(batch: np.ndarray) -> Iterator[dict[str, Any]]:
    """The batch as one dict per record (field -> value or enum name)."""
    cols = columns(batch)
    keys = list(cols)
    for values in zip(*cols.values(), strict=True):
        yield dict(zip(keys, values, strict=True))


def select(
    batch: np.ndarray, accounts: Iterable[int] | None = None, symbols: Iterable[int] | None = None
) -> np.ndarray:
    """The records of the batch whose account / symbol is among those given (None = any)."""
    mask = np.ones(len(batch), dtype=bool)
    if accounts:
        mask &= np.isin(batch["account"], list(accounts))
    if symbols:
        mask &= np.isin(batch["symbol"], list(symbols))
    return batch if mask.all() else batch[mask]
