"""The ingest stage process: a source's commands, checked and sequenced, onto the commands ring.

Per batch, what the in-process ``Engine`` does at its ingest step, in the same order: the
source's commands are stamped (``Stamper``: contiguous ``seq``, ``ts_ingest``), validated
(``validate``: malformed commands get their ``reason``) and throttled (``Throttle``,
driven by the stamped ``ts_ingest``), then copied into the claimed slots of the commands
ring and published with one cursor store. A refused command keeps flowing with its reason
(matching answers it with the one REJECTED). Replaying the journal through an ``Engine``
repeats validation and throttling; both skip commands already refused, so the replay ends
in the same throttle state and the same reasons.

The source is the seeded synthetic flow (``SyntheticFlow``): every account is funded first
(DEPOSITs, sequenced and journaled like orders), then ``orders`` orders in batches of
``batch``. At its end the commands ring is finished, and every stage downstream drains.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from ringbuffer import EndOfStreamError, Ring, wait_strategy
from stages.engine import EngineConfig
from stages.ingest.synthetic import Stamper, SyntheticFlow
from stages.ingest.throttle import Throttle
from stages.ingest.validate import validate
from stages.loop import ControlChannel, StageLoop, StageResult, Views
from stages.records import COMMAND_DTYPE


class IngestConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the ingest stage generates and how it checks it."""

    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    orders: int = 10_000
    batch: int = 1024
    accounts: int = 100
    seed: int = 7
    funding: int = 10**12
    wait: str = "backoff"


class SyntheticSource:
    """The funding deposits, then ``orders`` synthetic orders, as a loop ``Input``.

    ``wait`` returns one view of the next stamped-and-checked batch (it never waits: the
    flow is generated on demand); ``EndOfStreamError`` once all were handed out.
    """

    def __init__(self, config: IngestConfig) -> None:
        engine = config.engine
        symbols = [instrument.symbol for instrument in engine.risk.instruments]
        self.flow = SyntheticFlow(symbols, accounts=config.accounts, seed=config.seed)
        self.stamper = Stamper()
        self.throttle = Throttle(engine.throttle, engine.risk.max_accounts)
        self.max_accounts = engine.risk.max_accounts
        self.batch = config.batch
        self.remaining = config.orders
        assets = [asset.asset for asset in engine.risk.assets]
        self._funding: np.ndarray | None = self.flow.funding(assets, config.funding)
        self.refused = 0

    def wait(self, limit: int | None = None, timeout: float | None = None) -> Views:
        if self._funding is not None:
            batch, self._funding = self._funding, None
        elif self.remaining > 0:
            n = min(self.batch, self.remaining, limit or self.batch)
            batch = self.flow.next(n)
            self.remaining -= n
        else:
            raise EndOfStreamError("synthetic load: every order was sent")
        self.stamper.stamp(batch)
        self.refused += validate(batch, self.max_accounts)
        self.refused += self.throttle.check(batch)
        return (batch,)

    def release(self) -> None:
        """Nothing to give back: each batch is a fresh array."""


def run(
    commands_ring: str,
    config: IngestConfig | None = None,
    control: ControlChannel | None = None,
) -> StageResult:
    """Run the ingest stage: publish the configured load to ``commands_ring``, then finish it.

    ``commands_ring`` is the segment name (``pipeline.topology``); this process becomes its
    producer. Returns the loop's counters and ``last_seq``, ``refused`` and the throttle's
    ``throttle_hash`` (part of the pipeline's state).
    """
    config = config if config is not None else IngestConfig()
    ring = Ring.attach(commands_ring, COMMAND_DTYPE)
    try:
        producer = ring.producer(wait_strategy(config.wait))
        source = SyntheticSource(config)

        def publish(views: Views) -> None:
            """Hot: claim, byte copy, one publish per batch (per ring-sized chunk)."""
            producer.publish_batch(views[0])

        def status() -> dict[str, Any]:
            return {"last_seq": source.stamper.last_seq, "published": producer.published}

        loop = StageLoop(source, publish, [producer], control=control, status=status)
        stopped_by = loop.run()
        details = {
            "last_seq": source.stamper.last_seq,
            "refused": source.refused,
            "throttle_hash": source.throttle.state_hash(),
        }
        producer.close()
        return StageResult("ingest", loop.counters, stopped_by, details)
    finally:
        ring.close()
