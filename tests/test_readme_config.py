"""Every TOML example in README.md loads, and gives what the README says it gives.

The first block is the configuration reference: exactly the embedded defaults. The others
are smaller files whose text claims what they change and what they keep; each has its own
check below, so a new example in the README fails here until it gets one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from pipeline.config import RunConfig, load_config
from stages.risk.config import InstrumentConfig

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)


def replace(struct, **changes):  # type: ignore[no-untyped-def]
    return msgspec.structs.replace(struct, **changes)


def check_reference(config: RunConfig) -> None:
    """The reference shows the embedded defaults, every one of them."""
    assert config == RunConfig()


def check_partial_sections(config: RunConfig) -> None:
    """`[load] orders` and `[engine] settle_every` change, nothing else does."""
    defaults = RunConfig()
    expected = replace(
        defaults,
        load=replace(defaults.load, orders=5_000_000),
        engine=replace(defaults.engine, settle_every=512),
    )
    assert config == expected
    risk = config.engine.risk
    assert [i.name for i in risk.instruments] == ["BTC-USD", "ETH-USD"]
    assert [(i.maker_fee_bps, i.taker_fee_bps) for i in risk.instruments] == [(1, 5), (1, 5)]
    assert [a.name for a in risk.assets] == ["USD", "BTC", "ETH"]
    assert risk.order_capacity == config.engine.matching_order_capacity == 1 << 18


def check_list_replaces(config: RunConfig) -> None:
    """One instrument replaces the default two; its unnamed keys are the struct's defaults."""
    defaults = RunConfig()
    only = InstrumentConfig(symbol=1, base=1, quote=0, name="BTC-USD", taker_fee_bps=10)
    assert config.engine.risk.instruments == [only]
    assert config.engine.risk.instruments[0].maker_fee_bps == 0
    assert config.engine.risk.assets == defaults.engine.risk.assets
    expected = replace(
        defaults,
        engine=replace(defaults.engine, risk=replace(defaults.engine.risk, instruments=[only])),
    )
    assert config == expected


CHECKS: list[Callable[[RunConfig], None]] = [
    check_reference,
    check_partial_sections,
    check_list_replaces,
]


def test_every_readme_example_has_a_check():
    assert len(readme_toml_blocks()) == len(CHECKS), (
        "README.md's TOML examples and CHECKS differ: give each example its check, in order"
    )


@pytest.mark.parametrize("index", range(len(CHECKS)), ids=[c.__name__ for c in CHECKS])
def test_readme_example_gives_what_it_says(index: int, tmp_path: Path) -> None:
    blocks = readme_toml_blocks()
    assert index < len(blocks), "README.md lost a TOML example"
    path = tmp_path / "example.toml"
    path.write_text(blocks[index])
    CHECKS[index](load_config(path))


def test_readme_reference_is_the_first_example():
    text = README.read_text()
    assert re.search(r"## Configuration.*?```toml\n\[load\]", text, re.S)
