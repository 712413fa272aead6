"""``Doorbell``: a ring's wake-up as a file descriptor, for a consumer that sleeps in a poll.

A consumer that also serves sockets (the order gateway: a ZeroMQ ROUTER and a ring of
released answers) cannot sleep on the ring's futex: it must sleep in one ``poll`` over
everything it serves. The doorbell is a named pipe (FIFO) both processes open: the
producer's cursor writes a byte into it whenever it wakes its parked waiters, and the
consumer polls the pipe's read end with its sockets. The handshake is the futex's
(``sequence``), with the pipe in the futex's place::

    P, before sleeping:  drain the pipe; Consumer.arm() (raise the parked flag, fence,
                         re-check the cursor): records already there -> do not sleep;
                         else poll(sockets + pipe)
    W, on publish:       store cursor; load parked; if set: clear it, bump the counter,
                         FUTEX_WAKE, write one byte

Either W's load sees P's flag (and the byte makes P's poll return, however late P polls:
a pipe stays readable until drained) or P's re-check sees W's cursor. A byte left over
from an earlier wake only makes one poll return at once. A full pipe already holds a
wake-up, so a write that would block is skipped.

The creator (the pipeline's topology, beside the ring) makes the FIFO (``create``,
mode 0600) and removes it (``unlink``); both sides ``open`` it read-write and
non-blocking, which on Linux never blocks and never fails for want of the other end.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

#: bytes read per ``drain`` call (a wake-up is one byte; the pipe holds at most 64 KiB)
DRAIN_CHUNK = 4096


class Doorbell:
    """One end of a ring's doorbell pipe (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            raise FileNotFoundError(f"doorbell {str(self.path)!r} does not exist") from None
        if not stat.S_ISFIFO(mode):
            raise ValueError(f"doorbell {str(self.path)!r} is not a named pipe")
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    @staticmethod
    def create(path: str | os.PathLike[str]) -> Path:
        """Make the pipe (0600); refuses a path that exists (``FileExistsError`` naming it:
        ``os.mkfifo``'s own does not). Returns the path."""
        try:
            os.mkfifo(path, 0o600)
        except FileExistsError:
            text = "File exists: a doorbell pipe cannot be made there"
            raise FileExistsError(errno.EEXIST, text, os.fspath(path)) from None
        return Path(path)

    @staticmethod
    def unlink(path: str | os.PathLike[str]) -> None:
        """Remove a pipe ``create`` made (nothing if it is gone already)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def fileno(self) -> int:
        """The descriptor to poll for reading (a wake-up is pending while it is readable)."""
        return self._fd

    def ring(self) -> None:
        """Signal a wake-up (the writer of the cursor, from ``Sequence.wake``)."""
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending already
            os.write(self._fd, b"\x01")

    def drain(self) -> int:
        """Consume every pending wake-up (the consumer, before it re-arms); how many."""
        drained = 0
        while True:
            try:
                chunk = os.read(self._fd, DRAIN_CHUNK)
            except BlockingIOError:
                return drained
            drained += len(chunk)
            if len(chunk) < DRAIN_CHUNK:
                return drained

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Doorbell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
