"""What every ``perf/bench_*.py`` shares, so that a bench file holds only its cases and peers.

A bench builds its command line with :func:`parser` (``--smoke``, ``--quick``, ``--runs``,
``--json`` plus its own flags) and :func:`parse`, sizes its inputs with :func:`by_mode`,
measures with :func:`round_robin` (every case and peer once per run, in turn, so that a
passing disturbance of the host hits all of them alike) and :func:`median` /
:func:`median_fields`, prints with :func:`print_table` and ends with :func:`finish`, which
prints the host line and writes the JSON. Benches that need two processes use :func:`pin`
and :func:`run_pair`.

The benches are scripts: ``python perf/bench_x.py`` puts ``perf/`` first on ``sys.path``, so
``import harness`` finds this file, and the package (installed editable) imports as usual.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

K = TypeVar("K")
T = TypeVar("T")

#: The process context of :func:`run_pair`: fork, so children inherit the bench's objects.
FORK = multiprocessing.get_context("fork")

MODES = ("smoke", "quick", "full")


# ---------------------------------------------------------------- command line
def parser(
    bench: str, doc: str, *, runs: int = 3, full_runs: int | None = None
) -> argparse.ArgumentParser:
    """The argument parser of bench ``bench`` with the flags every bench takes.

    ``runs`` is the default number of runs per figure in quick mode, ``full_runs`` (default
    ``runs``) in a full run; ``--smoke`` always makes one. The bench adds its own flags to
    the parser returned and hands it to :func:`parse`.
    """
    full_runs = runs if full_runs is None else full_runs
    result = argparse.ArgumentParser(description=" ".join(doc.split("\n\n")[0].split()))
    size = result.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="smaller inputs, fewer runs (< 60 s each)"
    )
    size.add_argument(
        "--smoke",
        action="store_true",
        help="one run of every case on tiny inputs (seconds): checks the bench works, "
        "its figures mean nothing",
    )
    result.add_argument(
        "--runs",
        type=int,
        default=None,
        help=f"runs per figure, the median is reported; >= 3 (default {runs} with --quick, "
        f"{full_runs} without)",
    )
    result.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    result.set_defaults(bench=bench, default_runs={"smoke": 1, "quick": runs, "full": full_runs})
    return result


def parse(bench_parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; the result also has ``mode`` (one of :data:`MODES`) and ``runs`` set."""
    args = bench_parser.parse_args(argv)
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.runs is None:
        args.runs = args.default_runs[args.mode]
    elif args.smoke:
        bench_parser.error("--smoke makes one run of every case: leave out --runs")
    elif args.runs < 3:
        bench_parser.error(f"--runs {args.runs} is too few: the median needs >= 3")
    args.started = time.monotonic()
    return args


def by_mode(args: argparse.Namespace, *, smoke: T, quick: T, full: T) -> T:
    """The value for the mode of this run (input sizes, lists of cases)."""
    return {"smoke": smoke, "quick": quick, "full": full}[args.mode]


# ---------------------------------------------------------------- measuring
def round_robin(cases: Mapping[K, Callable[[], T]], runs: int) -> dict[K, list[T]]:
    """Call every case once per run, in the order given, ``runs`` times; the samples by case.

    Whatever disturbs the host for a while (other tenants, the kernel compacting memory a
    peer freed) then hits every case alike instead of the one that happened to be running.
    """
    samples: dict[K, list[T]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, case in cases.items():
            samples[name].append(case())
    return samples


def timed(fn: Callable[..., Any], *args: Any) -> float:
    """Seconds ``fn(*args)`` takes."""
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def median(values: Iterable[float]) -> float:
    return statistics.median(values)


def median_fields(samples: Sequence[Mapping[str, float]], fields: Iterable[str]) -> dict:
    """The median of each field over the samples that have it; None where none has it."""
    result: dict[str, float | None] = {}
    for field in fields:
        values = [sample[field] for sample in samples if field in sample]
        result[field] = statistics.median(values) if values else None
    return result


# ---------------------------------------------------------------- process pairs
def pin(index: int) -> None:
    """Pin this process to the ``index``-th CPU it may run on (modulo their number).

    Producer and consumer pin to 0 and 1: two cores of whatever set the bench was started
    on, so ``taskset -c 2,3 python perf/bench_ring.py`` chooses which two.
    """
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[index % len(cores)]})


def run_pair(producer: Callable, consumer: Callable, args: tuple, timeout: float = 300.0) -> dict:
    """Run ``consumer(*args, ready, start, results)`` and, once it has set ``ready``,
    ``producer(*args, start)`` in forked processes; return the dict the consumer put in
    ``results``.

    The producer stores ``time.perf_counter_ns()`` in ``start.value`` when it begins to send,
    so the consumer can time the transfer end to end. A consumer that fails puts
    ``{"error": repr(error)}``, which is raised here as a RuntimeError.
    """
    results = FORK.Queue()
    ready = FORK.Event()
    start = FORK.Value("q", 0)
    consumer_process = FORK.Process(target=consumer, args=(*args, ready, start, results))
    consumer_process.start()
    if not ready.wait(60):
        consumer_process.kill()
        raise RuntimeError("consumer did not start")
    producer_process = FORK.Process(target=producer, args=(*args, start))
    producer_process.start()
    try:
        result = results.get(timeout=timeout)
    finally:
        reap((producer_process, consumer_process), grace=30)
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def reap(processes: Iterable[Any], grace: float = 10) -> None:
    """Join every started process of ``processes`` (None and unstarted ones are skipped),
    killing what has not ended ``grace`` seconds later: a bench leaves nothing running."""
    for process in processes:
        if process is None or process.pid is None:
            continue
        process.join(grace)
        if process.is_alive():
            process.kill()
            process.join()


# ---------------------------------------------------------------- output
def progress(text: str) -> None:
    """One line on stderr while a long bench runs (the table comes at the end)."""
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Column:
    header: str
    align: str = ">"  # ">" right, "<" left


def print_table(
    title: str,
    columns: Sequence[Column | str],
    rows: Iterable[Sequence[str]],
    notes: Iterable[str] = (),
) -> None:
    """A plain-text table on stdout: the title, a header, a rule, the rows, then the notes.

    Cells come formatted; a bare string column is right-aligned.
    """
    columns = [c if isinstance(c, Column) else Column(c) for c in columns]
    rows = [list(row) for row in rows]
    widths = [max([len(c.header)] + [len(row[i]) for row in rows]) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{cell:{c.align}{w}}" for cell, c, w in zip(cells, columns, widths, strict=True)
        ).rstrip()

    print(title)
    header = line([c.header for c in columns])
    print(header)
    print("-" * len(header))
    for row in rows:
        print(line(row))
    for note in notes:
        print(note)


def finish(args: argparse.Namespace, payload: Mapping[str, Any]) -> int:
    """Print the host line; write ``payload`` (plus ``run_info``) as JSON to ``--json``.

    ``run_info`` says which bench, mode and number of runs made the figures, the CPUs it
    could run on, and how long it took: a smoke run's JSON is not mistaken for figures.
    """
    seconds = time.monotonic() - args.started
    cpus = sorted(os.sched_getaffinity(0))
    print(
        f"host: {os.cpu_count()} CPUs, this run on {cpus}; {args.mode} mode, "
        f"median of {args.runs} run{'s' if args.runs != 1 else ''}; took {seconds:.0f} s"
    )
    if args.json:
        info = {
            "bench": args.bench,
            "mode": args.mode,
            "runs": args.runs,
            "cpu_count": os.cpu_count(),
            "cpus": cpus,
            "seconds": round(seconds, 3),
        }
        text = json.dumps({**payload, "run_info": info}, indent=2, allow_nan=False)
        args.json.write_text(text + "\n")
        print(f"results written to {args.json}")
    return 0
