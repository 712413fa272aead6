"""Run configuration: one TOML file decoded into typed msgspec Structs, with embedded defaults.

Every section and key is optional. A file's tables merge into the embedded defaults key by
key, at every depth (``[engine]\\nsettle_every = 512`` changes that one key and keeps both
symbols, the fees and the capacities); a list (``instruments``, ``assets``, ``accounts``)
replaces the default list whole, and each of its entries starts from the defaults of its
struct. An empty file (or none) gives the embedded defaults, which run the whole chain
under synthetic load (1 M orders) with a journal in ``./run`` fsynced per batch.

A bad value is refused before anything starts, with msgspec's path to it (``Expected int
>= 1 - at $.load.orders``), so the user knows what to fix; so is a value the engine would
refuse later, out of sight (``load.accounts`` beyond ``engine.risk.max_accounts``, a funding
amount risk refuses to deposit, an empty instrument list, an inverted price band).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from pipeline import affinity, keys
from pipeline.exitcodes import CommandError, ExitStatus, os_error_status
from stages.engine import EngineConfig
from stages.matching.symbols import SymbolSpec
from stages.risk.config import AssetConfig, InstrumentConfig, RiskConfig
from stages.risk.layout import AMOUNT_LIMIT

Positive = Annotated[int, msgspec.Meta(ge=1)]

#: ``load.orders`` and ``--orders``: sequence numbers (int64) keep room to spare.
MAX_ORDERS = 2**62
#: ``load.batch``: commands per ingest batch (64 bytes each: 64 MiB at most).
MAX_BATCH = 1 << 20
#: ``load.funding`` × ``load.accounts``: the most of one asset risk holds over all accounts
#: (it refuses a deposit that would pass it, so every later one would be refused unseen).
MAX_FUNDING = AMOUNT_LIMIT
#: ``journal.fsync_interval_ms``: an interval policy syncs at least once a minute.
MAX_FSYNC_INTERVAL_MS = 60_000.0


class LoadConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where commands come from. ``synthetic``: stages.ingest.synthetic's mixed flow, then the
    run ends; ``gateway``: only the clients of the order gateway (``[gateway]``), and the
    run goes on until it is stopped (``tradepipe stop``, Ctrl-C)."""

    source: Literal["synthetic", "gateway"] = "synthetic"
    orders: Annotated[int, msgspec.Meta(ge=1, le=MAX_ORDERS)] = 1_000_000
    batch: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH)] = 1024
    accounts: Positive = 1000  # accounts 1..N; N < engine.risk.max_accounts
    seed: Annotated[int, msgspec.Meta(ge=0)] = 7
    # every account gets this much of every asset first
    funding: Annotated[int, msgspec.Meta(ge=1, le=MAX_FUNDING)] = 10**12
    # commands/s the source offers, evenly (pipeline runs); 0: as fast as ingest takes them
    rate: Annotated[float, msgspec.Meta(ge=0, le=1e9)] = 0.0


class JournalConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    directory: str = "run/journal"
    fsync: Literal["batch", "interval", "never"] = "batch"
    fsync_interval_ms: Annotated[float, msgspec.Meta(gt=0, le=MAX_FSYNC_INTERVAL_MS)] = 5.0
    segment_bytes: Annotated[int, msgspec.Meta(ge=1 << 16)] = 64 << 20


class SnapshotConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    directory: str = "run/snapshots"
    every_records: Positive = 300_000
    keep: Positive = 3


class CurveConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """ZeroMQ CURVE for the gateway's ``tcp://`` endpoints (``tradepipe keys new``)."""

    server_key: str  # the server's secret key file (NAME.key_secret)
    clients: str  # a directory of authorised clients' public key files, each naming its accounts


class GatewayConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The order-entry gateway and the market-data feed (``docs/gateway.md``).

    It runs when ``load.source`` is ``gateway`` (then its clients are the only source, and
    the run goes on until stopped). Endpoints left empty are Unix sockets in the run
    directory (``gateway.sock``, ``market-data.sock``); a ``tcp://`` endpoint is refused
    unless ``curve`` is configured.
    """

    bind: list[str] = []  # order entry (ROUTER)
    market_data: list[str] = []  # market data (PUB), a topic per symbol
    depth: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10  # levels per side published
    snapshot_every_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    curve: CurveConfig | None = None


class PipelineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The stage processes: where they run and where their control sockets live (used by
    ``tradepipe run``, whose default is the pipeline; ``--inprocess`` ignores it)."""

    # stage → core, any subset; the rest follow pipeline.affinity's default plan over the
    # cores this process may use. A core the host lacks or this process may not use, or an
    # unknown stage, is refused at load.
    cpus: dict[str, Annotated[int, msgspec.Meta(ge=0)]] = {}
    run_dir: str = "run/pipeline"  # private (0700): control sockets, pipeline.json
    realtime: bool = False  # SCHED_FIFO for stages on a core of their own, where permitted
    nice: Annotated[int, msgspec.Meta(ge=-20, le=19)] | None = None  # None: as inherited


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
    pipeline: PipelineConfig = msgspec.field(default_factory=PipelineConfig)
    gateway: GatewayConfig = msgspec.field(default_factory=GatewayConfig)


class ConfigError(CommandError, ValueError):
    """A configuration file that cannot be used; the message names the file and the field."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.USAGE) -> None:
        super().__init__(message, status)


def merge_over(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over ``defaults``: tables merge key by key at every depth, lists and
    values replace (so a list's entries start from their struct's defaults)."""
    merged = dict(defaults)
    for key, value in given.items():
        default = merged.get(key)
        if isinstance(value, dict) and isinstance(default, dict):
            merged[key] = merge_over(default, value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path | None) -> RunConfig:
    """Decode ``path`` (TOML) over the embedded defaults; None gives the defaults."""
    if path is None:
        return RunConfig()
    path = Path(path)
    data = _parse(path)
    try:
        config = msgspec.convert(merge_over(msgspec.to_builtins(RunConfig()), data), RunConfig)
    except msgspec.ValidationError as error:
        raise ConfigError(f"config file {path}: {error}") from None
    problem = check_config(config)
    if problem is not None:
        raise ConfigError(f"config file {path}: {problem}")
    return config


def _parse(path: Path) -> dict[str, Any]:
    """The TOML table of ``path``; a ``ConfigError`` saying what is wrong with the file."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory: name a TOML file") from None
    except OSError as error:
        raise ConfigError(
            f"cannot read config file {path}: {error.strerror or error}", os_error_status(error)
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte 0x{raw[error.start]:02x} on line "
            f"{line}): TOML files are UTF-8; save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def check_config(config: RunConfig) -> str | None:
    """What the engine would refuse later, out of sight, said now with the field's path."""
    risk = config.engine.risk
    if config.load.accounts >= risk.max_accounts:
        return (
            f"load.accounts = {config.load.accounts} does not fit engine.risk.max_accounts = "
            f"{risk.max_accounts} (the load uses accounts 1..accounts, the engine holds "
            f"1..max_accounts - 1): raise max_accounts above {config.load.accounts} or lower "
            "accounts - at `$.load.accounts`"
        )
    if config.load.funding * config.load.accounts > MAX_FUNDING:
        return (
            f"load.funding = {config.load.funding} for each of {config.load.accounts} accounts "
            f"is more than risk holds of one asset over all accounts (2**61 = {MAX_FUNDING}): "
            f"lower funding to at most {MAX_FUNDING // config.load.accounts} - at `$.load.funding`"
        )
    if not risk.instruments:
        return (
            "engine.risk.instruments is empty: the load needs at least one symbol to trade "
            "- at `$.engine.risk.instruments`"
        )
    if not config.pipeline.run_dir:
        return "pipeline.run_dir is empty: name a directory - at `$.pipeline.run_dir`"
    gateway = config.gateway
    for field in ("bind", "market_data"):
        for i, endpoint in enumerate(getattr(gateway, field)):
            where = f"at `$.gateway.{field}[{i}]`"
            if not endpoint.startswith(("ipc://", "tcp://")):
                return f"gateway.{field} endpoint {endpoint!r}: use ipc:// or tcp:// - {where}"
            if endpoint.startswith("tcp://") and gateway.curve is None:
                return (
                    f"gateway.{field} endpoint {endpoint!r}: a tcp:// endpoint needs ZeroMQ "
                    "CURVE ([gateway.curve] server_key and clients; tradepipe keys new "
                    f"makes them) - {where}"
                )
            socket_dir = Path(endpoint.removeprefix("ipc://")).expanduser().parent
            if endpoint.startswith("ipc://") and not socket_dir.is_dir():
                return (
                    f"gateway.{field} endpoint {endpoint!r}: directory {socket_dir} does not "
                    f"exist - {where}"
                )
    if gateway.curve is not None:  # read now: a bad key file stops the run before it starts
        for field, load in (("server_key", keys.load_server_key), ("clients", keys.load_clients)):
            try:
                load(getattr(gateway.curve, field))
            except keys.KeyFileError as error:
                return f"gateway.curve.{field}: {error} - at `$.gateway.curve.{field}`"
    problem = affinity.check_cpus(config.pipeline.cpus, affinity.allowed_cores())
    if problem is not None:
        return problem
    for i, instrument in enumerate(risk.instruments):
        try:
            SymbolSpec(
                symbol=instrument.symbol, tick_size=instrument.tick_size,
                lot_size=instrument.lot_size, min_qty=instrument.min_qty,
                max_qty=instrument.max_qty, price_band_low=instrument.price_band_low,
                price_band_high=instrument.price_band_high,
            )  # fmt: skip
        except ValueError as error:
            text = str(error)
            field = text.split(" = ", 1)[0].rsplit(".", 1)[-1] if " = " in text else ""
            where = f"$.engine.risk.instruments[{i}]" + (f".{field}" if field else "")
            return f"{text.removeprefix('SymbolSpec.')} - at `{where}`"
    return None
