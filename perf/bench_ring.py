"""Benchmark the tradepipe ring against the IPC options a Python user has today.

Producer and consumer run in separate processes pinned to different cores and move
64-byte records. Modes:

* ``single``   — one record per send; the consumer touches each record, reading whatever
  has arrived (the ring's ``poll``, faster-fifo's ``get_many``; the others have no batch read).
* ``batch256`` — 256 records per send (one 16 KiB frame for byte transports; a claimed
  slice of the ring for tradepipe); the consumer sums a field of every record.
* ``latency_spin`` / ``latency_default`` — one-way latency (p50/p99/p99.9) of records
  paced at 50 k/s, the consumer busy-spinning or using its default (idle-friendly) wait;
  peers use their own blocking receive in ``latency_default``.
* idle CPU of the default wait: a consumer waiting on an empty ring, CPU time / wall time.

Peers: multiprocessing.Queue, multiprocessing.Pipe, faster-fifo, pyzmq PUSH/PULL over
ipc://. Each figure is the median of ``--runs`` runs, taken round-robin over the transports
so a passing disturbance of the host hits all of them; ratios compare tradepipe with each
peer measured in the same run of this script.

    python perf/bench_ring.py --quick --json ring.json
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial

import harness
import numpy as np
import psutil
from harness import FORK, pin, run_pair

from ringbuffer import Backoff, BusySpin, EndOfStreamError, Ring
from ringbuffer.records import copy_records

RECORD = np.dtype([("seq", "<i8"), ("ts", "<i8"), ("value", "<i8"), ("pad", "u1", (40,))])
BATCH = 256
PACE_PER_S = 50_000
TRANSPORTS = ("tradepipe", "mp_queue", "mp_pipe", "faster_fifo", "zmq_ipc")


def source_records(n: int) -> np.ndarray:
    records = np.zeros(n, dtype=RECORD)
    records["seq"] = np.arange(n)
    records["value"] = 1
    return records


class Channel:
    """One peer transport: ``make()`` in the parent, then ``sender()`` / ``receiver()`` in
    the children (each returns ``(send(bytes), recv() -> bytes, close())``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "mp_queue":
            self.queue = FORK.Queue(maxsize=1024)
        elif kind == "faster_fifo":
            import faster_fifo

            self.queue = faster_fifo.Queue(max_size_bytes=8 * 1024 * 1024)
        elif kind == "mp_pipe":
            self.rx, self.tx = FORK.Pipe(duplex=False)
        elif kind == "zmq_ipc":
            self.address = f"ipc://{tempfile.mkdtemp(prefix='tpbench')}/pipe"

    def sender(self) -> tuple[Callable, Callable]:
        if self.kind in ("mp_queue", "faster_fifo"):
            return self.queue.put, lambda: None
        if self.kind == "mp_pipe":
            return self.tx.send_bytes, self.tx.close
        import zmq

        context = zmq.Context()
        socket = context.socket(zmq.PUSH)
        socket.setsockopt(zmq.SNDHWM, 100_000)
        socket.connect(self.address)
        return socket.send, lambda: (socket.close(linger=-1), context.term())

    def receiver(self) -> tuple[Callable, Callable]:
        if self.kind in ("mp_queue", "faster_fifo"):
            return self.queue.get, lambda: None
        if self.kind == "mp_pipe":
            return self.rx.recv_bytes, self.rx.close
        import zmq

        context = zmq.Context()
        socket = context.socket(zmq.PULL)
        socket.setsockopt(zmq.RCVHWM, 100_000)
        socket.bind(self.address)
        return socket.recv, lambda: (socket.close(linger=0), context.term())


# ---------------------------------------------------------------- tradepipe sides
def ring_producer(name, mode, n, start):
    pin(0)
    ring = Ring.attach(name, RECORD)
    producer = ring.producer(wait=BusySpin())
    source = source_records(BATCH)
    start.value = time.perf_counter_ns()
    if mode == "single":
        records = [record.tobytes() for record in source_records(n)]
        offer = producer.offer
        for record in records:
            while not offer(record):
                pass
    elif mode == "batch256":
        sent = 0
        claim, publish = producer.claim, producer.publish
        while sent < n:
            for view in claim(BATCH):
                copy_records(view, source[: len(view)])
            publish()
            sent += BATCH
    else:  # latency: one record at a time, paced
        interval = 1_000_000_000 // PACE_PER_S
        clock = time.perf_counter_ns
        due = clock()
        for seq in range(n):
            due += interval
            while clock() < due:
                pass
            (view,) = producer.claim(1)
            view["seq"][0] = seq
            view["ts"][0] = clock()
            producer.publish()
    producer.finish()
    ring.close()


def ring_consumer(name, mode, n, ready, start, results):
    pin(1)
    ring = Ring.attach(name, RECORD)
    wait = Backoff() if mode == "latency_default" else BusySpin()
    consumer = ring.consumer("c", wait=wait)
    ready.set()
    try:
        if mode == "single":
            # Records are sent one at a time; the consumer takes whatever has arrived
            # (the ring's natural read) and touches every record.
            total = received = 0
            poll, release = consumer.poll, consumer.release
            while received < n:
                for view in poll():
                    total += int(view["value"].sum())
                    received += len(view)
                release()
            elapsed = time.perf_counter_ns() - start.value
            results.put({"records_per_s": n / elapsed * 1e9, "check": total})
        elif mode == "batch256":
            total = received = 0
            while received < n:
                for view in consumer.wait(limit=4096):
                    total += int(view["value"].sum())
                    received += len(view)
                consumer.release()
            elapsed = time.perf_counter_ns() - start.value
            results.put({"records_per_s": n / elapsed * 1e9, "check": total})
        else:
            latencies = np.zeros(n, dtype=np.int64)
            clock = time.perf_counter_ns
            received = 0
            try:
                while received < n:
                    for view in consumer.wait():
                        now = clock()
                        latencies[received : received + len(view)] = now - view["ts"]
                        received += len(view)
                    consumer.release()
            except EndOfStreamError:
                pass
            results.put(latency_summary(latencies[:received]))
    except Exception as error:  # reported to the parent, which raises it
        results.put({"error": repr(error)})
    finally:
        ring.close()


# ---------------------------------------------------------------- peer sides
def peer_producer(channel, mode, n, start):
    pin(0)
    send, close = channel.sender()
    start.value = time.perf_counter_ns()
    if mode == "single":
        for record in [record.tobytes() for record in source_records(n)]:
            send(record)
    elif mode == "batch256":
        frame = source_records(BATCH).tobytes()
        for _ in range(n // BATCH):
            send(frame)
    else:
        interval = 1_000_000_000 // PACE_PER_S
        clock = time.perf_counter_ns
        record = source_records(1)
        due = clock()
        for seq in range(n):
            due += interval
            while clock() < due:
                pass
            record["seq"][0] = seq
            record["ts"][0] = clock()
            send(record.tobytes())
    close()


def peer_consumer(channel, mode, n, ready, start, results):
    pin(1)
    recv, close = channel.receiver()
    ready.set()
    try:
        if mode == "single":
            total = received = 0
            if channel.kind == "faster_fifo":  # its batch read, as the ring's consumer does
                while received < n:
                    for record in channel.queue.get_many(max_messages_to_get=4096):
                        total += record[16]
                        received += 1
            else:
                for _ in range(n):
                    total += recv()[16]
            elapsed = time.perf_counter_ns() - start.value
            results.put({"records_per_s": n / elapsed * 1e9, "check": total})
        elif mode == "batch256":
            total = 0
            for _ in range(n // BATCH):
                total += int(np.frombuffer(recv(), dtype=RECORD)["value"].sum())
            elapsed = time.perf_counter_ns() - start.value
            results.put({"records_per_s": n / elapsed * 1e9, "check": total})
        else:
            latencies = np.zeros(n, dtype=np.int64)
            clock = time.perf_counter_ns
            for i in range(n):
                frame = recv()
                latencies[i] = clock() - np.frombuffer(frame, dtype=RECORD)["ts"][0]
            results.put(latency_summary(latencies))
    except Exception as error:
        results.put({"error": repr(error)})
    finally:
        close()


def latency_summary(latencies_ns: np.ndarray) -> dict:
    warm = latencies_ns[len(latencies_ns) // 10 :]  # skip the first 10 %: page faults, JIT
    p50, p99, p999 = np.percentile(warm, [50, 99, 99.9]) / 1000.0
    return {"p50_us": float(p50), "p99_us": float(p99), "p999_us": float(p999)}


# ---------------------------------------------------------------- one measurement
def measure(transport: str, mode: str, n: int) -> dict:
    if transport == "tradepipe":
        with Ring.create("bench", RECORD, 1 << 14, consumers=["c"]) as ring:
            return run_pair(ring_producer, ring_consumer, (ring.name, mode, n))
    channel = Channel(transport)
    return run_pair(peer_producer, peer_consumer, (channel, mode, n))


def idle_consumer(name, ready):
    pin(1)
    ring = Ring.attach(name, RECORD)
    consumer = ring.consumer("c")
    ready.set()
    try:
        consumer.wait(timeout=3600)
    except EndOfStreamError:
        pass
    finally:
        ring.close()


def measure_idle_cpu(seconds: float) -> float:
    """Percent of one core a consumer uses waiting on an empty ring with the default wait."""
    with Ring.create("idle", RECORD, 1 << 10, consumers=["c"]) as ring:
        ready = FORK.Event()
        process = FORK.Process(target=idle_consumer, args=(ring.name, ready))
        process.start()
        ready.wait(60)
        time.sleep(0.5)  # past the spin and yield phases
        watched = psutil.Process(process.pid)
        before, started = watched.cpu_times(), time.monotonic()
        time.sleep(seconds)
        after, ended = watched.cpu_times(), time.monotonic()
        producer = ring.producer()
        producer.finish()
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()
    used = (after.user - before.user) + (after.system - before.system)
    return 100.0 * used / (ended - started)


# ---------------------------------------------------------------- the whole run
def available_transports(requested: list[str]) -> list[str]:
    found = []
    for transport in requested:
        if transport == "faster_fifo":
            try:
                import faster_fifo  # noqa: F401
            except ImportError:
                print("faster-fifo is not installed: skipped", file=sys.stderr)
                continue
        found.append(transport)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser("ring", __doc__, runs=3, full_runs=5)
    parser.add_argument(
        "--transports", default=",".join(TRANSPORTS), help="comma-separated subset to run"
    )
    args = harness.parse(parser, argv)
    runs = args.runs
    sizes = harness.by_mode(
        args,
        smoke={"single": 2_000, "batch256": 25_600, "latency": 1_000},
        quick={"single": 100_000, "batch256": 2_560_000, "latency": 10_000},
        full={"single": 1_000_000, "batch256": 25_600_000, "latency": 100_000},
    )
    peer_sizes = harness.by_mode(
        args,
        smoke={"single": 2_000, "batch256": 25_600, "latency": 1_000},
        quick={"single": 50_000, "batch256": 256_000, "latency": 5_000},
        full={"single": 300_000, "batch256": 2_560_000, "latency": 50_000},
    )
    idle_seconds = harness.by_mode(args, smoke=0.2, quick=1.5, full=5.0)
    transports = available_transports(args.transports.split(","))
    results = []
    for mode in ("single", "batch256", "latency_default", "latency_spin"):
        # latency_spin: peers have no spinning receive; their latency is latency_default
        contenders = [t for t in transports if mode != "latency_spin" or t == "tradepipe"]
        key = "latency" if mode.startswith("latency") else mode
        records = {t: (sizes if t == "tradepipe" else peer_sizes)[key] for t in contenders}
        samples = harness.round_robin(
            {t: partial(measure, t, mode, records[t]) for t in contenders}, runs
        )
        for transport in contenders:
            row = {
                "transport": transport,
                "mode": mode,
                **harness.median_fields(samples[transport], FIGURES),
                "idle_cpu_pct": None,
                "runs": runs,
                "records": records[transport],
            }
            results.append(row)
            harness.progress(f"  {mode:16} {transport:12} {format_row(row)}")
    idle = harness.median(measure_idle_cpu(idle_seconds) for _ in range(runs))
    for row in results:
        if row["transport"] == "tradepipe" and row["mode"] == "latency_default":
            row["idle_cpu_pct"] = idle
    print_table(results, idle, runs)
    return harness.finish(args, {"results": results})


FIGURES = ("records_per_s", "p50_us", "p99_us", "p999_us")


def format_row(row: dict) -> str:
    if row["records_per_s"] is not None:
        return f"{row['records_per_s'] / 1e6:8.2f} M records/s"
    return (
        f"p50 {row['p50_us']:7.1f} µs  p99 {row['p99_us']:7.1f} µs  p99.9 {row['p999_us']:8.1f} µs"
    )


def print_table(results: list[dict], idle: float, runs: int) -> None:
    ours = {row["mode"]: row for row in results if row["transport"] == "tradepipe"}
    rows = []
    for row in results:
        mine = ours.get(row["mode"])
        ratio = ""
        if mine and row["transport"] != "tradepipe":
            if row["records_per_s"]:
                ratio = f"{mine['records_per_s'] / row['records_per_s']:.1f}×"
            elif row["p50_us"]:
                ratio = f"{row['p50_us'] / mine['p50_us']:.1f}× lower p50"
        rows.append((row["mode"], row["transport"], format_row(row), ratio))
    harness.print_table(
        f"ring vs peers, 64-byte records, median of {runs} runs",
        [harness.Column("mode", "<"), "transport", "result", "tradepipe ×"],
        rows,
        [f"idle CPU of the default wait (consumer on an empty ring): {idle:.2f} % of a core"],
    )


if __name__ == "__main__":
    sys.exit(main())
