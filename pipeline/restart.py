"""Planning a restart after a stage died: where the new pipeline starts (a ``RestartPoint``).

The supervisor has stopped every stage. What it knows for sure:

* the journal: every command sequenced and appended (its end ``E``; a torn last append is
  not a command: the next writer cuts it off);
* output's progress file: the seq ``s`` of the last answer released and how many answers
  ``k`` of ``s`` had left (``stages.output.stage``).

The state to restart from is the one after the last command whose answers were *all*
released. The ``Engine`` is the judge: it rebuilds the state after ``s - 1`` (the newest
snapshot at or before it, which the supervisor's ``JournalFollower`` keeps taking, + the
journal) and runs command ``s`` alone: if ``s`` makes exactly ``k`` answers, all of them
left and the restart state is the one after ``s``; otherwise the one before ``s``, and
output drops the ``k`` answers of ``s`` it will see again. Either way each answer is
released exactly once, and no durable command is lost (ingest sends ``state_seq + 1 .. E``
again from the journal) or applied twice (every stage starts from the state at
``state_seq``; persistence skips what the journal holds).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import RunConfig
from stages.engine import Engine
from stages.output.stage import read_progress, trim_release_log
from stages.persistence.journal_reader import JournalReader
from stages.persistence.recovery import replay_journal
from stages.records import CommandOrigin, CommandType
from stages.restart import RestartPoint


@dataclass(frozen=True)
class JournalTally:
    """The journal's last seq, how many of its commands came from the load source, and the
    highest order id a NEW used (a restarted gateway allocates above it)."""

    end: int
    source: int
    max_order_id: int


def tally_journal(directory: Path) -> JournalTally:
    """One pass over the journal: its end, its ``CommandOrigin.SOURCE`` commands, its
    highest new order id."""
    end = source = max_order_id = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torn tail: the writer reopened cuts it off
        with JournalReader(directory) as reader:
            for batch in reader.batches():
                end = int(batch["seq"][-1])
                source += int(np.count_nonzero(batch["origin"] == CommandOrigin.SOURCE))
                new = batch["order_id"][batch["kind"] == CommandType.NEW]
                if len(new):
                    max_order_id = max(max_order_id, int(new.max()))
    return JournalTally(end, source, max_order_id)


def _state_before(config: RunConfig, journal: Path, seq: int, snapshots: Path | None) -> Engine:
    """The Engine state after command ``seq``: the newest snapshot at or before it (if
    any, else the configuration's empty state) and the journal after it."""
    if seq == 0:
        return Engine(config.engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = replay_journal(
            journal,
            snapshots,
            lambda: Engine(config.engine),
            to_seq=seq,
            snapshot_max_seq=seq,
        )
    if result.last_seq != seq:
        raise RuntimeError(f"restart: the journal replays to seq {result.last_seq}, not {seq}")
    return result.state


def _command(journal: Path, seq: int) -> np.ndarray:
    with JournalReader(journal) as reader:
        batches = list(reader.batches(seq, seq))
    if not batches or len(batches[0]) != 1:
        raise RuntimeError(f"restart: the journal does not hold command {seq}")
    return batches[0].copy()


def plan_restart(
    config: RunConfig,
    progress_file: Path,
    previous: RestartPoint | None,
    state_file: Path,
    release_log: Path | None = None,
    snapshot_dir: str | Path | None = None,
) -> RestartPoint:
    """Where to restart, with the state saved to ``state_file`` (see the module docstring).

    ``previous``: the restart the pipeline that died began from (None: the load's start).
    A ``release_log`` is trimmed to what the progress file says was released.
    """
    journal = Path(config.journal.directory).expanduser()
    snapshots = Path(snapshot_dir).expanduser() if snapshot_dir is not None else None
    if snapshots is not None and not snapshots.is_dir():
        snapshots = None
    tally = tally_journal(journal)
    progress = read_progress(progress_file)
    if progress is None:  # nothing left since the last start
        seq = previous.state_seq if previous is not None else 0
        state = _state_before(config, journal, seq, snapshots)
        released = 0
    else:
        last, released = progress
        engine = _state_before(config, journal, last - 1, snapshots)
        before = engine.snapshot()
        answers = len(engine.process(_command(journal, last)))
        if answers == released:  # every answer of ``last`` left
            state, seq, released = engine, last, 0
        else:
            state, seq = Engine.restore(before), last - 1
    state_file.write_bytes(state.snapshot())
    if release_log is not None and release_log.exists():
        trim_release_log(release_log, seq + 1, released)
    return RestartPoint(
        state_path=str(state_file),
        state_seq=seq,
        journal_end=tally.end,
        source_taken=tally.source,
        released_of_first=released,
        max_order_id=tally.max_order_id,
    )
