"""Crash safety: a real writer process SIGKILLed at random moments loses nothing it reported.

The child appends batches under load and, after each append, writes its ``durable_seq`` to a
pipe. The parent kills it with SIGKILL at a random moment, reads every report that reached
the pipe, reopens the journal and checks that every reported record is there, intact, and
that nothing after a torn block is returned. The next child continues the same journal
(which repairs the torn tail), so the cycle also tests resuming after every kind of crash.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from stages.persistence.journal_errors import TornTailWarning
from stages.persistence.journal_reader import JournalReader
from stages.persistence.journal_verify import verify_journal
from stages.persistence.recovery import recover
from stages.records import COMMAND_DTYPE
from tests.builders import Counter, commands

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import os, struct, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from stages.persistence.journal_blocks import first_gap
from stages.persistence.journal_writer import JournalWriter
from stages.records import COMMAND_DTYPE
from tests.builders import commands

first_gap(commands(1, 2)["seq"], 1)  # compile (or load) the check now, not inside the kill window

directory, policy, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(seed)
writer = JournalWriter(directory, COMMAND_DTYPE, fsync=policy, segment_bytes=1 << 20)
os.write(1, struct.pack("<q", writer.durable_seq))  # ready: what survived the last crash
while True:
    n = int(rng.integers(1, 4000))
    writer.append(commands(writer.next_seq, n))
    os.write(1, struct.pack("<q", writer.durable_seq))
"""


def _run_and_kill(directory: Path, policy: str, seed: int, rng: random.Random) -> list[int]:
    """Start a writer, SIGKILL it at a random moment; return the durable seqs it reported."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), policy, str(seed)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    assert child.stdout is not None
    try:
        ready = child.stdout.read(8)
        assert len(ready) == 8, "the writer child died before it was ready"
        time.sleep(rng.uniform(0.0, 0.06))
    finally:
        child.kill()  # SIGKILL: no cleanup, no flush, no close
        child.wait()
    data = ready + child.stdout.read()
    child.stdout.close()
    complete = len(data) // 8 * 8  # a report cut by the kill never reached the pipe whole
    return [v for (v,) in struct.iter_unpack("<q", data[:complete])]


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize(("policy", "kills"), [("batch", 25), ("never", 8)])
def test_sigkill_at_random_moments_loses_nothing_reported(
    tmp_path: Path, policy: str, kills: int
) -> None:
    rng = random.Random(20261124)
    directory = tmp_path / "journal"
    verified = 0  # records checked so far (seqs 1..verified)
    torn_seen = 0
    reported_max = 0
    for kill in range(kills):
        reports = _run_and_kill(directory, policy, seed=kill, rng=rng)
        assert reports == sorted(reports), "durable_seq went backwards"
        assert reports[0] >= reported_max, "a restarted writer lost records reported durable"
        reported_max = max(reported_max, reports[-1])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reader = JournalReader(directory, COMMAND_DTYPE)
            # re-check from a little before what was verified last time: the tail may have moved
            start = max(1, verified - 5000)
            tail = reader.read(from_seq=start)
        torn_seen += sum(issubclass(w.category, TornTailWarning) for w in caught)
        end = start + len(tail) - 1
        assert np.array_equal(tail, commands(start, len(tail))), "a record came back altered"
        assert end >= reported_max, (
            f"kill {kill}: the writer reported seq {reported_max} durable, the journal ends at {end}"
        )
        verified = end
    # recovery over the journal of all those crashes replays every record once, in order
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornTailWarning)
        state, last_seq = recover(directory, None, Counter)
    assert last_seq >= reported_max
    reference = Counter()
    reference.process(commands(1, last_seq))
    assert state.state_hash() == reference.state_hash()
    # and once its last torn tail is cut, it is one clean journal
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = verify_journal(directory, COMMAND_DTYPE)
    assert report.first_seq == 1
    assert report.last_seq is not None and report.last_seq >= reported_max
    assert report.segments >= 2  # the kills landed across rotations too
    print(f"{policy}: {kills} kills, {report.last_seq} records, {torn_seen} torn tails seen")
    shutil.rmtree(directory)  # a few hundred MB: do not leave them to pytest's kept tmp dirs


FULL_CHILD = """
import resource, signal, struct, sys, warnings
warnings.simplefilter("ignore")
from stages.persistence.journal_errors import JournalFullError
from stages.persistence.journal_writer import JournalWriter
from stages.records import COMMAND_DTYPE
from tests.builders import commands

directory, limit = sys.argv[1], int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of a signal
writer = JournalWriter(directory, COMMAND_DTYPE, fsync="batch", segment_bytes=1 << 30)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
acked = 0
try:
    while True:
        acked = writer.append(commands(writer.next_seq, 777))
except JournalFullError as error:
    print(acked, error.valid_seq, error.durable_seq)
    print(error)
"""


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_kernel_file_size_limit_is_a_clean_full_disk(tmp_path: Path) -> None:
    """A real short write then EFBIG from the kernel (RLIMIT_FSIZE), not an injected one."""
    directory = tmp_path / "journal"
    limit = 1_000_000  # not a block boundary: the last write is cut short by the kernel
    done = subprocess.run(
        [sys.executable, "-c", FULL_CHILD, str(directory), str(limit)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    numbers, message = done.stdout.splitlines()[:2]
    acked, valid, durable = map(int, numbers.split())
    assert acked == valid == durable > 0
    assert "disk full (EFBIG)" in message and f"valid up to seq {valid}" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torn tail: the cut block was removed
        records = JournalReader(directory, COMMAND_DTYPE).read()
    assert np.array_equal(records, commands(1, valid))
    segment = next(directory.glob("*.tpj"))
    assert segment.stat().st_size <= limit
