"""Compare a bench before and after a change: alternating runs of the code at a revision
and of the working tree, each figure's medians side by side.

On a shared host the speed moves by a third within an hour (``perf/README.md``, "Pinning
and a noisy host"), more than most changes under test, so runs of the two versions minutes
apart say little. This runs the bench as it is at ``--base`` (a temporary git worktree,
imported first through ``PYTHONPATH``) and as it is in the working tree, in turn,
``--pairs`` times, each with ``--json``, and prints the median of every numeric figure of
both and their ratio. The worktree lives in a new temporary directory and is removed at
the end, also when a run fails or on Ctrl-C; nothing else is touched.

    python perf/compare.py --base HEAD~3 --pairs 3 bench_gateway_core.py --quick

Exit status: 0, 1 when a bench run failed (its last lines of stderr are shown), 2 for bad
usage (an unknown revision, a bench that is not in both versions, ``--json`` among the
bench's own arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import harness

#: the repository this file belongs to (perf/..)
ROOT = Path(__file__).resolve().parent.parent
#: integer fields that name a case rather than measure it (they label a row)
PARAMETERS = frozenset({"clients", "symbols", "levels", "batch", "books", "orders", "size"})


class UsageError(Exception):
    """Bad usage: one line for the user, exit status 2."""


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise UsageError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "git")
    return done.stdout.strip()


def label(row: Mapping[str, Any], index: int) -> str:
    """A row's name: its text fields and the integer parameters that pick its case."""
    parts = [
        f"{key}={value}"
        for key, value in row.items()
        if isinstance(value, str) or (key in PARAMETERS and isinstance(value, int))
    ]
    return ", ".join(parts) or f"row {index}"


def figures(payload: Mapping[str, Any]) -> dict[tuple[str, str], float]:
    """Every numeric figure of one bench's JSON, by (row label, field): the ``results`` rows
    and the top-level ``ratios``."""
    out: dict[tuple[str, str], float] = {}
    for index, row in enumerate(payload.get("results", [])):
        name = label(row, index)
        for key, value in row.items():
            if key in PARAMETERS or isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                out[(name, key)] = float(value)
    for key, value in (payload.get("ratios") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[("ratios", key)] = float(value)
    return out


def compare(
    base: Sequence[Mapping[str, Any]], head: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Medians of every figure both versions give, in the head's order, with head/base."""
    base_runs = [figures(p) for p in base]
    head_runs = [figures(p) for p in head]
    rows = []
    for key in head_runs[0] if head_runs else {}:
        before = [run[key] for run in base_runs if key in run]
        after = [run[key] for run in head_runs if key in run]
        if not before or not after:
            continue  # a figure one version does not have
        b, h = statistics.median(before), statistics.median(after)
        rows.append(
            {
                "row": key[0],
                "figure": key[1],
                "base": b,
                "head": h,
                "head_over_base": h / b if b else None,
                "base_runs": before,
                "head_runs": after,
            }
        )
    return rows


def _run(tree: Path, bench: str, bench_args: list[str], out: Path, pythonpath: bool) -> float:
    """One run of ``bench`` as ``tree`` has it; its seconds. Exits 1 when it fails."""
    env = dict(os.environ)
    if pythonpath:  # the base's packages before the installed (editable) working tree's
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    command = [sys.executable, str(tree / "perf" / bench), *bench_args, "--json", str(out)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{bench} failed in {tree} (exit {done.returncode}):\n{tail}")
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--pairs", type=int, default=3, help="alternating runs (1..50)")
    parser.add_argument("--json", type=Path, help="also write the comparison here")
    parser.add_argument("bench", help="a bench file of perf/, e.g. bench_gateway_core.py")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="the bench's arguments")
    args = parser.parse_args(argv)
    try:
        if not 1 <= args.pairs <= 50:
            raise UsageError(f"--pairs {args.pairs}: expected 1..50")
        if any(a == "--json" or a.startswith("--json=") for a in args.bench_args):
            raise UsageError("--json among the bench's arguments: compare sets it")
        if Path(args.bench).name != args.bench or not (ROOT / "perf" / args.bench).is_file():
            raise UsageError(f"{args.bench}: not a file of perf/ in the working tree")
        try:
            commit = _git("rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}")
        except UsageError:
            raise UsageError(f"{args.base}: not a revision of this repository") from None
        if not _git("ls-tree", "--name-only", commit, f"perf/{args.bench}"):
            raise UsageError(f"{args.bench}: not in perf/ at {args.base}")
    except UsageError as error:
        print(f"compare: {error}", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="tp-compare-"))
    worktree = scratch / "base"
    try:
        _git("worktree", "add", "--detach", str(worktree), commit)
        base, head = [], []
        for pair in range(1, args.pairs + 1):
            for name, tree, runs in (("base", worktree, base), ("head", ROOT, head)):
                out = scratch / f"{name}-{pair}.json"
                seconds = _run(tree, args.bench, args.bench_args, out, tree is worktree)
                runs.append(json.loads(out.read_text()))
                harness.progress(f"pair {pair}/{args.pairs}: {name} took {seconds:.0f} s")
    except RuntimeError as error:
        print(f"compare: {error}", file=sys.stderr)
        return 1
    except UsageError as error:
        print(f"compare: {error}", file=sys.stderr)
        return 2
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
            capture_output=True,
        )
        shutil.rmtree(scratch, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)
    rows = compare(base, head)

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:,.4g}"

    harness.print_table(
        f"{args.bench} {' '.join(args.bench_args)}: {args.base} ({commit[:9]}) against the "
        "working tree",
        [harness.Column("row", "<"), harness.Column("figure", "<"), "base", "head", "head/base"],
        [
            (r["row"], r["figure"], cell(r["base"]), cell(r["head"]), cell(r["head_over_base"]))
            for r in rows
        ],
        [f"medians of {args.pairs} alternating runs each (base first in every pair)"],
    )
    if args.json is not None:
        payload = {"base": args.base, "commit": commit, "pairs": args.pairs, "rows": rows}
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
