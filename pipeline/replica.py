"""The snapshot replica's thread: it follows the durable journal at the lowest priority.

The replica (``stages.persistence.follower.JournalFollower``: an ``Engine`` applying what
the journal made durable, saving a snapshot every ``every_records``) does one engine pass
over the journal, about the work of risk and matching together. On a host with as many
cores as stages that is spare time; on a small host it competes with the stages for their
cores. So it runs in a thread of its own whose scheduling priority is the lowest there is
(``nice`` 19 for that thread; Linux sets it per thread): it uses the time the stages leave,
and the watch loop, in the supervisor's main thread, stays prompt. The numba kernels hold
the GIL while they run, but the interpreter switches threads every few milliseconds, far
inside the watch loop's 50 ms step.

``snapshot_now`` (the ``tradepipe snapshot`` verb) takes the replica's lock, catches it up
and saves at once, whatever its priority.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from stages.persistence.follower import JournalFollower
from stages.persistence.journal_errors import JournalError
from stages.persistence.snapshots import SnapshotError

#: the lowest scheduling priority (nice) the replica's thread asks for
REPLICA_NICE = 19
#: how long the replica waits after a step that was not a full one (seconds): it has caught
#: up, and the next step then takes what a quarter second made durable in one engine pass
IDLE_WAIT = 0.25


class ReplicaThread:
    """Runs ``follower`` against ``durable_seq()`` until ``stop()``; a failure to read the
    journal or save a snapshot stops it (the run goes on) and is kept in ``error``."""

    def __init__(
        self,
        follower: JournalFollower,
        durable_seq: Callable[[], int],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.follower = follower
        self.durable_seq = durable_seq
        self.on_error = on_error
        self.error: str | None = None
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tradepipe-replica", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def snapshots(self) -> list[Path]:
        return self.follower.snapshots

    def snapshot_now(self) -> tuple[int, Path]:
        """Catch up with the durable seq and save a snapshot now: (its seq, its path)."""
        with self.lock:
            return self.follower.snapshot_now(self.durable_seq())

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # not Linux, or not permitted
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), REPLICA_NICE)
        while not self._stop.is_set():
            try:
                with self.lock:
                    applied = self.follower.advance(self.durable_seq())
            except (SnapshotError, JournalError) as error:
                self.error = f"periodic snapshots stopped, the run goes on: {error}"
                if self.on_error is not None:
                    self.on_error(self.error)
                return
            if applied < self.follower.step:  # caught up: let a step's worth build up
                self._stop.wait(IDLE_WAIT)
