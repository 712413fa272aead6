"""Benchmark the order gateway: client processes → ZeroMQ → the real pipeline → reports back.

The pipeline is ``pipeline.supervisor.Supervisor`` running ``tradepipe run``'s defaults with
``[load] source = "gateway"`` (six stage processes, the journal fsynced per batch), every
file in a temporary directory; the clients are ``tradepipe load``'s (``pipeline.commands.
load``: spawned processes, one ``pipeline.client.Client`` each on its own account, a mix
of passive limit orders around the mid, cancels and crossing IOCs). One pipeline serves
every case of a run; each case's clients log on, trade, cancel what rests and log out.

* ``throughput`` with 1, 2 and 4 client processes: each keeps ``WINDOW`` new orders in
  flight (sends as answers come), as fast as the gateway answers. ``orders_per_s``: new
  orders acknowledged (``accepted`` or ``rejected``) per second, over the clients.
* ``rtt_10k`` (1 client) and ``rtt_50k`` (2 clients): requests paced at 10 k and 50 k/s in
  all; the round trip of a new order, from just before its frame is sent to its
  ``accepted`` / ``rejected`` report received, p50 / p99 / p99.9 (HdrHistogram).
* ``echo_rtt_10k`` and ``echo_throughput`` (the floor, same run, same transport): a bare
  pyzmq DEALER client process and a ROUTER echo process over ``ipc://``, frames of a
  new order's size, paced at 10 k/s and windowed as above.

Targets (issue 13, figures not assertions): >= 150 k orders/s with 2 clients; at 10 k/s,
p50 <= 150 µs and <= 3x the echo's p50.

    python perf/bench_gateway.py --quick --json perf/results/gateway.json
"""

from __future__ import annotations

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
import zmq
from hdrh.histogram import HdrHistogram

from pipeline.commands.load import (
    LoadSpec,
    new_histogram,
    run_load,
)
from pipeline.config import JournalConfig, LoadConfig, PipelineConfig, RunConfig, SnapshotConfig
from pipeline.control import find_pipeline
from pipeline.supervisor import Supervisor
from stages.gateway.codec import Codec
from stages.gateway.protocol import NewOrder

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
)
FIELDS = ("orders_per_s", "rtt_p50_us", "rtt_p99_us", "rtt_p999_us")
#: a frame the size of a msgpack new order, for the echo
FRAME_SIZE = len(
    Codec.MSGPACK.encode(
        NewOrder(client_order_id="abcdef-12345", symbol="BTC-USD", side="buy", qty=5, price=10_005)
    )
)


# ---------------------------------------------------------------- the pipeline
def run_config(directory: Path, fsync: str = "batch") -> RunConfig:
    return RunConfig(
        load=LoadConfig(source="gateway", accounts=ACCOUNTS),
        journal=JournalConfig(directory=str(directory / "journal"), fsync=fsync),
        snapshots=SnapshotConfig(directory=str(directory / "snapshots")),
        pipeline=PipelineConfig(run_dir=str(directory / "run")),
    )


class Pipeline:
    """A supervisor running in a thread; ``endpoint`` its gateway's order entry."""

    def __init__(self, directory: Path, fsync: str = "batch") -> None:
        self.config = run_config(directory, fsync)
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
        return self

    def __exit__(self, *exc: object) -> None:
        self.supervisor.request_stop()
        self.thread.join(READY_TIMEOUT)
        if "error" in self.outcome and exc[0] is None:
            raise self.outcome["error"]


def gateway_case(endpoint: str, clients: int, rate: float | None, duration: float) -> dict:
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
    result = run_load(specs)
    unanswered = sum(r.unanswered for r in result.clients)
    if unanswered:
        harness.progress(f"  note: {unanswered} orders unanswered at the end of the case")
    return {
        "orders_per_s": result.orders_per_s,
        "rtt_p50_us": result.percentile_us(50),
        "rtt_p99_us": result.percentile_us(99),
        "rtt_p999_us": result.percentile_us(99.9),
    }


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
        for process in (client, server):
            if process is not None:
                process.join(10)
                if process.is_alive():
                    process.kill()
                    process.join()
    if "error" in outcome:
        raise RuntimeError(outcome["error"])
    histogram = HdrHistogram.decode(outcome["rtt"])
    return {
        "orders_per_s": outcome["answered"] / outcome["seconds"],
        "rtt_p50_us": histogram.get_value_at_percentile(50) / 1e3,
        "rtt_p99_us": histogram.get_value_at_percentile(99) / 1e3,
        "rtt_p999_us": histogram.get_value_at_percentile(99.9) / 1e3,
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
    args = harness.parse(parser, argv)
    signal.signal(signal.SIGTERM, _interrupted)  # unwinds: the pipeline is stopped, joined
    duration = harness.by_mode(args, smoke=0.3, quick=2.0, full=5.0)
    with tempfile.TemporaryDirectory(prefix="tp-bgw-") as tmp:
        directory = Path(tmp)
        harness.progress("starting the pipeline with the gateway")
        with Pipeline(directory, args.fsync) as pipeline:
            if args.mode != "smoke":  # a first order through every stage, not timed
                gateway_case(pipeline.endpoint, 1, 2_000.0, 0.5)

            def run(case: str, clients: int, rate: float | None) -> dict:
                started = time.monotonic()
                if case.startswith("echo"):
                    result = echo_case(directory, rate, duration)
                else:
                    result = gateway_case(pipeline.endpoint, clients, rate, duration)
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
        row.update(harness.median_fields(runs, FIELDS))
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

    harness.print_table(
        f"gateway: client processes -> ZeroMQ -> the pipeline (fsync {args.fsync}) -> reports",
        [harness.Column("case", "<"), "clients", "orders/s", "p50 µs", "p99 µs", "p99.9 µs"],
        [
            (
                r["case"],
                str(r["clients"]),
                cell(r["orders_per_s"]),
                cell(r["rtt_p50_us"]),
                cell(r["rtt_p99_us"]),
                cell(r["rtt_p999_us"]),
            )
            for r in results
        ],
        [
            f"rtt at 10 k/s: p50 {cell(ratios['rtt_10k_p50_over_echo'], 1)}x the bare echo's",
            "targets: >= 150 k orders/s with 2 clients; at 10 k/s p50 <= 150 µs and <= 3x echo",
        ],
    )
    return harness.finish(args, {"results": results, "ratios": ratios, "fsync": args.fsync})


if __name__ == "__main__":
    raise SystemExit(main())
