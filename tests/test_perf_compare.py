"""``perf/compare.py``: alternating runs of a bench at a revision and in the working tree.

The pure parts (which figures a bench's JSON holds, their medians side by side) are checked
directly; the whole command runs in a throwaway git repository holding a copy of it and a
fake bench whose one figure the test changes between the commit and the working tree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parent.parent / "perf"
sys.path.insert(0, str(PERF))
import compare  # noqa: E402  (perf/ is not a package: its scripts import each other so)

FAKE_BENCH = """\
import argparse, json
parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true")
parser.add_argument("--json")
args = parser.parse_args()
VALUE = {value}
rows = [{{"case": "fast", "clients": 2, "orders_per_s": VALUE, "ok": True}}]
open(args.json, "w").write(json.dumps({{"results": rows, "ratios": {{"x": VALUE / 2}}}}))
"""


def test_figures_are_the_numbers_of_each_row_named_by_its_case():
    payload = {
        "results": [
            {"case": "a", "clients": 1, "rate": 10.0, "p50": 3, "ok": True, "none": None},
            {"rate": 5.0},
        ],
        "ratios": {"r": 0.5},
    }
    assert compare.figures(payload) == {
        ("case=a, clients=1", "rate"): 10.0,
        ("case=a, clients=1", "p50"): 3.0,
        ("row 1", "rate"): 5.0,
        ("ratios", "r"): 0.5,
    }


def test_compare_takes_medians_of_the_figures_both_versions_have():
    base = [{"results": [{"case": "a", "rate": v, "old": 1.0}]} for v in (1.0, 3.0, 2.0)]
    head = [{"results": [{"case": "a", "rate": v, "new": 1.0}]} for v in (4.0, 8.0, 6.0)]
    (row,) = compare.compare(base, head)
    assert (row["row"], row["figure"], row["base"], row["head"]) == ("case=a", "rate", 2.0, 6.0)
    assert row["head_over_base"] == 3.0


def _repo(tmp_path: Path) -> Path:
    """A git repository with perf/compare.py, perf/harness.py and a fake bench committed
    (its figure 10), then the bench changed in the working tree (its figure 25)."""
    repo = tmp_path / "repo"
    (repo / "perf").mkdir(parents=True)
    for name in ("compare.py", "harness.py"):
        shutil.copy(PERF / name, repo / "perf" / name)
    bench = repo / "perf" / "bench_fake.py"
    bench.write_text(FAKE_BENCH.format(value=10.0))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fake"], check=True)
    bench.write_text(FAKE_BENCH.format(value=25.0))
    return repo


def _compare(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(repo / "perf" / "compare.py"), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(180)
def test_compare_runs_both_versions_in_turn_and_leaves_no_worktree(tmp_path):
    repo = _repo(tmp_path)
    out = tmp_path / "comparison.json"
    done = _compare(repo, "--base", "HEAD", "--pairs", "2", "--json", str(out), "bench_fake.py")
    assert done.returncode == 0, done.stderr
    rows = {(r["row"], r["figure"]): r for r in json.loads(out.read_text())["rows"]}
    rate = rows[("case=fast, clients=2", "orders_per_s")]
    assert (rate["base_runs"], rate["head_runs"], rate["head_over_base"]) == (
        [10.0, 10.0],
        [25.0, 25.0],
        2.5,
    )
    assert rows[("ratios", "x")]["head"] == 12.5
    assert "orders_per_s" in done.stdout and "2.5" in done.stdout
    worktrees = subprocess.run(
        ["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert len(worktrees.strip().splitlines()) == 1  # only the repository itself


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--base", "no-such-rev", "bench_fake.py"], "no-such-rev: not a revision"),
        (["--base", "HEAD", "bench_missing.py"], "bench_missing.py: not a file of perf/"),
        (["--base", "HEAD", "../compare.py"], "../compare.py: not a file of perf/"),
        (["--base", "HEAD", "bench_fake.py", "--json", "x"], "--json among the bench's"),
        (["--base", "HEAD", "--pairs", "0", "bench_fake.py"], "--pairs 0: expected 1..50"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(tmp_path, args, says):
    done = _compare(_repo(tmp_path), *args)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and says in done.stderr
    assert done.stdout == ""


def test_a_bench_that_is_new_in_the_working_tree_is_refused(tmp_path):
    repo = _repo(tmp_path)
    shutil.copy(repo / "perf" / "bench_fake.py", repo / "perf" / "bench_new.py")
    done = _compare(repo, "--base", "HEAD", "bench_new.py")
    assert done.returncode == 2 and "bench_new.py: not in perf/ at HEAD" in done.stderr


@pytest.mark.timeout(120)
def test_a_failing_bench_run_is_exit_1_with_its_error(tmp_path):
    repo = _repo(tmp_path)
    (repo / "perf" / "bench_fake.py").write_text("raise SystemExit('the bench broke')\n")
    done = _compare(repo, "--base", "HEAD", "--pairs", "1", "bench_fake.py")
    assert done.returncode == 1 and "the bench broke" in done.stderr
    worktrees = subprocess.run(
        ["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert len(worktrees.strip().splitlines()) == 1
