"""stages.snapshot_body: what every engine's restore says about bytes it cannot take."""

from __future__ import annotations

import msgspec
import pytest

from stages.engine import Engine
from stages.matching import MatchingEngine, SymbolSpec
from stages.snapshot_body import decode_body


class Body(msgspec.Struct, frozen=True):
    format: str
    version: int
    payload: int


def test_a_body_of_the_expected_format_and_version_decodes():
    data = msgspec.msgpack.encode(Body("demo", 3, 7))
    assert decode_body(data, Body, "demo", 3, "a demo") == Body("demo", 3, 7)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (Body("demo", 4, 7), r"format 'demo' v4 is not supported: expected 'demo' v3"),
        (Body("other", 3, 7), r"format 'other' v3 is not supported: expected 'demo' v3"),
    ],
)
def test_another_format_or_version_is_refused_naming_both(body, message):
    with pytest.raises(ValueError, match=message):
        decode_body(msgspec.msgpack.encode(body), Body, "demo", 3, "a demo")


def test_bytes_that_are_not_a_body_are_refused_naming_the_snapshot():
    with pytest.raises(ValueError, match="not a demo snapshot"):
        decode_body(b"\x01\x02", Body, "demo", 3, "a demo")


def test_engines_refuse_each_others_snapshots():
    matching = MatchingEngine([SymbolSpec(1)]).snapshot()
    with pytest.raises(ValueError, match="not an engine snapshot"):
        Engine.restore(matching)
    with pytest.raises(ValueError, match="not a matching-engine snapshot"):
        MatchingEngine.restore(Engine().snapshot())
