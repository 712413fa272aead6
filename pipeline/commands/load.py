"""``tradepipe load --clients N --rate R --duration S [--accounts 1,2,...]``: N client
processes trading through the running pipeline's gateway, each at R/N requests/s, then the
rates and round-trip percentiles.

Each client is a separate process (spawned: no state shared with this one) holding one
``pipeline.client.Client`` logged on as its own account (an account has one session at a
time, so N clients need N accounts: ``--accounts``, default 1..N). It sends a realistic mix
around ``--mid``: ``PASSIVE`` of the requests are limit orders resting 1..20 ticks off the
mid (buys below, sells above), ``CANCELS`` cancel one of its resting orders, the rest are
IOC orders crossing the mid by 5 ticks, which trade with the others' resting orders. The
**round trip** of a new order is from just before its frame is sent to its ``accepted`` or
``rejected`` report received (``perf_counter_ns``; into an HdrHistogram, merged over the
clients). Sending is paced on a schedule (a client that fell behind catches up in bursts of
at most ``BURST``), so the rate offered does not sag when the gateway slows down — what a
real order flow does. The requests due at one moment (a burst, or the window's refill)
leave in one frame (``Client.batch``), as a client writing to a socket would coalesce them.
Unpaced (``rate`` None, the benchmark's throughput cases), a client keeps up to ``window``
new orders in flight and refills the window in one batch once half of it was answered (a
refill per answer would send frames of one or two orders).

Printed: per client and in all, orders sent, acknowledged (accepted + rejected), rejected,
business rejects and BUSY answers, requests/s (over the sending time), orders/s
acknowledged (over the time to the last acknowledgement, the drain included: a gateway that
fell behind is not credited with answers that came after the sending stopped), RTT p50 /
p99 / p99.9 µs. At the end each client cancels what it has resting (``mass_cancel``) and logs out.

Exit statuses: 0 the run finished (rejects and BUSY are counted, not failures); 1 no
pipeline / gateway running or a client got no answer to its logon; 2 a bad value
(``--clients 0``, a rate or duration out of range, fewer accounts than clients); 4 a logon
refused (an account the key may not trade, or out of the engine's range).

``perf/bench_gateway.py`` runs the same clients (``run_load``).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import queue
import random
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
from hdrh.histogram import HdrHistogram

from pipeline import gateway_cli as g
from pipeline.client import Client, GatewayError
from pipeline.exitcodes import CommandError, ExitStatus
from pipeline.keys import parse_accounts
from stages.gateway import protocol as P
from stages.latency import HopLatency

MAX_CLIENTS = 256
MAX_RATE = 10_000_000.0
MAX_DURATION = 3600.0
PASSIVE, CANCELS = 0.55, 0.30  # the rest: aggressive IOCs
BURST = 64  # requests a client sends at once when behind its schedule
MAX_RESTING = 500  # a client with this many resting orders cancels instead of adding
DRAIN = 2.0  # seconds to wait for outstanding answers after the end
START_TIMEOUT = 60.0  # seconds for every client to start and log on
#: RTTs recorded from 1 µs to 60 s, 3 significant digits, in ns
RTT_LOW, RTT_HIGH = 1_000, 60_000_000_000
#: round trips a client keeps before it records them into its histogram in one pass
RTT_BATCH = 4096


@dataclass(frozen=True)
class LoadSpec:
    """What one client process does (picklable: it crosses to a spawned process)."""

    endpoint: str
    account: int
    rate: float | None  # requests/s; None: as fast as answers come (``window`` in flight)
    duration: float
    symbol: str | int = "BTC-USD"
    mid: int = 10_000
    seed: int = 0
    keys: str | None = None
    server_key: str | None = None
    window: int = 256
    codec: str = "msgpack"


@dataclass
class ClientResult:
    """What one client measured; ``rtt`` is its HdrHistogram, encoded."""

    account: int
    requests: int = 0
    orders: int = 0
    acked: int = 0
    rejected: int = 0
    business_rejects: int = 0
    busy: int = 0
    unanswered: int = 0
    seconds: float = 0.0  # of sending
    #: from the start to the last acknowledgement (the drain included): what ``acked`` is
    #: a rate over, so answers that trail a run the gateway could not keep up with do not
    #: count as if they came within the sending time
    acked_seconds: float = 0.0
    rtt: bytes = b""
    #: the process's CPU time (all its threads, ZeroMQ's I/O thread too) while trading
    cpu_seconds: float = 0.0
    error: str | None = None
    error_status: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(RTT_LOW, RTT_HIGH, 3)


def client_main(spec: LoadSpec, ready: multiprocessing.Queue, go, results) -> None:
    """A load client process: log on, say so on ``ready``, wait for ``go``, trade, report."""
    result = ClientResult(spec.account)
    try:
        options = {}
        if spec.keys or spec.server_key:
            options = {"keys": spec.keys, "server_key": spec.server_key}
        # check=False: the mix is valid by construction (_trade), and checking each
        # request again would take CPU from the pipeline being measured
        with Client(
            spec.endpoint, spec.account, codec=spec.codec, timeout=10.0, check=False, **options
        ) as c:
            ready.put((spec.account, None, 0))
            if not go.wait(START_TIMEOUT):
                return
            cpu = time.process_time()
            _trade(c, spec, result)
            result.cpu_seconds = time.process_time() - cpu
            c.mass_cancel(spec.symbol)
    except GatewayError as error:
        result.error = str(error)
        result.error_status = g.connect_errors(error).status
        ready.put((spec.account, result.error, result.error_status))
    except BaseException as error:  # anything else: its trace, for the parent's one line
        result.error = f"{type(error).__name__}: {error} ({traceback.format_exc(limit=3)})"
        result.error_status = ExitStatus.FAILED
        ready.put((spec.account, result.error, result.error_status))
    results.put(result)


def _record(rtt: HopLatency, values: list[int]) -> None:
    """Round trips measured so far into the histogram in one numpy pass (``record_value``
    is pure Python, ~3 µs a value: a tenth of the client's time per request)."""
    if values:
        rtt.record_values(np.clip(np.array(values, dtype=np.int64), RTT_LOW, RTT_HIGH))
        values.clear()


def _trade(c: Client, spec: LoadSpec, result: ClientResult) -> None:
    """The paced (or windowed) request loop, then the drain; fills ``result``.

    Hot (the client processes share the host with the pipeline they measure): random
    draws by ``random()`` (``randint`` costs ~0.5 µs more a call), replies told apart by
    their type, round trips recorded in batches of ``RTT_BATCH``."""
    rng = random.Random(spec.seed * 1_000_003 + spec.account)
    draw = rng.random
    rtt = HopLatency("round trip", histogram=new_histogram())
    rtts: list[int] = []  # measured, not yet in the histogram
    sent_at: dict[str, int] = {}  # new orders awaiting accepted / rejected
    resting: list[str] = []
    resting_set: set[str] = set()
    iocs: set[str] = set()  # IOC orders awaiting their answer: they never rest
    perf_ns = time.perf_counter_ns
    interval = None if spec.rate is None else 1.0 / spec.rate
    start = time.perf_counter()
    end = start + spec.duration
    next_send = start
    mid, symbol = spec.mid, spec.symbol
    reasons: dict[str, int] = {}

    def send_one() -> None:
        roll = draw()
        if resting and (roll < CANCELS or len(resting) >= MAX_RESTING):
            i = int(draw() * len(resting))
            resting[i], resting[-1] = resting[-1], resting[i]
            cid = resting.pop()
            resting_set.discard(cid)
            c.cancel(cid)
        elif roll < CANCELS + PASSIVE:
            buy = draw() < 0.5
            offset = 1 + int(draw() * 20)  # 1..20 ticks off the mid
            price = mid - offset if buy else mid + offset
            cid = c.new_client_order_id()
            sent_at[cid] = perf_ns()
            c.new_order("buy" if buy else "sell", symbol, 1 + int(draw() * 10), price,
                        client_order_id=cid)  # fmt: skip
            result.orders += 1
        else:
            buy = draw() < 0.5
            cid = c.new_client_order_id()
            iocs.add(cid)
            sent_at[cid] = perf_ns()
            c.new_order("buy" if buy else "sell", symbol, 1 + int(draw() * 5),
                        mid + 5 if buy else mid - 5, tif="ioc", client_order_id=cid)  # fmt: skip
            result.orders += 1
        result.requests += 1

    def handle(message: P.Message) -> None:
        kind = type(message)
        if kind is P.Accepted or kind is P.Rejected:
            cid = message.client_order_id  # type: ignore[attr-defined]
            sent = sent_at.pop(cid, None)
            if sent is not None:
                now_ns = perf_ns()
                rtts.append(now_ns - sent)
                if len(rtts) >= RTT_BATCH:
                    _record(rtt, rtts)
                result.acked += 1
                result.acked_seconds = now_ns / 1e9 - start  # the last one so far
                if kind is P.Rejected:
                    iocs.discard(cid)
                    result.rejected += 1
                    reason = message.reason  # type: ignore[attr-defined]
                    reasons[reason] = reasons.get(reason, 0) + 1
                elif cid in iocs:
                    iocs.discard(cid)
                else:
                    resting.append(cid)
                    resting_set.add(cid)
        elif kind is P.Done:
            cid = message.client_order_id  # type: ignore[attr-defined]
            if cid in resting_set:
                resting_set.discard(cid)
                resting.remove(cid)
        elif kind is P.BusinessReject:
            result.business_rejects += 1
            sent_at.pop(message.client_order_id or "", None)  # type: ignore[attr-defined]
        elif kind is P.Busy:
            result.busy += 1
            sent_at.pop(message.client_order_id or "", None)  # type: ignore[attr-defined]
        elif kind is P.LoggedOut:
            raise GatewayError(f"the gateway ended the session ({message.why})")  # type: ignore[attr-defined]

    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if interval is None:
            if len(sent_at) <= spec.window // 2:
                with c.batch():  # what is due now leaves in one frame
                    while len(sent_at) < spec.window:
                        send_one()
        elif next_send <= now:
            with c.batch():
                burst = 0
                while next_send <= now and burst < BURST:
                    send_one()
                    next_send += interval
                    burst += 1
        wait = 0.0 if interval is None else max(0.0, min(next_send, end) - time.perf_counter())
        message = c.next_report(wait if interval is not None else 0.05)
        while message is not None:
            handle(message)
            message = c.next_report(0)
    result.seconds = time.perf_counter() - start
    drain_end = time.perf_counter() + DRAIN
    while sent_at and (left := drain_end - time.perf_counter()) > 0:
        message = c.next_report(left)
        if message is not None:
            handle(message)
    result.unanswered = len(sent_at)
    result.acked_seconds = max(result.seconds, result.acked_seconds)
    _record(rtt, rtts)
    result.rtt = rtt.histogram.encode()
    result.reasons = reasons


@dataclass
class LoadResult:
    """Every client's result and the merged figures."""

    clients: list[ClientResult]
    seconds: float
    requests_per_s: float
    orders_per_s: float  # new orders acknowledged per second
    rtt: HdrHistogram

    def percentile_us(self, p: float) -> float | None:
        if self.rtt.get_total_count() == 0:
            return None
        return self.rtt.get_value_at_percentile(p) / 1e3


def run_load(specs: list[LoadSpec], timeout: float | None = None) -> LoadResult:
    """Run one client process per spec, all starting together; their merged figures.

    A client that cannot log on (or fails) raises ``CommandError`` with its message and
    status, after every process was stopped and joined.
    """
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(target=client_main, args=(spec, ready, go, results), daemon=True)
        for spec in specs
    ]
    duration = max(spec.duration for spec in specs)
    timeout = timeout if timeout is not None else START_TIMEOUT + duration + DRAIN + 30
    for process in processes:
        process.start()
    collected: list[ClientResult] = []
    try:
        for _ in specs:
            try:
                account, error, status = ready.get(timeout=START_TIMEOUT)
            except queue.Empty:
                raise CommandError(
                    f"the load clients did not all log on within {START_TIMEOUT:g} s",
                    ExitStatus.FAILED,
                ) from None
            if error is not None:
                raise CommandError(f"client of account {account}: {error}", ExitStatus(status))
        go.set()
        deadline = time.monotonic() + timeout
        while len(collected) < len(specs):
            left = deadline - time.monotonic()
            try:
                collected.append(results.get(timeout=max(0.1, left)))
            except queue.Empty:
                if left <= 0:
                    raise CommandError(
                        "the load clients did not finish", ExitStatus.FAILED
                    ) from None
    finally:
        go.set()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
    failed = [r for r in collected if r.error]
    if failed:
        raise CommandError(
            f"client of account {failed[0].account}: {failed[0].error}",
            ExitStatus(failed[0].error_status or ExitStatus.FAILED),
        )
    merged = new_histogram()
    for r in collected:
        merged.add(HdrHistogram.decode(r.rtt))
    seconds = max(r.seconds for r in collected)
    acked_seconds = max(r.acked_seconds for r in collected)
    collected.sort(key=lambda r: r.account)
    return LoadResult(
        clients=collected,
        seconds=seconds,
        requests_per_s=sum(r.requests for r in collected) / seconds,
        orders_per_s=sum(r.acked for r in collected) / acked_seconds,
        rtt=merged,
    )


# --- the verb --------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "load",
        help="N client processes trading through the gateway; rates and round-trip percentiles",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
    )
    parser.add_argument("--clients", required=True, metavar="N", help=f"1..{MAX_CLIENTS}")
    parser.add_argument("--rate", required=True, metavar="R", help="requests/s in all")
    parser.add_argument("--duration", required=True, metavar="S", help="seconds of sending")
    parser.add_argument("--accounts", metavar="1,2,...", help="one per client (default: 1..N)")
    parser.add_argument("--symbol", default="BTC-USD", help="what to trade (default: BTC-USD)")
    parser.add_argument("--mid", default="10000", metavar="P", help="mid price (default: 10000)")
    parser.add_argument("--seed", default="0", help="random seed of the mix (default: 0)")
    g.add_connection_arguments(parser, account=False)
    parser.set_defaults(func=run)


def _number(what: str, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CommandError(f"{what} {text!r} is not a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise CommandError(f"{what} {text} is invalid: expected {low:g}..{high:g}")
    return value


def specs_of(args: argparse.Namespace, endpoint: str) -> list[LoadSpec]:
    """The clients' specs from the verb's arguments (checked; usage errors)."""
    return _specs(args, endpoint, *_checked_values(args))


def _checked_values(args: argparse.Namespace) -> tuple:
    clients = g.integer("--clients", args.clients)
    if not 1 <= clients <= MAX_CLIENTS:
        raise CommandError(f"--clients {clients} is invalid: expected 1..{MAX_CLIENTS}")
    rate = _number("--rate", args.rate, 1e-3, MAX_RATE)
    duration = _number("--duration", args.duration, 1e-3, MAX_DURATION)
    if args.accounts is None:
        accounts: tuple[int, ...] = tuple(range(1, clients + 1))
    else:
        try:
            accounts = parse_accounts(args.accounts)
        except ValueError as error:
            raise CommandError(f"--{error}") from None
        if len(accounts) < clients:
            raise CommandError(
                f"--accounts names {len(accounts)} account(s) for {clients} clients: each client "
                "needs its own (an account has one session at a time)"
            )
    mid = g.integer("--mid", args.mid)
    if not 100 <= mid <= P.INT64_MAX // 2:
        raise CommandError(f"--mid {mid} is invalid: expected at least 100")
    seed = g.integer("--seed", args.seed)
    symbol = g.symbol(args.symbol)
    g.build(
        lambda: P.NewOrder(client_order_id="x", symbol=symbol, side="buy", qty=1, price=mid),
        {"$.symbol": repr(args.symbol)},
    )
    return clients, rate, duration, accounts, mid, seed, symbol


def _specs(args, endpoint, clients, rate, duration, accounts, mid, seed, symbol) -> list[LoadSpec]:
    curve = g.curve(args)
    return [
        LoadSpec(
            endpoint=endpoint,
            account=accounts[i],
            rate=rate / clients,
            duration=duration,
            symbol=symbol,
            mid=mid,
            seed=seed,
            keys=curve.get("keys"),
            server_key=curve.get("server_key"),
        )
        for i in range(clients)
    ]


def run(args: argparse.Namespace) -> int:
    values = _checked_values(args)  # bad values: before looking for the pipeline
    endpoint = g.endpoint(args, "gateway")
    specs = _specs(args, endpoint, *values)
    clients, rate, duration = values[:3]
    print(
        f"load: {clients} client process(es), {rate:,.0f} requests/s offered in all for "
        f"{duration:g} s, through {endpoint}",
        flush=True,
    )
    result = run_load(specs)
    print_result(result)
    return ExitStatus.OK


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_result(result: LoadResult) -> None:
    header = ("client", "account", "orders", "acked", "rejected", "b.rejects", "busy",
              "unanswered", "req/s", "orders/s", "p50 µs", "p99 µs", "p99.9 µs")  # fmt: skip
    rows = []
    for i, r in enumerate(result.clients, 1):
        h = HdrHistogram.decode(r.rtt)
        p = [h.get_value_at_percentile(q) / 1e3 if h.get_total_count() else None
             for q in (50, 99, 99.9)]  # fmt: skip
        rows.append((str(i), str(r.account), f"{r.orders:,}", f"{r.acked:,}", f"{r.rejected:,}",
                     f"{r.business_rejects:,}", f"{r.busy:,}", f"{r.unanswered:,}",
                     f"{r.requests / r.seconds:,.0f}", f"{r.acked / r.acked_seconds:,.0f}",
                     *map(_us, p)))  # fmt: skip
    total = result.clients
    rows.append(("all", "", f"{sum(r.orders for r in total):,}", f"{sum(r.acked for r in total):,}",
                 f"{sum(r.rejected for r in total):,}", f"{sum(r.business_rejects for r in total):,}",
                 f"{sum(r.busy for r in total):,}", f"{sum(r.unanswered for r in total):,}",
                 f"{result.requests_per_s:,.0f}", f"{result.orders_per_s:,.0f}",
                 *(_us(result.percentile_us(q)) for q in (50, 99, 99.9))))  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    reasons: dict[str, int] = {}
    for r in total:
        for reason, n in r.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
    if reasons:
        print("rejected: " + ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items())))
    print("round trip: a new order's send to its accepted/rejected report, over all clients")
    requests = sum(r.requests for r in total)
    if requests:
        cpu = sum(r.cpu_seconds for r in total)
        print(f"client CPU: {cpu / requests * 1e6:,.1f} µs a request (the client processes')")
