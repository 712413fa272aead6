"""The configuration reference in README.md is exactly the embedded defaults."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import msgspec

from pipeline.config import RunConfig

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_config_reference_decodes_to_the_defaults():
    text = README.read_text()
    block = re.search(r"## Configuration.*?```toml\n(.*?)```", text, re.S)
    assert block, "README.md lost its configuration reference"
    documented = msgspec.convert(tomllib.loads(block.group(1)), RunConfig)
    assert documented == RunConfig()
