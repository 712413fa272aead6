"""An ``fdatasync`` on a thread of its own, so the gateway's loop goes on while the disk works.

The gateway process may publish a round's records into the orders ring, and send its
replies and reports, only once the order-id log holding the round's NEWs and report seqs
is durable (``stages.gateway.id_log``). Under load that fsync took ~2 ms of every ~12 ms
round (measured in the process, 2 windowed clients, fsync per batch): the loop sat idle
while it was the pipeline's busiest process. With ``BackgroundSync`` the loop starts the
sync and takes the next round's reports and requests (decoding, judging, building reports:
most of a round's work) while it runs, and settles the round — publish, send — once it
is done, always before the next round claims ring slots or writes the log, so rounds
still leave in order and nothing is seen before it is durable.

``fd`` becomes readable when a sync finished, so the loop's poller wakes for it and a lone
order's answers do not wait for the poll's timeout. A sync that failed raises its error
from ``wait`` in the loop's thread, as it would have raised there before.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable


class BackgroundSync:
    """One thread calling ``sync`` each time ``start`` asks; ``wait`` for the last one."""

    def __init__(self, sync: Callable[[], None], name: str = "id-log-sync") -> None:
        self._sync = sync
        #: readable once per finished sync (the poller watches it)
        self.fd, self._done = os.pipe()
        self._asks: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self.in_flight = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def start(self) -> None:
        """Sync in the background; one at a time (``wait`` for the last one first)."""
        if self.in_flight:
            raise RuntimeError("a sync is already in flight: wait for it first")
        self.in_flight = True
        self._asks.put(True)

    def wait(self) -> None:
        """Block until the sync in flight (if any) is done; raise what it raised."""
        if not self.in_flight:
            return
        os.read(self.fd, 1)
        self.in_flight = False
        error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Let a sync in flight finish, end the thread, close the pipe."""
        self._asks.put(False)
        self._thread.join()
        for fd in (self.fd, self._done):
            os.close(fd)

    def _run(self) -> None:
        while self._asks.get():
            try:
                self._sync()
            except BaseException as error:  # raised again by ``wait`` in the loop's thread
                self._error = error
            os.write(self._done, b"\0")
