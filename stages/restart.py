"""Where a restarted pipeline begins: the state to start from and what to produce again.

After a stage died, the supervisor rebuilds the state every stage would have had after
command ``state_seq`` (the last command whose answers were all released), from the
newest snapshot and the journal, and saves it as an ``Engine`` snapshot file. Each stage
of the new pipeline starts from its part of that state (ingest the throttles, risk the
balances, holds and open settlement window, matching the books). Ingest first sends the
journaled commands after ``state_seq`` again, as they were journaled (same seq, same
stamps, so throttles and settlement windows decide alike), then the operator's queue and
its source, which skips the ``source_taken`` commands the journal already holds. Output
drops the first ``released_of_first`` answers of the first command sent again: they left
before the crash (``ReleasedBefore``; the gateway counts them off the same way).
Persistence appends only what is new (it skips seqs it already holds).

A plain msgspec Struct: it crosses into every stage process as a keyword argument.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from stages.engine import Engine


class RestartPoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A restart of the pipeline after ``state_seq`` (see the module docstring)."""

    state_path: str  # an Engine snapshot (``Engine.snapshot()`` bytes) at state_seq
    state_seq: int  # the last command whose answers were all released
    journal_end: int  # the last seq the journal holds (ingest re-sends state_seq+1 ..)
    source_taken: int  # commands of the load source the journal holds (origin SOURCE)
    released_of_first: int = 0  # answers of command state_seq + 1 already released
    max_order_id: int = 0  # the highest order id a NEW command of the journal used

    def engine(self) -> Engine:
        """The state at ``state_seq`` (each stage takes its own part)."""
        return Engine.restore(Path(self.state_path).read_bytes())


class ReleasedBefore:
    """The answers at the front of a restarted pipeline's stream that left before the crash:
    the first ``released_of_first`` answers of command ``state_seq + 1``. Output drops them
    (they are not released twice); the gateway applies them to its orders and books but
    does not report them again. ``take(seqs)`` says how many of a batch (by the events'
    ``seq`` column, in stream order) are such answers, counting them off."""

    __slots__ = ("left", "seq")

    def __init__(self, restart: RestartPoint | None) -> None:
        self.left = restart.released_of_first if restart is not None else 0
        self.seq = restart.state_seq + 1 if restart is not None else 0

    def take(self, seqs: np.ndarray) -> int:
        if not self.left:
            return 0
        n = min(self.left, len(seqs))
        if (seqs[:n] != self.seq).any():
            raise RuntimeError(
                f"restart: the first {self.left} answers should be of seq {self.seq}, but "
                f"seq {int(seqs[0])}..{int(seqs[n - 1])} came"
            )
        self.left -= n
        return n
