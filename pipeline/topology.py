"""The pipeline's wiring as data: which rings exist, who reads them after whom, who runs what.

From a run config, ``Topology`` names the three rings, their capacities and consumers
(with their dependency barriers), creates and unlinks them (the creator, i.e. the
supervisor or a test, owns them; stages only attach), and says for every stage which entry
point to call with which arguments, so a supervisor only spawns and watches processes.
The diagram is in ``docs/architecture.md`` ("Pipeline wiring").

    commands ring  ingest → persistence, risk, output (after persistence: the durable seq)
    checked ring   risk → matching, risk (after matching: how far matching has answered)
    events ring    matching → risk (settlement), output
    orders ring    gateway → ingest (with load.source = "gateway")
    answers ring   output → gateway (the released answers; the gateway sleeps in a poll
                   over its sockets and the ring's doorbell, a pipe in the run directory)

Each stage waits with the strategy its core suits (``waits``): ``backoff`` (spin, yield,
park) on a core of its own under the CPU plan, ``park`` (a short spin, then park) on a
core it shares with other stages, where polling would take the core from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import affinity
from pipeline.config import RunConfig
from pipeline.control import ANSWERS_DOORBELL, GATEWAY_SOCKET, MARKET_DATA_SOCKET, ipc_endpoint
from ringbuffer import ConsumerSpec, Doorbell, Ring
from stages.gateway import stage as gateway_stage
from stages.gateway.stage import GatewayStageConfig
from stages.ingest import stage as ingest_stage
from stages.ingest.stage import IngestConfig
from stages.matching import stage as matching_stage
from stages.matching.stage import MatchingStageConfig
from stages.output import stage as output_stage
from stages.output.stage import OutputConfig
from stages.persistence import stage as persistence_stage
from stages.persistence.stage import PersistenceConfig
from stages.records import COMMAND_DTYPE, EVENT_DTYPE
from stages.restart import RestartPoint
from stages.risk import stage as risk_stage
from stages.risk.stage import RiskStageConfig

COMMANDS, CHECKED, EVENTS, ORDERS, ANSWERS = "commands", "checked", "events", "orders", "answers"
#: the stages, in the order a supervisor starts them (consumers before their producers)
STAGES = ("output", "persistence", "matching", "risk", "ingest")


@dataclass(frozen=True)
class RingPlan:
    """One ring: its role name, record type, capacity and consumers (in declaration order)."""

    role: str
    dtype: np.dtype
    capacity: int
    consumers: tuple[ConsumerSpec, ...]


@dataclass(frozen=True)
class StageCall:
    """A stage's entry point and its keyword arguments (plain, picklable values)."""

    name: str
    entry: Callable[..., Any]
    kwargs: dict[str, Any]


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


@dataclass
class Topology:
    """The rings and stage calls of one pipeline; ``create()`` makes the rings.

    ``tag`` goes into the ring labels (``<tag>-commands``...) so several pipelines can
    live in one process (tests). Capacities default to enough for a few batches.
    """

    config: RunConfig
    tag: str = "pipe"
    capacities: dict[str, int] = field(default_factory=dict)
    rings: dict[str, Ring] = field(default_factory=dict)
    _doorbell: Path | None = field(default=None, repr=False)  # made by create()

    def plans(self) -> list[RingPlan]:
        batch = self.config.load.batch
        default = max(1 << 14, _pow2_at_least(4 * batch))
        cap = {COMMANDS: default, CHECKED: default, EVENTS: 4 * default, **self.capacities}
        plans = [
            RingPlan(
                COMMANDS,
                COMMAND_DTYPE,
                cap[COMMANDS],
                (
                    ConsumerSpec("persistence"),
                    ConsumerSpec("risk"),
                    ConsumerSpec("output", after=("persistence",)),
                ),
            ),
            RingPlan(
                CHECKED,
                COMMAND_DTYPE,
                cap[CHECKED],
                (ConsumerSpec("matching"), ConsumerSpec("risk", after=("matching",))),
            ),
            RingPlan(
                EVENTS,
                EVENT_DTYPE,
                cap[EVENTS],
                (ConsumerSpec("risk"), ConsumerSpec("output")),
            ),
        ]
        if self.gateway:  # clients' orders, unsequenced, into ingest; their answers back
            plans.append(
                RingPlan(ORDERS, COMMAND_DTYPE, cap.get(ORDERS, default), (ConsumerSpec("ingest"),))
            )
            plans.append(
                RingPlan(
                    ANSWERS, EVENT_DTYPE, cap.get(ANSWERS, 4 * default), (ConsumerSpec("gateway"),)
                )
            )
        return plans

    @property
    def doorbell(self) -> Path | None:
        """The answers ring's doorbell (a pipe in the run directory), with a gateway."""
        if not self.gateway:
            return None
        return Path(self.config.pipeline.run_dir).expanduser().absolute() / ANSWERS_DOORBELL

    @property
    def gateway(self) -> bool:
        """Whether the order gateway runs (``load.source = "gateway"``)."""
        return self.config.load.source == "gateway"

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The stages of this pipeline in start order: consumers first, the source last."""
        return (*STAGES, "gateway") if self.gateway else STAGES

    # --- lifecycle ----------------------------------------------------------------------
    def create(self) -> dict[str, str]:
        """Create every ring and the answers ring's doorbell (this process owns them);
        return role -> segment name."""
        try:
            if self.doorbell is not None:
                self._doorbell = Doorbell.create(self.doorbell)
            for plan in self.plans():
                self.rings[plan.role] = Ring.create(
                    f"{self.tag}-{plan.role}", plan.dtype, plan.capacity, plan.consumers
                )
        except BaseException:
            self.unlink()
            raise
        return self.names

    @property
    def names(self) -> dict[str, str]:
        return {role: ring.name for role, ring in self.rings.items()}

    def unlink(self) -> None:
        """Unmap and remove every ring and the doorbell created (idempotent)."""
        for ring in self.rings.values():
            ring.close()
            ring.unlink()
        self.rings.clear()
        if self._doorbell is not None:
            Doorbell.unlink(self._doorbell)
            self._doorbell = None

    def __enter__(self) -> Topology:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlink()

    # --- the stages ---------------------------------------------------------------------
    def cpu_plan(self, allowed: set[int] | None = None) -> affinity.CpuPlan:
        """The supervisor's CPU plan over ``allowed`` (default: this process's cores)."""
        pipeline = self.config.pipeline
        return affinity.plan(
            pipeline.cpus,
            gateway=self.gateway,
            realtime=pipeline.realtime,
            nice=pipeline.nice,
            allowed=allowed,
        )

    def waits(self, allowed: set[int] | None = None) -> dict[str, str]:
        """Each stage's wait strategy (the gateway's too, when it runs): ``park`` where the
        CPU plan (``cpu_plan``) puts it on a core with another process of the pipeline,
        ``backoff`` where it has its core to itself."""
        cpu_plan = self.cpu_plan(allowed)
        return {
            stage: "park" if cpu_plan.sharing(stage) else "backoff" for stage in self.stage_names
        }

    def stage_calls(
        self, restart: RestartPoint | None = None, progress: str = "", release_log: str = ""
    ) -> dict[str, StageCall]:
        """What to run in each stage process, in ``STAGES`` order (rings must exist): from
        the start of the load, or from a ``restart`` point. ``progress``: the file output
        keeps its release position in, ``release_log`` the file it appends every answer it
        releases to (``stages.output.stage``; "" for none)."""
        names = self.names
        if set(names) != {plan.role for plan in self.plans()}:
            raise RuntimeError("Topology.stage_calls: create() the rings first")
        endpoints = gateway_endpoints(self.config)
        config = self.config
        engine, load, journal = config.engine, config.load, config.journal
        wait = self.waits()
        calls = {
            "output": StageCall(
                "output",
                output_stage.run,
                {
                    "commands_ring": names[COMMANDS],
                    "events_ring": names[EVENTS],
                    "config": OutputConfig(
                        progress=progress,
                        release_log=release_log,
                        wait=wait["output"],
                        answers_doorbell=str(self.doorbell) if endpoints else "",
                    ),
                    "restart": restart,
                    **({"answers_ring": names[ANSWERS]} if endpoints else {}),
                },
            ),
            "persistence": StageCall(
                "persistence",
                persistence_stage.run,
                {
                    "commands_ring": names[COMMANDS],
                    "config": PersistenceConfig(
                        directory=journal.directory,
                        engine=engine,
                        fsync=journal.fsync,
                        fsync_interval_ms=journal.fsync_interval_ms,
                        segment_bytes=journal.segment_bytes,
                        wait=wait["persistence"],
                    ),
                },
            ),
            "matching": StageCall(
                "matching",
                matching_stage.run,
                {
                    "checked_ring": names[CHECKED],
                    "events_ring": names[EVENTS],
                    "config": MatchingStageConfig(engine=engine, wait=wait["matching"]),
                    "restart": restart,
                },
            ),
            "risk": StageCall(
                "risk",
                risk_stage.run,
                {
                    "commands_ring": names[COMMANDS],
                    "checked_ring": names[CHECKED],
                    "events_ring": names[EVENTS],
                    "config": RiskStageConfig(engine=engine, wait=wait["risk"]),
                    "restart": restart,
                },
            ),
            "ingest": StageCall(
                "ingest",
                ingest_stage.run,
                {
                    "commands_ring": names[COMMANDS],
                    "config": IngestConfig(
                        engine=engine,
                        orders=0 if endpoints else load.orders,  # the gateway: clients only
                        batch=load.batch,
                        accounts=load.accounts,
                        seed=load.seed,
                        funding=load.funding,
                        rate=load.rate,
                        journal=journal.directory,
                        wait=wait["ingest"],
                    ),
                    "restart": restart,
                    **({"orders_ring": names[ORDERS]} if endpoints else {}),
                },
            ),
        }
        if endpoints is not None:
            calls["gateway"] = StageCall(
                "gateway",
                gateway_stage.run,
                {
                    "orders_ring": names[ORDERS],
                    "answers_ring": names[ANSWERS],
                    "config": _gateway_config(
                        config, endpoints, wait["gateway"], str(self.doorbell)
                    ),
                    "restart": restart,
                },
            )
        return {name: calls[name] for name in self.stage_names}


@dataclass(frozen=True)
class GatewayEndpoints:
    """Where the gateway listens (``bind``) and publishes (``market_data``)."""

    bind: tuple[str, ...]
    market_data: tuple[str, ...]


def gateway_endpoints(config: RunConfig) -> GatewayEndpoints | None:
    """The gateway's endpoints for ``config`` (None: no gateway runs): those ``[gateway]``
    names, else Unix sockets in the run directory."""
    if config.load.source != "gateway":
        return None
    run_dir = Path(config.pipeline.run_dir).expanduser().absolute()
    gateway = config.gateway
    return GatewayEndpoints(
        tuple(gateway.bind) or (ipc_endpoint(run_dir, GATEWAY_SOCKET),),
        tuple(gateway.market_data) or (ipc_endpoint(run_dir, MARKET_DATA_SOCKET),),
    )


def _gateway_config(
    config: RunConfig, endpoints: GatewayEndpoints, wait: str, doorbell: str
) -> GatewayStageConfig:
    """The gateway stage's config, CURVE keys read now (a bad key file fails the start)."""
    gateway = config.gateway
    public = secret = ""
    clients: dict[str, list[int]] = {}
    if gateway.curve is not None:
        from pipeline import keys  # only with CURVE: reads key files

        public_key, secret_key = keys.load_server_key(gateway.curve.server_key)
        public, secret = public_key.decode(), secret_key.decode()
        clients = {
            key: list(accounts)
            for key, accounts in keys.load_clients(gateway.curve.clients).items()
        }
    return GatewayStageConfig(
        engine=config.engine,
        bind=list(endpoints.bind),
        market_data=list(endpoints.market_data),
        answers_doorbell=doorbell,
        depth=gateway.depth,
        snapshot_every_s=gateway.snapshot_every_s,
        server_public=public,
        server_secret=secret,
        clients=clients,
        wait=wait,
        journal_dir=config.journal.directory,  # the order-id log: restarts restore from it
        id_log_fsync=config.journal.fsync != "never",
    )
