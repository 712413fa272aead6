"""Run configuration: one TOML file decoded into typed msgspec Structs, with embedded defaults.

Every section is optional; an empty file (or none) gives the embedded defaults, which run
the whole chain under synthetic load with a journal in ``./run``. A bad value is refused
before anything starts, with msgspec's path to it (``Expected int >= 1 - at
$.load.orders``), so the user knows what to fix.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from stages.engine import EngineConfig
from stages.risk.config import AssetConfig, InstrumentConfig, RiskConfig

Positive = Annotated[int, msgspec.Meta(ge=1)]


class LoadConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where commands come from. ``synthetic``: stages.ingest.synthetic's mixed flow."""

    source: Literal["synthetic"] = "synthetic"
    orders: Positive = 1_000_000
    batch: Positive = 1024
    accounts: Positive = 1000
    seed: int = 7
    funding: Positive = 10**12  # every account gets this much of every asset first


class JournalConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    directory: str = "run/journal"
    fsync: Literal["batch", "interval", "never"] = "batch"
    fsync_interval_ms: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    segment_bytes: Annotated[int, msgspec.Meta(ge=1 << 16)] = 64 << 20


class SnapshotConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    directory: str = "run/snapshots"
    every_records: Positive = 300_000
    keep: Positive = 3


def default_engine() -> EngineConfig:
    """Two crypto pairs with fees: enough to exercise holds, fees and settlement."""
    return EngineConfig(
        risk=RiskConfig(
            assets=[AssetConfig(0, "USD"), AssetConfig(1, "BTC"), AssetConfig(2, "ETH")],
            instruments=[
                InstrumentConfig(
                    1, base=1, quote=0, name="BTC-USD", maker_fee_bps=1, taker_fee_bps=5
                ),
                InstrumentConfig(
                    2, base=2, quote=0, name="ETH-USD", maker_fee_bps=1, taker_fee_bps=5
                ),
            ],
            max_accounts=1024,
            order_capacity=1 << 18,
        ),
        matching_order_capacity=1 << 18,
    )


class RunConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole ``tradepipe run`` configuration (see README "Configuration")."""

    engine: EngineConfig = msgspec.field(default_factory=default_engine)
    load: LoadConfig = msgspec.field(default_factory=LoadConfig)
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    snapshots: SnapshotConfig = msgspec.field(default_factory=SnapshotConfig)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the field."""


def load_config(path: str | Path | None) -> RunConfig:
    """Decode ``path`` (TOML) into a ``RunConfig``; None gives the embedded defaults."""
    if path is None:
        return RunConfig()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    try:
        return msgspec.convert(data, RunConfig)
    except msgspec.ValidationError as error:
        raise ConfigError(f"config file {path}: {error}") from None
