"""``Outcomes``: what a stream of events said, counted per kind and per reason.

The run summary, and the output stage of the pipeline, report how many orders were
accepted, traded, rejected and cancelled, and why. Counting is domain knowledge (which
kinds carry a reason, what the names are), so it lives here and the process plumbing
only prints the rows. One ``add`` per event batch: three ``bincount`` calls, no loop.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from stages.records import EventType, Reason

_KINDS = max(EventType) + 1
_REASONS = 256  # ``reason`` is one byte
#: the event kinds whose ``reason`` says why, and the word a summary uses for each
_REASONED = {EventType.REJECTED: "rejected", EventType.CANCELLED: "cancelled"}


class Outcomes:
    """Counts of events by kind, and of rejects and cancels by reason."""

    def __init__(self) -> None:
        self.by_kind = np.zeros(_KINDS, np.int64)
        self.by_reason = {kind: np.zeros(_REASONS, np.int64) for kind in _REASONED}

    def add(self, events: np.ndarray) -> None:
        """Count one batch of ``stages.records.EVENT_DTYPE`` events."""
        kinds = events["kind"]
        self.by_kind += np.bincount(kinds, minlength=_KINDS)[:_KINDS]
        for kind, counts in self.by_reason.items():
            counts += np.bincount(events["reason"][kinds == kind], minlength=_REASONS)

    def count(self, kind: EventType, reason: Reason | None = None) -> int:
        """Events of ``kind`` (with ``reason``, for rejects and cancels)."""
        if reason is None:
            return int(self.by_kind[kind])
        return int(self.by_reason[kind][reason])

    def rows(self) -> Iterator[tuple[str, int]]:
        """``("events: trade", n)`` per kind seen, each followed by its reasons
        (``("  rejected: insufficient_funds", n)``), in code order."""
        for kind in EventType:
            count = int(self.by_kind[kind])
            if not count:
                continue
            yield f"events: {kind.name.lower()}", count
            if kind in _REASONED:
                counts = self.by_reason[kind]
                for reason in counts.nonzero()[0]:
                    yield f"  {_REASONED[kind]}: {_reason_name(int(reason))}", int(counts[reason])


def _reason_name(code: int) -> str:
    try:
        return Reason(code).name.lower()
    except ValueError:
        return f"code {code}"
