"""The ingest stage process: a source's commands, checked and sequenced, onto the commands ring.

Per batch, what the in-process ``Engine`` does at its ingest step, in the same order: the
source's commands are stamped (``Stamper``: contiguous ``seq``, ``ts_ingest``), validated
(``validate``: malformed commands get their ``reason``) and throttled (``Throttle``,
driven by the stamped ``ts_ingest``), then copied into the claimed slots of the commands
ring and published with one cursor store. A refused command keeps flowing with its reason
(matching answers it with the one REJECTED). Replaying the journal through an ``Engine``
repeats validation and throttling; both skip commands already refused, so the replay ends
in the same throttle state and the same reasons.

What ``IngestInput`` hands the loop, in this order:

1. after a restart (``RestartPoint``), the journaled commands not all answered before the
   crash, exactly as journaled (not stamped again: their stamps drive the throttles);
2. admin commands from the control plane (``tradepipe halt``, ``deposit``, ...): stamped
   when they arrive (the reply names their seq), marked ``CommandOrigin.CONTROL``;
3. the load source: the seeded synthetic flow (``CommandStream``), every account funded
   first, then ``orders`` orders, paced at ``rate`` commands/s if one is set (``Pacer``);
   or, with an order gateway, the funding deposits and then the clients' orders from the
   gateway's orders ring, stamped as they come, in the gateway's order.

At the source's end the commands ring is finished, and every stage downstream drains.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from ringbuffer import Consumer, EndOfStreamError, Ring, WaitTimeoutError, wait_strategy
from ringbuffer.records import clone_records, concat_records
from stages.engine import EngineConfig
from stages.ingest import admin
from stages.ingest.pacing import Pacer
from stages.ingest.synthetic import Stamper, SyntheticFlow
from stages.ingest.throttle import Throttle
from stages.ingest.validate import validate
from stages.loop import (
    ControlChannel,
    StageLoop,
    StageResult,
    Views,
    request_field,
    request_kind,
    ring_positions,
)
from stages.persistence.journal_reader import JournalReader
from stages.records import COMMAND_DTYPE, CommandOrigin
from stages.restart import RestartPoint

ADMIN_KINDS = ("halt", "resume", "kill_switch", "deposit")


class IngestConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the ingest stage generates and how it checks it."""

    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    orders: int = 10_000
    batch: int = 1024
    accounts: int = 100
    seed: int = 7
    funding: int = 10**12
    rate: float = 0.0  # commands/s offered by the source; 0: as fast as ingest takes them
    wait: str = "backoff"
    journal: str = ""  # the journal directory (read only after a restart)


class CommandStream:
    """The synthetic load as one stream of commands: the funding deposits, then ``orders``
    orders, generated ``batch`` at a time.

    The stream's content depends only on the config (seed, batch), never on how it is
    taken: ``take(n)`` hands out the next ``n`` of whatever chunk is at hand, and
    ``skip(n)`` drops the first ``n`` (a restarted ingest skips what the journal holds).
    """

    def __init__(self, config: IngestConfig) -> None:
        engine = config.engine
        symbols = [instrument.symbol for instrument in engine.risk.instruments]
        self.flow = SyntheticFlow(symbols, accounts=config.accounts, seed=config.seed)
        self.batch = config.batch
        self.orders_left = config.orders
        assets = [asset.asset for asset in engine.risk.assets]
        self._chunk = self.flow.funding(assets, config.funding)
        self._at = 0
        self.taken = 0

    def _refill(self) -> bool:
        if self._at < len(self._chunk):
            return True
        if self.orders_left <= 0:
            return False
        n = min(self.batch, self.orders_left)
        self._chunk, self._at = self.flow.next(n), 0
        self.orders_left -= n
        return True

    def take(self, n: int) -> np.ndarray | None:
        """The next up to ``n`` commands, or None at the end.

        A view of the generated chunk, not a copy: each command is handed out once (the
        chunk is replaced, never reused), so the caller may stamp it in place; numpy's
        structured ``copy`` cost ~4 µs per take, a fifth of ingest's work per batch at
        light load.
        """
        if not self._refill():
            return None
        out = self._chunk[self._at : self._at + n]
        self._at += len(out)
        self.taken += len(out)
        return out

    def skip(self, n: int) -> None:
        while n > 0 and self._refill():
            step = min(n, len(self._chunk) - self._at)
            self._at += step
            self.taken += step
            n -= step


class IngestInput:
    """The loop's input: re-sent journal records, then admin commands, then the source.

    ``wait`` returns one view of the next checked batch; ``WaitTimeoutError`` when a paced
    source has nothing due within ``timeout``; ``EndOfStreamError`` once all is handed out.
    """

    def __init__(
        self,
        config: IngestConfig,
        restart: RestartPoint | None,
        orders: Consumer | None = None,
    ) -> None:
        engine = config.engine
        self.orders = orders  # the gateway's orders ring: the source, instead of the stream
        self.max_accounts = engine.risk.max_accounts
        self.batch = config.batch
        self.stream = CommandStream(config)
        self.pacer = Pacer(config.rate) if config.rate > 0 else None
        self.refused = 0
        self.admin: deque[np.ndarray] = deque()
        self.resent = np.zeros(0, dtype=COMMAND_DTYPE)
        if restart is None:
            self.stamper = Stamper()
            self.throttle = Throttle(engine.throttle, self.max_accounts)
        else:
            state = restart.engine()
            self.throttle = state.throttle
            self.stamper = Stamper(restart.journal_end)
            self.stream.skip(restart.source_taken)
            if restart.journal_end > restart.state_seq:
                with JournalReader(Path(config.journal).expanduser()) as reader:
                    batches = list(reader.batches(restart.state_seq + 1, restart.journal_end))
                self.resent = np.concatenate(batches) if batches else self.resent
        self._resent_at = 0

    @property
    def source_taken(self) -> int:
        return self.stream.taken

    def enqueue_admin(self, command: np.ndarray) -> int:
        """Stamp an admin command now (it is sequenced here) and queue it; its seq."""
        command["origin"] = CommandOrigin.CONTROL
        self.stamper.stamp(command)
        self.admin.append(command)
        return int(command["seq"][-1])

    def _next_batch(self, limit: int, timeout: float | None) -> np.ndarray:
        if self._resent_at < len(self.resent):  # as journaled: not stamped again
            batch = self.resent[self._resent_at : self._resent_at + limit]
            self._resent_at += len(batch)
            return batch.copy()
        if self.admin:
            return self.admin.popleft()
        if self.orders is not None:  # the funding deposits first, then the clients
            funding = self.stream.take(limit)
            if funding is not None:
                return self.stamper.stamp(funding)
            return self._from_gateway(limit, timeout)
        n = limit
        if self.pacer is not None:
            due = self.pacer.due()
            if due <= 0:
                if not self.pacer.wait_for_next(0.05 if timeout is None else timeout):
                    raise WaitTimeoutError("paced source: nothing due yet")
                due = self.pacer.due()
            n = min(n, due)
        batch = self.stream.take(n)
        if batch is None:
            raise EndOfStreamError("the load source: every command was sent")
        if self.pacer is not None:
            self.pacer.take(len(batch))
        return self.stamper.stamp(batch)

    def _from_gateway(self, limit: int, timeout: float | None) -> np.ndarray:
        """The clients' orders the gateway put in the orders ring, in its order, stamped.
        The ring's end (the gateway stopped) is the end of the stream."""
        views = self.orders.wait(limit, 0.05 if timeout is None else timeout)
        batch = concat_records(views) if len(views) > 1 else clone_records(views[0])
        self.orders.release()
        return self.stamper.stamp(batch)

    def wait(self, limit: int | None = None, timeout: float | None = None) -> Views:
        return (self._check(self._next_batch(min(self.batch, limit or self.batch), timeout)),)

    def _check(self, batch: np.ndarray) -> np.ndarray:
        self.refused += validate(batch, self.max_accounts)
        self.refused += self.throttle.check(batch)
        return batch

    def queued_admin(self) -> list[np.ndarray]:
        """The admin commands stamped but not handed out yet, checked (at a stop: their
        replies named their seq, so they are sequenced before the ring finishes)."""
        queued = [self._check(command) for command in self.admin]
        self.admin.clear()
        return queued

    def release(self) -> None:
        """Nothing to give back: each batch is handed out once (the ring holds a copy)."""


def admin_command(request: object) -> np.ndarray:
    """The command an admin request asks for (``ValueError`` if it is not one)."""
    kind = request_kind(request)
    if kind == "halt":
        return admin.halt(request_field(request, "symbol"))
    if kind == "resume":
        return admin.resume(request_field(request, "symbol"))
    if kind == "kill_switch":
        every = request_field(request, "all_accounts")
        account = None if every else request_field(request, "account")
        return admin.kill_switch(account, release=request_field(request, "release"))
    if kind == "deposit":
        return admin.deposit(
            request_field(request, "account"),
            request_field(request, "asset"),
            request_field(request, "amount"),
        )
    raise ValueError(f"ingest does not handle {kind!r}")


def run(
    commands_ring: str,
    config: IngestConfig | None = None,
    control: ControlChannel | None = None,
    restart: RestartPoint | None = None,
    orders_ring: str = "",
) -> StageResult:
    """Run the ingest stage: publish the configured load to ``commands_ring``, then finish it.

    With ``orders_ring`` (the gateway's) its source is that ring instead of the synthetic
    load, until the gateway finishes it.

    ``commands_ring`` is the segment name (``pipeline.topology``); this process becomes its
    producer. Returns the loop's counters and ``last_seq``, ``source_taken``, ``refused``
    and the throttle's ``throttle_hash`` (part of the pipeline's state).
    """
    config = config if config is not None else IngestConfig()
    ring = Ring.attach(commands_ring, COMMAND_DTYPE)
    orders = Ring.attach(orders_ring, COMMAND_DTYPE) if orders_ring else None
    try:
        producer = ring.producer(wait_strategy(config.wait))
        orders_in = orders.consumer("ingest", wait_strategy(config.wait)) if orders else None
        source = IngestInput(config, restart, orders_in)

        def publish(views: Views) -> None:
            """Hot: claim, byte copy, one publish per batch (per ring-sized chunk)."""
            producer.publish_batch(views[0])

        def status() -> dict[str, Any]:
            return {
                "last_seq": source.stamper.last_seq,
                "source_taken": source.source_taken,
                "refused": source.refused,
                "rings": ring_positions({"commands": ring}),
            }

        def on_control(request: object) -> dict[str, Any]:
            if request_kind(request) not in ADMIN_KINDS:
                return {"error": f"ingest does not handle {request_kind(request)!r}"}
            try:
                command = admin_command(request)
            except (ValueError, TypeError) as error:
                return {"error": str(error)}
            return {"seq": source.enqueue_admin(command)}

        def finish() -> None:
            for command in source.queued_admin():
                producer.publish_batch(command)

        loop = StageLoop(
            source,
            publish,
            [producer],
            control=control,
            status=status,
            on_control=on_control,
            finish=finish,
        )
        stopped_by = loop.run()
        details = {
            "last_seq": source.stamper.last_seq,
            "source_taken": source.source_taken,
            "refused": source.refused,
            "throttle_hash": source.throttle.state_hash(),
        }
        producer.close()
        return StageResult("ingest", loop.counters, stopped_by, details)
    finally:
        ring.close()
        if orders is not None:
            orders.close()
