"""What a feed replay counts: the translators' skipped messages and the engine's answers.

Nothing a feed holds is fatal to a replay: a message that cannot be applied is counted
and skipped, and the summary shows the counts. The translation kernels count into one
int64 array indexed by the ``COUNT_*`` names below (a kernel cannot grow a Python object);
what the engine answered is counted per batch, vectorised, by ``EventTally``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stages.records import EventFlag, EventType, Reason

# Indices into the translators' counters array.
COUNT_UNKNOWN_REF = 0  # referenced an order never added or already gone
COUNT_DUPLICATE_ADD = 1  # ITCH add of a reference that is live
COUNT_OVER_EXECUTED = 2  # ITCH execution/cancel of more shares than were open
COUNT_UNKNOWN_SYMBOL = 3  # ITCH add for a stock locate without an R message
COUNT_SEEDED_APPLIED = 4  # LOBSTER 2/3/4 with an unknown id applied to a seeded order
N_COUNTS = 5


def new_counters() -> np.ndarray:
    """A zeroed counters array for the translation kernels (``COUNT_*`` index it)."""
    return np.zeros(N_COUNTS, dtype=np.int64)


@dataclass
class EventTally:
    """What the engine answered: events by type, rejects by reason, traded volume."""

    events: dict[str, int] = field(default_factory=dict)
    rejects: dict[str, int] = field(default_factory=dict)
    trades: int = 0
    traded_qty: int = 0

    def add(self, events: np.ndarray) -> None:
        """Vectorised: bincounts over kind and reject reason."""
        kinds = np.bincount(events["kind"], minlength=16)
        for k in np.flatnonzero(kinds):
            name = EventType(int(k)).name
            self.events[name] = self.events.get(name, 0) + int(kinds[k])
        rejected = events["reason"][events["kind"] == EventType.REJECTED]
        if rejected.shape[0]:
            reasons = np.bincount(rejected, minlength=128)
            for r in np.flatnonzero(reasons):
                name = Reason(int(r)).name
                self.rejects[name] = self.rejects.get(name, 0) + int(reasons[r])
        takers = (events["kind"] == EventType.TRADE) & ((events["flags"] & EventFlag.TAKER) != 0)
        self.trades += int(np.count_nonzero(takers))
        self.traded_qty += int(events["qty"][takers].sum())
