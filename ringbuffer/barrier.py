"""``SequenceBarrier``: wait until a sequence is available, or be alerted.

A barrier is the set of sequences one side of a ring may not pass, and the ring's alert
flag. A consumer's barrier holds the producer's cursor and the cursors of the consumers it
runs ``after`` (a dependency barrier): what it may read is the lowest of them. The
producer's barrier holds every consumer's cursor (the Disruptor's *gating sequences*): it
may overwrite a slot once the lowest of them has passed it.

* ``available()`` -- the lowest of the sequences, read now (acquire loads). With one
  sequence it *is* that sequence's ``get``, no Python frame between; with none it returns
  ``UNBOUNDED`` (a ring without consumers never holds its producer back).
* ``park(target, timeout_ns)`` -- sleep on the first sequence still below ``target`` until
  its writer moves it (``Sequence.park``), at most ``timeout_ns``; False if the timeout ran
  out. Re-checked after the park's flag and fence, with the cursor: the alert flag, and
  when parking on the producer's cursor, the end of its stream (``finished``). The roles
  hand it to their ``WaitStrategy`` as its ``park`` (see ``wait``).
* ``finished()`` -- True once the producer, whose cursor comes first, has called
  ``finish()`` (the barrier was given its ``state`` word); always False otherwise.
* ``check_alert()`` -- raise ``AlertedError`` if the ring was alerted (``Ring.alert``).

The alert re-check inside ``park`` lets an alert raised before the waiter's re-check end
the park at once; ``Ring.alert`` then wakes whoever is already asleep. An alert raised
between the re-check and the futex sleep is seen after one park timeout: ``alert`` may not
bump the wake counter (only a sequence's writer does, ``sequence``), so it cannot make the
sleep itself fail. What a barrier does not do is wait: the roles hand ``available`` and
``park`` to their ``WaitStrategy``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ringbuffer.errors import AlertedError
from ringbuffer.layout import PRODUCER_FINISHED
from ringbuffer.sequence import Sequence

UNBOUNDED = 1 << 62  # what a barrier without sequences reports: nothing holds this side back


class SequenceBarrier:
    """The sequences one side may not pass (``sequences``), the ring's alert flag (``alert``:
    a one-element view of the header's alert word) and, for a consumer, the producer's
    ``state`` word (its cursor must then be the first sequence). ``ring_name`` names the
    ring in errors."""

    __slots__ = ("_alert", "_sequences", "_state", "available", "ring_name")

    def __init__(
        self,
        ring_name: str,
        sequences: Iterable[Sequence],
        alert: np.ndarray,
        state: Sequence | None = None,
    ) -> None:
        self.ring_name = ring_name
        self._sequences = tuple(sequences)
        self._alert = alert
        self._state = state
        if not self._sequences:
            self.available: Callable[[], int] = _unbounded
        elif len(self._sequences) == 1:
            self.available = self._sequences[0].get
        else:
            self.available = self._lowest

    def _lowest(self) -> int:
        sequences = self._sequences
        available = sequences[0].get()
        for sequence in sequences[1:]:
            value = sequence.get()
            if value < available:
                available = value
        return available

    def park(self, target: int, timeout_ns: int) -> bool:
        """Sleep on the first sequence below ``target`` (False: the park timed out)."""
        stop = self._finished_or_alerted if self._state is not None else self.alerted
        for sequence in self._sequences:
            seen = sequence.get()
            if seen < target:
                return sequence.park(seen, timeout_ns, stop)
            stop = self.alerted
        return True

    def arm(self, target: int) -> bool:
        """``park``'s handshake without the sleep (``Sequence.arm``), on the same sequence:
        True if ``target`` is available now, or the stream ended, or an alert: do not sleep."""
        stop = self._finished_or_alerted if self._state is not None else self.alerted
        for sequence in self._sequences:
            seen = sequence.get()
            if seen < target:
                return sequence.arm(seen, stop)
            stop = self.alerted
        return True

    def finished(self) -> bool:
        """True once the producer finished its stream (never, without its ``state``)."""
        state = self._state
        return state is not None and state.get() == PRODUCER_FINISHED

    def _finished_or_alerted(self) -> bool:
        return bool(self._alert[0]) or self._state.get() == PRODUCER_FINISHED

    def alerted(self) -> bool:
        """True once the ring was alerted (until ``Ring.clear_alert``)."""
        return bool(self._alert[0])

    def check_alert(self) -> None:
        """Raise ``AlertedError`` if the ring was alerted."""
        if self._alert[0]:
            raise AlertedError(f"ring {self.ring_name!r} was alerted")


def _unbounded() -> int:
    return UNBOUNDED
