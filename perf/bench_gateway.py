"""Benchmark the order gateway: client processes → ZeroMQ → the real pipeline → reports back.

The pipeline is ``pipeline.supervisor.Supervisor`` running ``tradepipe run``'s defaults with
``[load] source = "gateway"`` (six stage processes, the journal fsynced per batch), every
file in a temporary directory; the clients are ``tradepipe load``'s (``pipeline.commands.
load``: spawned processes, one ``pipeline.client.Client`` each on its own account, a mix
of passive limit orders around the mid, cancels and crossing IOCs). One pipeline serves
every case of a run; each case's clients log on, trade, cancel what rests and log out.

* ``throughput`` with 1, 2 and 4 client processes: each keeps up to ``WINDOW`` new orders
  in flight (refilled in one batch frame once half of them were answered), as fast as the
  gateway answers. ``orders_per_s``: new orders acknowledged (``accepted`` or
  ``rejected``) per second, over the clients, to the last acknowledgement.
* every case through the pipeline also says where the CPU went, in µs per order
  acknowledged: ``cpu_gateway_us`` (the gateway process), ``cpu_stages_us`` (ingest, risk,
  matching, persistence and output together), ``cpu_clients_us`` (the client processes
  while trading) and ``cpu_total_us``: user + system time of every thread (ZeroMQ's I/O
  threads too), over the case. Unlike the rates, these hardly move with the host's steal
  time, and they say what a target needs: 150 k orders/s on 2 cores is ~13 µs in all.
* ``rtt_10k`` (1 client) and ``rtt_50k`` (2 clients): requests paced at 10 k and 50 k/s in
  all; the round trip of a new order, from just before its frame is sent to its
  ``accepted`` / ``rejected`` report received, p50 / p99 / p99.9 (HdrHistogram).
* ``echo_rtt_10k`` and ``echo_throughput`` (the floor, same run, same transport): a bare
  pyzmq DEALER client process and a ROUTER echo process over ``ipc://``, frames of a
  new order's size, paced at 10 k/s and windowed as above.
* ``md_after_ack``: how long after its trade report a trade shows on the market-data feed.
  A subscriber process (a ``pipeline.client.MarketData`` on ``MD_SYMBOL``, which no other
  case trades) stamps ``perf_counter_ns`` as each ``Trades`` message comes out of ``poll``;
  a trader process holds a maker ``Client`` (account ``MD_MAKER``), resting one sell at
  ``MD_PRICE``, and a taker ``Client`` (``MD_TAKER``) sending probes one at a time: an IOC
  buy at that price whose qty is the probe's number (1, 2, 3...: a trade on the feed is
  matched to its probe by qty, never guessed), stamped when its ``trade`` report comes out
  of ``next_report``, then waiting for the subscriber's sighting and the maker's fill
  before the next. ``perf_counter_ns`` is CLOCK_MONOTONIC, one clock for every process of
  the host (the pipeline's ``ts_ingest`` too). Figures: md arrival - trade report arrival,
  p50 / p99 / p99.9 µs over the probes (``md_after_ack_*``; negative when the market data
  came first: plain sorted lists, nearest rank), and the probe's send -> trade report,
  send -> md and ingest (the trade's ``ts``) -> md p50s; ``rtt_*`` and ``orders_per_s``
  are null in this row. The first ``MD_WARMUP`` probes are not counted; at the end the
  maker cancels what rests (``mass_cancel``) and both log out.

Targets (issue 13, figures not assertions): >= 150 k orders/s with 2 clients; at 10 k/s,
p50 <= 150 µs and <= 3x the echo's p50; market data at a subscriber within 100 µs p50 of
the trade's ack (``md_after_ack`` p50 <= 100 µs).

    python perf/bench_gateway.py --quick --json perf/results/gateway.json
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import queue
import signal
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import harness
import psutil
import zmq
from hdrh.histogram import HdrHistogram

from pipeline import affinity
from pipeline.client import Client, GatewayError, MarketData
from pipeline.commands.load import (
    LoadSpec,
    new_histogram,
    run_load,
)
from pipeline.config import JournalConfig, LoadConfig, PipelineConfig, RunConfig, SnapshotConfig
from pipeline.control import find_pipeline
from pipeline.supervisor import Supervisor
from stages.gateway import protocol as P
from stages.gateway.codec import Codec
from stages.gateway.protocol import NewOrder
from stages.marketdata import Trades

READY_TIMEOUT = 150.0  # seconds for the supervisor's stages to register
WINDOW = 256  # new orders in flight per client in the throughput cases
ACCOUNTS = 8
CASES = (
    ("throughput", 1, None),
    ("throughput", 2, None),
    ("throughput", 4, None),
    ("rtt_10k", 1, 10_000.0),
    ("rtt_50k", 2, 50_000.0),
    ("echo_rtt_10k", 1, 10_000.0),
    ("echo_throughput", 1, None),
    ("md_after_ack", 1, None),
)
FIELDS = ("orders_per_s", "rtt_p50_us", "rtt_p99_us", "rtt_p999_us")
#: the cases through the pipeline: CPU µs per order acknowledged, by role
CPU_FIELDS = ("cpu_gateway_us", "cpu_stages_us", "cpu_clients_us", "cpu_total_us")
#: the md_after_ack row's own fields, after FIELDS (µs, and the number of probes counted)
MD_FIELDS = (
    "md_after_ack_p50_us",
    "md_after_ack_p99_us",
    "md_after_ack_p999_us",
    "send_to_ack_p50_us",
    "send_to_md_p50_us",
    "ingest_to_md_p50_us",
    "probes",
)
MD_SYMBOL = "ETH-USD"  # traded by md_after_ack alone (the load cases trade BTC-USD)
MD_PRICE = 2_000
MD_MAKER, MD_TAKER = 7, 8  # accounts the load cases (1..4) do not use
MD_WARMUP = 20  # probes not counted (the first through cold paths)
MD_TIMEOUT = 2.0  # seconds a probe waits for its trade report, its sighting, the maker's fill
MD_MISSES = 3  # probes in a row without a sighting: the subscriber is gone
#: a frame the size of a msgpack new order, for the echo
FRAME_SIZE = len(
    Codec.MSGPACK.encode(
        NewOrder(client_order_id="abcdef-12345", symbol="BTC-USD", side="buy", qty=5, price=10_005)
    )
)


# ---------------------------------------------------------------- the pipeline
def run_config(
    directory: Path, fsync: str = "batch", cpus: dict[str, int] | None = None
) -> RunConfig:
    return RunConfig(
        load=LoadConfig(source="gateway", accounts=ACCOUNTS),
        journal=JournalConfig(directory=str(directory / "journal"), fsync=fsync),
        snapshots=SnapshotConfig(directory=str(directory / "snapshots")),
        pipeline=PipelineConfig(run_dir=str(directory / "run"), cpus=cpus or {}),
    )


def cpus_argument(text: str) -> dict[str, int]:
    """``--cpus gateway=1,matching=1,ingest=0``: ``[pipeline] cpus`` for the run, checked
    as the config checks it (a stage it does not know, a core this process may not use)."""
    cpus: dict[str, int] = {}
    for part in text.split(","):
        stage, _, core = part.strip().partition("=")
        if not stage or not core.strip().isdigit():
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not STAGE=CORE")
        cpus[stage.strip()] = int(core)
    problem = affinity.check_cpus(cpus, affinity.allowed_cores())
    if problem:
        raise argparse.ArgumentTypeError(
            problem.split(" - at ")[0].replace("pipeline.cpus", "--cpus")
        )
    return cpus


class Pipeline:
    """A supervisor running in a thread; ``endpoint`` its gateway's order entry."""

    def __init__(
        self, directory: Path, fsync: str = "batch", cpus: dict[str, int] | None = None
    ) -> None:
        self.config = run_config(directory, fsync, cpus)
        self.supervisor = Supervisor(self.config, tag="benchgw")
        self.outcome: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._drive, name="supervisor")

    def _drive(self) -> None:
        try:
            self.outcome["report"] = self.supervisor.run()
        except BaseException as error:  # raised in the bench's thread
            self.outcome["error"] = error

    def __enter__(self) -> Pipeline:
        self.thread.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.supervisor.ready.wait(0.1):
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"the pipeline never started: {self.outcome.get('error')!r}")
        manifest = find_pipeline(self.config.pipeline.run_dir)
        endpoints = list(getattr(manifest, "gateway", ()) or ())
        if not endpoints:
            self.__exit__(None, None, None)
            raise RuntimeError("the pipeline's manifest names no gateway endpoint")
        self.endpoint = endpoints[0]
        self.pids = dict(self.supervisor.pids)  # stage -> pid
        market_data = list(getattr(manifest, "market_data", ()) or ())
        if not market_data:
            self.__exit__(None, None, None)
            raise RuntimeError("the pipeline's manifest names no market-data endpoint")
        self.market_data = market_data[0]
        return self

    def __exit__(self, *exc: object) -> None:
        self.supervisor.request_stop()
        self.thread.join(READY_TIMEOUT)
        if "error" in self.outcome and exc[0] is None:
            raise self.outcome["error"]


def gateway_case(
    endpoint: str,
    clients: int,
    rate: float | None,
    duration: float,
    pids: dict[str, int] | None = None,
) -> dict:
    """One load case; with the stages' ``pids``, also its CPU per order (``CPU_FIELDS``)."""
    specs = [
        LoadSpec(
            endpoint=endpoint,
            account=account,
            rate=None if rate is None else rate / clients,
            duration=duration,
            seed=account,
            window=WINDOW,
        )
        for account in range(1, clients + 1)
    ]
    before = stage_cpu(pids) if pids else {}
    result = run_load(specs)
    unanswered = sum(r.unanswered for r in result.clients)
    if unanswered:
        harness.progress(f"  note: {unanswered} orders unanswered at the end of the case")
    row = {
        "orders_per_s": result.orders_per_s,
        "rtt_p50_us": result.percentile_us(50),
        "rtt_p99_us": result.percentile_us(99),
        "rtt_p999_us": result.percentile_us(99.9),
    }
    orders = sum(r.acked for r in result.clients)
    if pids and orders:
        after = stage_cpu(pids)
        spent = {stage: after[stage] - before[stage] for stage in pids}
        per_order = 1e6 / orders
        row["cpu_gateway_us"] = spent.pop("gateway") * per_order
        row["cpu_stages_us"] = sum(spent.values()) * per_order
        row["cpu_clients_us"] = sum(r.cpu_seconds for r in result.clients) * per_order
        row["cpu_total_us"] = sum(row[f] for f in CPU_FIELDS[:3])
    return row


def stage_cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system, every thread) each stage process has used so far."""
    spent = {}
    for stage, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error as error:
            raise RuntimeError(f"the {stage} stage (pid {pid}) is gone: {error}") from None
        spent[stage] = times.user + times.system
    return spent


# ---------------------------------------------------------------- the echo floor
def echo_server(endpoint: str, ready: Any, stop: Any) -> None:
    """A ROUTER that sends every frame straight back to its sender."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    router.sndhwm = router.rcvhwm = 0
    router.bind(endpoint)
    ready.set()
    try:
        while not stop.is_set():
            if router.poll(50):
                for _ in range(1024):
                    router.send_multipart(router.recv_multipart(copy=False), copy=False)
                    if not router.poll(0):
                        break
    finally:
        router.close(0)
        context.term()


def echo_client(
    endpoint: str, rate: float | None, duration: float, window: int, results: Any
) -> None:
    """A DEALER sending FRAME_SIZE-byte frames (paced, or ``window`` in flight); the RTTs."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.rcvhwm = 0
    dealer.connect(endpoint)
    histogram = new_histogram()
    padding = bytes(FRAME_SIZE - 8)
    perf_ns = time.perf_counter_ns
    sent: dict[int, int] = {}
    seq = answered = 0
    try:
        start = time.perf_counter()
        end = start + duration
        next_send = start
        interval = None if rate is None else 1.0 / rate
        while (now := time.perf_counter()) < end:
            if interval is None:
                while len(sent) < window:
                    seq += 1
                    sent[seq] = perf_ns()
                    dealer.send(seq.to_bytes(8, "little") + padding)
                wait_ms = 50
            else:
                burst = 0
                while next_send <= now and burst < 64:
                    seq += 1
                    sent[seq] = perf_ns()
                    dealer.send(seq.to_bytes(8, "little") + padding)
                    next_send += interval
                    burst += 1
                wait_ms = max(0, int((min(next_send, end) - time.perf_counter()) * 1000))
            if dealer.poll(wait_ms):
                while True:
                    frame = dealer.recv()
                    began = sent.pop(int.from_bytes(frame[:8], "little"), None)
                    if began is not None:
                        histogram.record_value(max(perf_ns() - began, 1_000))
                        answered += 1
                    if not dealer.poll(0):
                        break
        seconds = time.perf_counter() - start
        results.put({"answered": answered, "seconds": seconds, "rtt": histogram.encode()})
    except BaseException as error:
        results.put({"error": repr(error)})
    finally:
        dealer.close(0)
        context.term()


def echo_case(directory: Path, rate: float | None, duration: float) -> dict:
    context = multiprocessing.get_context("spawn")
    endpoint = f"ipc://{directory}/echo.sock"
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    server = context.Process(target=echo_server, args=(endpoint, ready, stop), daemon=True)
    server.start()
    client = None
    try:
        if not ready.wait(60):
            raise RuntimeError("the echo server did not start")
        client = context.Process(
            target=echo_client, args=(endpoint, rate, duration, WINDOW, results), daemon=True
        )
        client.start()
        try:
            outcome = results.get(timeout=duration + 60)
        except queue.Empty:
            raise RuntimeError("the echo client did not finish") from None
    finally:
        stop.set()
        harness.reap((client, server))
    if "error" in outcome:
        raise RuntimeError(outcome["error"])
    histogram = HdrHistogram.decode(outcome["rtt"])
    return {
        "orders_per_s": outcome["answered"] / outcome["seconds"],
        "rtt_p50_us": histogram.get_value_at_percentile(50) / 1e3,
        "rtt_p99_us": histogram.get_value_at_percentile(99) / 1e3,
        "rtt_p999_us": histogram.get_value_at_percentile(99.9) / 1e3,
    }


# ---------------------------------------------------------------- market data after the ack
def md_subscriber(
    endpoint: str, symbol: str, symbol_id: int, subscribed: Any, stop: Any, sightings: Any
) -> None:
    """Put ``(arrival ns, [(price, qty, ts), ...])`` on ``sightings`` for every ``Trades``
    message of ``symbol``; set ``subscribed`` at the first message of any kind (the
    periodic snapshot at the latest: the subscription is live)."""
    perf_ns = time.perf_counter_ns
    try:
        with MarketData(endpoint, names={symbol: symbol_id}) as feed:
            feed.subscribe([symbol])
            while not stop.is_set():
                update = feed.poll(0.05)
                if update is None:
                    continue
                arrived = perf_ns()
                subscribed.set()
                message = update.message
                if isinstance(message, Trades):
                    ticks = [(tick.price, tick.qty, tick.ts) for tick in message.trades]
                    sightings.put((arrived, ticks))
    except BaseException as error:
        sightings.put((0, f"the subscriber failed: {type(error).__name__}: {error}"))


def _next_of(client: Client, cid: str, kinds: tuple[type, ...], what: str) -> P.Message:
    """The next report of ``kinds`` about ``cid`` (others are skipped); raises on a refusal
    of it or after ``MD_TIMEOUT`` without one."""
    while True:
        report = client.next_report(MD_TIMEOUT)
        if report is None:
            raise RuntimeError(f"no {what} from the gateway within {MD_TIMEOUT:g} s")
        if getattr(report, "client_order_id", None) != cid:
            continue
        if isinstance(report, kinds):
            return report
        if isinstance(report, P.Rejected | P.BusinessReject | P.Busy):
            raise RuntimeError(f"{what}: the gateway answered {report!r}")


def _probes(
    maker: Client,
    taker: Client,
    symbol: str,
    probes: int,
    subscribed: Any,
    sightings: Any,
) -> dict:
    """Rest the maker's sell, then the probes, one at a time; their stamps (ns)."""
    total = MD_WARMUP + probes
    resting = maker.sell(symbol, total * (total + 1) // 2, MD_PRICE)  # every probe's qty
    _next_of(maker, resting, (P.Accepted,), "the maker's accepted")
    if not subscribed.wait(60):
        raise RuntimeError("the market-data subscriber saw nothing within 60 s")
    perf_ns = time.perf_counter_ns
    stamps: list[tuple[int, int, int, int]] = []  # sent, trade report, md, ts_ingest
    missed = misses_in_a_row = 0
    for qty in range(1, total + 1):  # the probe's qty is its number: its trade on the feed
        sent = perf_ns()
        cid = taker.buy(symbol, qty, MD_PRICE, tif="ioc")
        while True:
            report = taker.next_report(MD_TIMEOUT)
            acked = perf_ns()
            if report is None:
                raise RuntimeError(f"probe {qty}: no trade report within {MD_TIMEOUT:g} s")
            if getattr(report, "client_order_id", None) != cid:
                continue
            if isinstance(report, P.Trade):
                break
            if isinstance(report, P.Rejected | P.BusinessReject | P.Busy | P.Cancelled):
                raise RuntimeError(f"probe {qty}: the gateway answered {report!r}")
        seen = None
        deadline = time.monotonic() + MD_TIMEOUT
        while seen is None and (left := deadline - time.monotonic()) > 0:
            try:
                arrived, ticks = sightings.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(ticks, str):
                raise RuntimeError(ticks)
            for price, tick_qty, ts in ticks:
                if tick_qty == qty and price == MD_PRICE:
                    seen = (arrived, ts)
        if seen is None:
            missed += 1
            misses_in_a_row += 1
            if misses_in_a_row >= MD_MISSES:
                raise RuntimeError(f"{MD_MISSES} probes in a row never showed on the feed")
        else:
            misses_in_a_row = 0
            if qty > MD_WARMUP:
                stamps.append((sent, acked, *seen))
        _next_of(maker, resting, (P.Trade,), "the maker's fill")
        maker.heartbeat()  # the taker's waits send its own
    return {"stamps": stamps, "missed": missed}


def md_trader(
    endpoint: str, symbol: str, probes: int, subscribed: Any, sightings: Any, results: Any
) -> None:
    """The maker and the taker (see the module): put the probes' stamps on ``results``."""
    try:
        with (
            Client(endpoint, MD_MAKER, timeout=10.0) as maker,
            Client(endpoint, MD_TAKER, timeout=10.0) as taker,
        ):
            try:
                outcome = _probes(maker, taker, symbol, probes, subscribed, sightings)
            finally:  # nothing of the maker's stays in the book
                with contextlib.suppress(GatewayError, RuntimeError):
                    maker.mass_cancel(symbol)
                    deadline = time.monotonic() + MD_TIMEOUT
                    while (left := deadline - time.monotonic()) > 0:
                        if isinstance(maker.next_report(left), P.MassCancelAck):
                            break
        results.put(outcome)
    except BaseException as error:
        results.put({"error": f"{type(error).__name__}: {error}"})


def percentile(values: list[int], p: float) -> int:
    """The ``p``-th percentile of the sorted ``values`` (nearest rank)."""
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[min(rank, len(values)) - 1]


def md_case(pipeline: Pipeline, probes: int) -> dict:
    context = multiprocessing.get_context("spawn")
    symbol_id = next(
        i.symbol for i in pipeline.config.engine.risk.instruments if i.name == MD_SYMBOL
    )
    subscribed, stop = context.Event(), context.Event()
    sightings, results = context.Queue(), context.Queue()
    subscriber = context.Process(
        target=md_subscriber,
        args=(pipeline.market_data, MD_SYMBOL, symbol_id, subscribed, stop, sightings),
        daemon=True,
    )
    trader = None
    try:
        subscriber.start()
        trader = context.Process(
            target=md_trader,
            args=(pipeline.endpoint, MD_SYMBOL, probes, subscribed, sightings, results),
            daemon=True,
        )
        trader.start()
        deadline = time.monotonic() + 120 + probes * MD_TIMEOUT
        while True:
            try:
                outcome = results.get(timeout=1.0)
                break
            except queue.Empty:
                if not trader.is_alive() and results.empty():
                    raise RuntimeError(f"the md trader died ({trader.exitcode})") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("the md trader did not finish") from None
    finally:
        stop.set()
        harness.reap((trader, subscriber))
    if "error" in outcome:
        raise RuntimeError(outcome["error"])
    stamps = outcome["stamps"]
    if not stamps:
        raise RuntimeError("no probe showed on the market-data feed")
    if outcome["missed"]:
        harness.progress(f"  note: {outcome['missed']} probes never showed on the feed")
    after_ack = sorted(md - acked for _, acked, md, _ in stamps)
    send_to_ack = sorted(acked - sent for sent, acked, _, _ in stamps)
    send_to_md = sorted(md - sent for sent, _, md, _ in stamps)
    ingest_to_md = sorted(md - ts for _, _, md, ts in stamps)
    return {
        "md_after_ack_p50_us": percentile(after_ack, 50) / 1e3,
        "md_after_ack_p99_us": percentile(after_ack, 99) / 1e3,
        "md_after_ack_p999_us": percentile(after_ack, 99.9) / 1e3,
        "send_to_ack_p50_us": percentile(send_to_ack, 50) / 1e3,
        "send_to_md_p50_us": percentile(send_to_md, 50) / 1e3,
        "ingest_to_md_p50_us": percentile(ingest_to_md, 50) / 1e3,
        "probes": len(stamps),
    }


# ---------------------------------------------------------------- the whole run
def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser("gateway", __doc__, runs=1, full_runs=3)
    parser.add_argument(
        "--fsync",
        choices=("batch", "interval", "never"),
        default="batch",
        help="the pipeline's journal fsync policy (default: batch, the targets' setting)",
    )
    parser.add_argument(
        "--cpus",
        type=cpus_argument,
        default=None,
        metavar="STAGE=CORE,...",
        help="pin as [pipeline] cpus would (e.g. gateway=1,matching=1,ingest=0); default: "
        "the supervisor's plan. Alternate runs of two plans to compare them",
    )
    args = harness.parse(parser, argv)
    signal.signal(signal.SIGTERM, _interrupted)  # unwinds: the pipeline is stopped, joined
    duration = harness.by_mode(args, smoke=0.3, quick=2.0, full=5.0)
    probes = harness.by_mode(args, smoke=200, quick=1_000, full=3_000)
    with tempfile.TemporaryDirectory(prefix="tp-bgw-") as tmp:
        directory = Path(tmp)
        harness.progress("starting the pipeline with the gateway")
        with Pipeline(directory, args.fsync, args.cpus) as pipeline:
            if args.mode != "smoke":  # a first order through every stage, not timed
                gateway_case(pipeline.endpoint, 1, 2_000.0, 0.5)

            def run(case: str, clients: int, rate: float | None) -> dict:
                started = time.monotonic()
                if case == "md_after_ack":
                    result = md_case(pipeline, probes)
                    harness.progress(
                        f"{case}: p50 {result['md_after_ack_p50_us']:,.0f} µs after the "
                        f"trade report, send -> md p50 {result['send_to_md_p50_us']:,.0f} µs "
                        f"over {result['probes']} probes ({time.monotonic() - started:.1f} s)"
                    )
                    return result
                if case.startswith("echo"):
                    result = echo_case(directory, rate, duration)
                else:
                    result = gateway_case(pipeline.endpoint, clients, rate, duration, pipeline.pids)
                harness.progress(
                    f"{case} x{clients}: {result['orders_per_s']:,.0f} orders/s, p50 "
                    f"{result['rtt_p50_us'] or 0:,.0f} µs ({time.monotonic() - started:.1f} s)"
                )
                return result

            samples = harness.round_robin(
                {
                    (case, clients): partial(run, case, clients, rate)
                    for case, clients, rate in CASES
                },
                args.runs,
            )
    results = []
    for (case, clients), runs in samples.items():
        row: dict[str, Any] = {"case": case, "clients": clients}
        fields = FIELDS + (MD_FIELDS if case == "md_after_ack" else ())
        if not case.startswith(("echo", "md")):
            fields += CPU_FIELDS
        row.update(harness.median_fields(runs, fields))
        results.append(row)
    by_case = {(r["case"], r["clients"]): r for r in results}
    rtt, echo = by_case[("rtt_10k", 1)], by_case[("echo_rtt_10k", 1)]
    ratios = {
        "rtt_10k_p50_over_echo": ratio(rtt["rtt_p50_us"], echo["rtt_p50_us"]),
        "throughput_2_over_echo": ratio(
            by_case[("throughput", 2)]["orders_per_s"],
            by_case[("echo_throughput", 1)]["orders_per_s"],
        ),
    }

    def cell(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    def latencies(r: dict) -> tuple[str, str, str]:
        prefix = "md_after_ack" if r["case"] == "md_after_ack" else "rtt"
        return tuple(cell(r[f"{prefix}_{p}_us"]) for p in ("p50", "p99", "p999"))

    md, two = by_case[("md_after_ack", 1)], by_case[("throughput", 2)]
    harness.print_table(
        f"gateway: client processes -> ZeroMQ -> the pipeline (fsync {args.fsync}) -> reports",
        [harness.Column("case", "<"), "clients", "orders/s", "p50 µs", "p99 µs", "p99.9 µs"],
        [(r["case"], str(r["clients"]), cell(r["orders_per_s"]), *latencies(r)) for r in results],
        [
            f"rtt at 10 k/s: p50 {cell(ratios['rtt_10k_p50_over_echo'], 1)}x the bare echo's",
            f"md_after_ack: a trade's market data at a subscriber minus its trade report at "
            f"the taker (negative: md first), over {cell(md['probes'])} probes;",
            f"  p50s: send -> trade report {cell(md['send_to_ack_p50_us'])} µs, send -> md "
            f"{cell(md['send_to_md_p50_us'])} µs, ingest -> md {cell(md['ingest_to_md_p50_us'])} µs",
            f"CPU per order, throughput x2: gateway {cell(two['cpu_gateway_us'], 1)} µs, stages "
            f"{cell(two['cpu_stages_us'], 1)} µs, clients {cell(two['cpu_clients_us'], 1)} µs, "
            f"in all {cell(two['cpu_total_us'], 1)} µs",
            "targets: >= 150 k orders/s with 2 clients; at 10 k/s p50 <= 150 µs and <= 3x echo",
            "target: market data within 100 µs of the trade's ack (md_after_ack p50 <= 100 µs)",
        ],
    )
    return harness.finish(args, {"results": results, "ratios": ratios, "fsync": args.fsync})


if __name__ == "__main__":
    raise SystemExit(main())
