"""The feed replay reads ITCH fields where the specification puts them, by name."""

from __future__ import annotations

import pytest

from stages.feed_replay import itch_replay
from stages.ingest import itch50

# (type, field) -> (offset from the type byte, length), from NASDAQ TotalView-ITCH 5.0
SPEC = {
    ("A", "stock_locate"): (1, 2),
    ("A", "order_reference_number"): (11, 8),
    ("A", "buy_sell_indicator"): (19, 1),
    ("A", "shares"): (20, 4),
    ("A", "price"): (32, 4),
    ("E", "executed_shares"): (19, 4),
    ("X", "cancelled_shares"): (19, 4),
    ("U", "original_order_reference_number"): (11, 8),
    ("U", "new_order_reference_number"): (19, 8),
    ("U", "shares"): (27, 4),
    ("U", "price"): (31, 4),
    ("H", "trading_state"): (19, 1),
}


@pytest.mark.parametrize(("where", "expected"), SPEC.items())
def test_field_at_gives_the_specification_offsets(where, expected) -> None:
    assert itch50.field_at(*where) == expected


#: the translator's field constant -> the field of the specification it must be
READ_AS = {
    "_LOCATE": ("A", "stock_locate"),
    "_REF": ("A", "order_reference_number"),
    "_ADD_SIDE": ("A", "buy_sell_indicator"),
    "_ADD_SHARES": ("A", "shares"),
    "_ADD_PRICE": ("A", "price"),
    "_REDUCED_SHARES": ("E", "executed_shares"),
    "_OLD_REF": ("U", "original_order_reference_number"),
    "_NEW_REF": ("U", "new_order_reference_number"),
    "_NEW_SHARES": ("U", "shares"),
    "_NEW_PRICE": ("U", "price"),
    "_STATE": ("H", "trading_state"),
}


@pytest.mark.parametrize(("name", "where"), READ_AS.items())
def test_the_translator_reads_the_specification_offsets(name, where) -> None:
    assert getattr(itch_replay, name) == SPEC[where]


def test_a_field_shared_by_several_types_must_sit_at_one_place() -> None:
    with pytest.raises(AssertionError, match="not at one place"):
        itch_replay._field(("A", "shares"), ("U", "shares"))
