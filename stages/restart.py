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
before the crash. Persistence appends only what is new (it skips seqs it already holds).

A plain msgspec Struct: it crosses into every stage process as a keyword argument.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

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
