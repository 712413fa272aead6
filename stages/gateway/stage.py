"""The gateway stage process: clients' orders into the pipeline, their reports and the market
back out.

Sockets (ZeroMQ) and rings:

* order entry: a ROUTER bound on every ``bind`` endpoint. Each frame goes to the
  ``Gateway`` domain core (``stages.gateway.sessions``) with the connection's identity and,
  under CURVE, the accounts its key may trade; the command records of the returned ``Step``
  go into the **orders ring** (producer; ingest is its consumer) with one all-or-nothing
  claim: a full ring is answered ``Busy`` at once (``Gateway.busy`` undoes the step), never
  waited on and never dropped. Cancels of an ending session (logout, heartbeat lapse with
  cancel on disconnect) cannot be refused: they wait in a queue for room.
* released answers: the **answers ring** (consumer; output, its producer, publishes every
  batch of events it released: only durable answers, output waits for persistence); they
  become execution reports for the sessions owning the orders (``Gateway.on_events``) and
  market data (``stages.marketdata.DepthBuilder``): incremental depth, trades and best
  bid/offer on a PUB bound on every ``market_data`` endpoint, topic per symbol, a full
  snapshot of every symbol every ``snapshot_every_s``. After a restart the answers at the
  front that left before the crash (``stages.restart.ReleasedBefore``) move the orders and
  books along but are not reported again.
* CURVE: with a server key, every ROUTER and PUB endpoint is a CURVE server and a ZAP
  handler admits only the authorised client keys; each connection's accounts come from its
  key (ZeroMQ's ``User-Id`` of each frame), so one key cannot act for another account.

The order-id log (``stages.gateway.id_log``, in ``journal_dir``): at the end of each round
one write (fsynced with ``id_log_fsync``) holds the NEWs the round claimed slots for and
the accounts' report seqs (and how far the released answers were taken); only then are the
round's records published into the orders ring and its replies and reports sent. After a
crash the restarted gateway is ``Gateway.restore``d from the restart state's resting
orders, the journaled commands after it (sent again by ingest) and that log, so clients
find their orders by client order id again; it then starts a new, compact log.

The loop sleeps in one ``zmq.Poller`` over the ROUTER and the answers ring's doorbell (a
pipe output's publishes ring while the gateway sleeps: ``ringbuffer.doorbell``), so a
round starts as soon as an answer is released or an order arrives; between rounds it
answers the control plane, sends heartbeats and expires silent sessions. A ``stop``
finishes the orders ring (ingest drains and ends, and the end flows down to output) and
refuses new requests; the gateway keeps sending reports until output finishes the answers
ring and everything in it was taken, then exits.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections import deque
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import zmq

from ringbuffer import Consumer, Doorbell, EndOfStreamError, Ring, wait_strategy
from ringbuffer.records import copy_records
from stages.engine import EngineConfig
from stages.gateway.codec import MAX_BATCH
from stages.gateway.commands import records
from stages.gateway.id_log import IdLog, read_id_log
from stages.gateway.sessions import Gateway, Outbox, Outgoing, Step, queue
from stages.gateway.symbols import SymbolTable
from stages.loop import ControlChannel, LoopCounters, StageResult, request_kind, ring_positions
from stages.marketdata.builder import DepthBuilder
from stages.marketdata.messages import encode as encode_market_data
from stages.marketdata.messages import topic
from stages.persistence.journal_reader import JournalReader
from stages.records import COMMAND_DTYPE, EVENT_DTYPE
from stages.restart import ReleasedBefore, RestartPoint

#: the longest the loop waits for a frame before it answers control and expires sessions (ms)
IDLE_MS = 50
#: requests taken per round, so neither side starves the other
ROUND = 256
#: released answers (events) taken per round, likewise
ANSWERS_ROUND = 8192
#: the garbage collector's first-generation threshold in the gateway (Python's is 700):
#: the gateway allocates a few objects per request and report and makes no cycles in
#: its loop, and collections every 700 allocations cost ~25 % of its time per request
#: (measured with the Gateway and the Engine in one process: 33 -> 25 µs a request)
GC_THRESHOLD = (50_000, 20, 1_000)
#: how often silent sessions are looked for (seconds)
EXPIRE_EVERY = 0.1


class GatewayBindError(OSError):
    """An endpoint the gateway cannot bind (in use, no such interface, no permission)."""


def _bind(socket: zmq.Socket, endpoint: str) -> None:
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as error:
        raise GatewayBindError(f"the gateway cannot listen on {endpoint}: {error}") from None


class GatewayStageConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the gateway listens and publishes (plain values: it crosses into the process)."""

    engine: EngineConfig
    bind: list[str]
    market_data: list[str]
    #: the answers ring's doorbell (a pipe output rings while the gateway sleeps; "": none,
    #: the loop then looks at the ring every round it wakes for another reason)
    answers_doorbell: str = ""
    depth: int = 10
    snapshot_every_s: float = 1.0
    server_public: str = ""  # z85 CURVE key pair of the server ("": no CURVE)
    server_secret: str = ""
    clients: dict[str, list[int]] = {}  # authorised client public keys (z85) -> accounts
    wait: str = "backoff"
    #: the journal's directory: the order-id log lives there (durable with it), and a
    #: restart reads the commands sent again from it ("": no log, nothing restored)
    journal_dir: str = ""
    #: fsync each write of the order-id log (set unless the journal's fsync is "never")
    id_log_fsync: bool = False


class _Keys:
    """The ZAP callback: admits the authorised client keys only."""

    def __init__(self, clients: dict[str, list[int]]) -> None:
        self.clients = clients

    def callback(self, domain: str, key: bytes) -> bool:
        return key.decode("ascii", "replace") in self.clients


class GatewayProcess:
    """The gateway's sockets, its ``Gateway`` core and its producer of the orders ring."""

    def __init__(
        self,
        config: GatewayStageConfig,
        orders: Any,
        capacity: int,
        restart: RestartPoint | None,
        context: zmq.Context,
        answers: Consumer | None = None,
    ) -> None:
        self.config = config
        self.orders = orders  # Producer of the orders ring
        self.answers = answers  # Consumer of the answers ring (None: no output runs)
        self.released_before = ReleasedBefore(restart)
        engine = config.engine
        table = SymbolTable.from_risk(engine.risk)
        symbols = [instrument.symbol for instrument in engine.risk.instruments]
        if restart is not None:
            state = restart.engine()
            resting = state.matching.resting_orders()
            directory = config.journal_dir
            self.gateway = Gateway.restore(
                table,
                resting=resting,
                id_log=read_id_log(Path(directory).expanduser()) if directory else None,
                resent=_resent(directory, restart) if directory else None,
                state_seq=restart.state_seq,
                max_accounts=engine.risk.max_accounts,
            )
            self.gateway.resume_order_ids(restart.max_order_id)
            # an epoch no earlier run of this feed used (two restarts may start from one state)
            epoch = time.time_ns()
            self.depth = DepthBuilder.from_resting(resting, config.depth, epoch=epoch)
        else:
            self.gateway = Gateway(table, max_accounts=engine.risk.max_accounts)
            self.depth = DepthBuilder(levels=config.depth)
        self.id_log: IdLog | None = None
        if config.journal_dir:  # a fresh run's new log, or the restored gateway's compact one
            orders, seqs, applied = self.gateway.id_log_state()
            self.id_log = IdLog.start(
                Path(config.journal_dir).expanduser(),
                fsync=config.id_log_fsync,
                orders=orders,
                report_seqs=seqs,
                applied=applied,
            )
        self._claimed = False  # slots of the orders ring claimed, not yet published
        self.symbols = symbols
        # a symbol's messages go out under its configured name, else its id (messages.topic)
        self.topics = {
            instrument.symbol: topic(instrument.name or instrument.symbol)
            for instrument in engine.risk.instruments
        }
        self.pending: deque[np.ndarray] = deque()  # must-send cancels waiting for room
        #: the round's replies and reports by connection: its codec and the messages
        self.outbox: Outbox = {}
        self.stopping = False  # no new requests; the orders ring finishes once pending is out
        self.finished = False  # the orders ring is finished
        self.reports_done = False
        self.capacity = capacity
        self.counters = {"requests": 0, "report_batches": 0, "md_messages": 0}
        self.auth = None
        self.doorbell: Doorbell | None = None  # opened once the sockets are bound (close)
        self.router = context.socket(zmq.ROUTER)
        self.pub = context.socket(zmq.PUB)
        for socket in (self.router, self.pub):
            socket.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a client gone: drop its reply
        # no send high-water mark: a ROUTER silently drops what a full pipe cannot take, and
        # a report may never be dropped; a client that does not read costs memory instead
        self.router.setsockopt(zmq.SNDHWM, 0)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting identity takes over
        try:
            if config.server_secret:
                self._curve(context)
            for socket, endpoints in ((self.router, config.bind), (self.pub, config.market_data)):
                for endpoint in endpoints:
                    _bind(socket, endpoint)
        except BaseException:  # e.g. a port in use: close what was opened, then say it
            self.close()
            raise
        self.poller = zmq.Poller()
        self.poller.register(self.router, zmq.POLLIN)
        if answers is not None and config.answers_doorbell:
            self.doorbell = Doorbell(config.answers_doorbell)
            self.poller.register(self.doorbell.fileno(), zmq.POLLIN)
        self._next_expire = 0.0
        self._next_snapshot = 0.0

    def _curve(self, context: zmq.Context) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        self.auth = ThreadAuthenticator(context)
        self.auth.start()
        self.auth.configure_curve_callback("*", credentials_provider=_Keys(self.config.clients))
        for socket in (self.router, self.pub):
            socket.curve_secretkey = self.config.server_secret.encode()
            socket.curve_publickey = self.config.server_public.encode()
            socket.curve_server = True

    # --- one round ---------------------------------------------------------------------------
    def round(self, timeout_ms: int) -> None:
        """Wait up to ``timeout_ms`` for a frame on either socket, then take what is there.

        Reports and replies are collected per connection and leave at the end of the round
        in one frame per connection (a batch when there are several: ``codec``, Batches),
        after one write of the id log (fsynced) holding the round's NEWs and report seqs,
        and after the round's records were published (``_end_round``)."""
        ready = dict(self.poller.poll(0))
        if not ready and not self.pending and not self._answers_waiting():
            ready = dict(self.poller.poll(timeout_ms))  # nothing to do: sleep
        if self.doorbell is not None and self.doorbell.fileno() in ready:
            self.doorbell.drain()  # rung: else the pipe stays readable and no poll sleeps
        now = time.monotonic()
        if self.answers is not None:
            self._take_answers()
        if self.router in ready:
            self._take_requests(now)
        if self.pending:
            self._send_pending()
        if now >= self._next_expire:
            self._next_expire = now + EXPIRE_EVERY
            self._admit([self.gateway.expire(now)])
        if now >= self._next_snapshot:
            self._next_snapshot = now + self.config.snapshot_every_s
            for symbol in self.symbols:
                self._publish(self.depth.snapshot(symbol))
        self._end_round()

    def _end_round(self) -> None:
        """The id log first (one write, one fsync a round: under a journal fsyncing on the
        same disk each costs milliseconds), then the ring, then the replies and reports."""
        if self.id_log is not None:
            # an order the engine can see is always in the log, and no client sees a
            # report seq the log does not hold
            self.id_log.flush()
        if self._claimed:
            self.orders.publish()
            self._claimed = False
        self._send_replies()

    def _take_requests(self, now: float) -> None:
        """Up to ``ROUND`` requests (a batch frame counts its messages), judged in order,
        then admitted into the orders ring together (``_admit``)."""
        router, gateway = self.router, self.gateway
        clients = self.config.clients
        steps: list[Step] = []
        while len(steps) < ROUND:
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            if len(frames) != 2:
                continue  # a client sends one frame at a time (a message or a batch)
            identity, frame = frames[0].bytes, frames[1]
            allowed = None
            if clients:
                allowed = clients.get(frame.get("User-Id"), ())
            if self.stopping:
                self.counters["requests"] += 1
                self._refuse_stopping(identity, frame.bytes)
                continue
            taken = len(steps)
            steps += gateway.on_frames(identity, frame.bytes, now, allowed)
            self.counters["requests"] += len(steps) - taken  # messages, not frames
        self._admit(steps)

    def _refuse_stopping(self, identity: bytes, frame: bytes) -> None:
        from stages.gateway.codec import sniff
        from stages.gateway.protocol import BusinessReject

        codec = sniff(frame)
        reject = BusinessReject(field="$", text="the gateway is stopping: no new requests")
        self._reply(Outgoing(identity, reject, codec))

    def _admit(self, steps: list[Step]) -> None:
        """Put the steps' records into the orders ring and queue their replies, in order.

        All of them in one claim when the ring has room (the usual case); else one step at
        a time until one does not fit, and that one and every later one is answered
        ``Busy`` (undone last first: a later request may be about an earlier one's order),
        except the cancels of an ending session, which wait in ``pending``."""
        admitted = self._fit(steps)
        for i in range(len(steps) - 1, admitted - 1, -1):
            if steps[i].packed and not steps[i].must_send:
                steps[i] = self.gateway.busy(steps[i])
        for i, step in enumerate(steps):
            if i >= admitted and step.must_send and step.packed:
                commands = step.commands  # queued, in chunks the ring can take
                for start in range(0, len(commands), self.capacity):
                    self.pending.append(commands[start : start + self.capacity])
            elif step.new_orders and self.id_log is not None:
                self.id_log.add_orders(step.new_orders)  # written before the round publishes
            for reply in step.replies:
                self._reply(reply)

    def _fit(self, steps: list[Step]) -> int:
        """How many steps at the front went into the ring: every one in one claim when they
        fit, else one at a time up to the first that does not."""
        packed = [step.packed for step in steps if step.packed]
        if not packed:
            return len(steps)
        if not self.pending and self._offer(records(b"".join(packed))):
            return len(steps)
        for i, step in enumerate(steps):
            if step.packed and (self.pending or not self._offer(step.commands)):
                return i
        return len(steps)

    def _offer(self, commands: np.ndarray) -> bool:
        if self.finished or len(commands) > self.capacity:
            return False
        slots = self.orders.try_claim_exactly(len(commands))
        if not slots:
            return False
        done = 0
        for view in slots:
            copy_records(view, commands[done : done + len(view)])
            done += len(view)
        self._claimed = True  # published at the end of the round (``_end_round``)
        return True

    def _send_pending(self) -> None:
        while self.pending and self._offer(self.pending[0]):
            self.pending.popleft()

    def _reply(self, outgoing: Outgoing) -> None:
        """Queue a message for its connection; the round's end sends it (``_send_replies``)."""
        queue(self.outbox, outgoing)

    def _send_replies(self) -> None:
        """One frame per connection with everything queued for it this round."""
        if not self.outbox:
            return
        send = self.router.send_multipart
        for identity, (codec, messages) in self.outbox.items():
            for start in range(0, len(messages), MAX_BATCH):
                frame = codec.encode_batch(messages[start : start + MAX_BATCH])
                # a client that does not read loses the frame here: its reports stay in
                # its log (ReportsSince)
                with contextlib.suppress(zmq.Again):
                    send([identity, frame], zmq.NOBLOCK)
        self.outbox.clear()

    def _answers_waiting(self) -> bool:
        """Before sleeping: whether released answers wait in the ring (then do not sleep;
        under load the loop never gets here: a socket or the doorbell is always ready).

        The doorbell is drained first, then the consumer arms (``arm``: raises its parked flag
        and looks again): an answer published after that look rings the doorbell, so the
        poll cannot sleep through it (``ringbuffer.doorbell``)."""
        if self.doorbell is None:
            return False
        self.doorbell.drain()
        return self.answers.arm()  # type: ignore[union-attr]

    def _take_answers(self) -> None:
        """The released answers in the ring (up to ``ANSWERS_ROUND``): reports into the
        round's outbox, market data out; the ring's end means output is done."""
        answers = self.answers
        views = answers.poll(ANSWERS_ROUND)  # type: ignore[union-attr]
        if not views:
            self._keep_house()
            return
        gateway, released_before = self.gateway, self.released_before
        for events in views:
            # the answers at its front a restart says already left: they move the orders
            # along (and the books) but are not reported again
            released = released_before.take(events["seq"]) if released_before.left else 0
            self.counters["report_batches"] += 1
            gateway.on_events_into(self.outbox, events, released)
            for message in self.depth.process(events):
                self._publish(message)
        answers.release()  # type: ignore[union-attr]
        self._keep_house()
        if self.id_log is not None:  # written before the reports leave
            self.id_log.note_report_seqs(gateway.report_seqs())
            self.id_log.note_applied(gateway.applied)

    def _keep_house(self) -> None:
        """The answers consumer's heartbeat and checks (a wait would make them); the end
        of the ring once everything in it was taken: output is done."""
        try:
            self.answers.keep_house()  # type: ignore[union-attr]
        except EndOfStreamError:
            self.reports_done = True

    def _publish(self, message: Any) -> None:
        self.counters["md_messages"] += 1
        self.pub.send_multipart([self.topics[message.symbol], encode_market_data(message)])

    def close(self) -> None:
        if self.auth is not None:  # first: its thread must not see its sockets vanish
            self.auth.stop()
            self.auth = None
        for socket in (self.router, self.pub):
            socket.close()
        if self.doorbell is not None:
            self.doorbell.close()
        if self.id_log is not None:
            self.id_log.close()


def run(
    orders_ring: str,
    config: GatewayStageConfig,
    control: ControlChannel | None = None,
    restart: RestartPoint | None = None,
    answers_ring: str = "",
) -> StageResult:
    """Run the gateway until a stop, then until output has finished the answers ring."""
    ring = Ring.attach(orders_ring, COMMAND_DTYPE)
    answers_segment = Ring.attach(answers_ring, EVENT_DTYPE) if answers_ring else None
    context = zmq.Context()
    process = None
    counters = LoopCounters(state="running")
    try:
        orders = ring.producer(wait_strategy(config.wait))
        answers = None
        if answers_segment is not None:
            answers = answers_segment.consumer("gateway", wait_strategy(config.wait))
        process = GatewayProcess(config, orders, ring.capacity, restart, context, answers)
        rings = {"orders": ring}
        if answers_segment is not None:
            rings["answers"] = answers_segment
        gc.freeze()  # what start-up built lives for the run: never traversed again
        gc.set_threshold(*GC_THRESHOLD)
        last_beat = time.monotonic()
        while not process.reports_done:
            started = time.perf_counter_ns()
            process.round(IDLE_MS)
            counters.busy_ns += time.perf_counter_ns() - started
            counters.batches += 1
            if control is not None:
                for request in control.poll():
                    kind = request_kind(request)
                    if kind == "status":
                        control.reply(request, _status(process, counters, rings))
                    elif kind == "stop":
                        process.stopping = True
                        counters.state = "draining"
                        control.reply(request, {"stopping": True})
                    else:
                        control.reply(request, {"error": f"the gateway does not handle {kind!r}"})
            if process.stopping and not process.pending and not process.finished:
                process.finished = True
                orders.finish()  # ingest drains the orders ring and ends; the end flows on
            now = time.monotonic()
            if now - last_beat >= 0.1:
                last_beat = now
                orders.heartbeat()
        counters.state = "stopped"
        counters.records = process.counters["requests"]
        details = {**process.counters, **process.gateway.counters, **_restored(process)}
        orders.close()
        if answers is not None:
            answers.close()
        return StageResult("gateway", counters, "stop", details)
    finally:
        if process is not None:
            process.close()
        context.destroy(linger=0)  # closes the sockets a failed start left open (term waits)
        ring.close()
        if answers_segment is not None:
            answers_segment.close()


def _status(
    process: GatewayProcess, counters: LoopCounters, rings: dict[str, Ring]
) -> dict[str, Any]:
    return {
        **counters.as_dict(),
        "records": process.counters["requests"],
        "sessions": len(process.gateway.sessions),
        **process.counters,
        **{f"gateway_{k}": v for k, v in process.gateway.counters.items()},
        **_restored(process),
        "rings": ring_positions(rings),
    }


def _restored(process: GatewayProcess) -> dict[str, Any]:
    """The id log's counters and what a restore found (``restored_*``), for status."""
    figures: dict[str, Any] = dict(process.id_log.counters) if process.id_log else {}
    figures.update({f"restored_{k}": v for k, v in process.gateway.restored.items()})
    return figures


def _resent(journal_dir: str, restart: RestartPoint) -> np.ndarray:
    """The journaled commands after the restart's seq: ingest sends them again, and their
    answers come back to the restored gateway (as ``stages.ingest.stage`` reads them)."""
    if restart.journal_end <= restart.state_seq:
        return np.zeros(0, dtype=COMMAND_DTYPE)
    with JournalReader(Path(journal_dir).expanduser()) as reader:
        batches = list(reader.batches(restart.state_seq + 1, restart.journal_end))
    return np.concatenate(batches) if batches else np.zeros(0, dtype=COMMAND_DTYPE)
