"""Peer liveness: who holds a ring role (pid, start time, heartbeat), and whether it lives.

Each role of a ring -- the producer, every named consumer -- has a *peer line* in the
segment (``layout``: the producer line, or the pid/start/heartbeat fields of a consumer
slot). A ``PeerLine`` is this process's handle on one of them:

* ``claim()`` takes the role, atomically: an exclusive open-file-description lock
  (``fcntl`` ``F_OFD_SETLK``) on the line's first byte, then pid, start time and heartbeat
  are recorded. The kernel releases the lock when its holder closes it or dies, however it
  dies. Raises ``AttachError`` naming the live holder.
* ``beat(now_ns)`` refreshes the heartbeat (a role's housekeeping, while it waits).
* ``check(stale_after, now_ns)`` is what a side waiting on this peer calls (at most every
  ``PEER_CHECK_NS``): it raises ``PeerDeadError`` if the pid is dead, a zombie or reused,
  or (with ``stale_after``) its heartbeat is older than ``stale_after`` seconds.
* ``leave()`` clears the pid on a clean detach, before the lock is released.

The pid alone does not identify a process (pids are reused), so its start time is stored
beside it and compared. A check is psutil's the first time a line shows a (pid, start
time); once that found the process alive, later checks of the same pair read only
``/proc/<pid>/stat`` (its state and start time in clock ticks, compared with those the
first check saw): psutil's ~0.3 ms a check (two ``/proc`` reads and a ``Process``) made
the peer checks the largest part of an idle stage's CPU.
"""

from __future__ import annotations

import os
import time

import numpy as np
import psutil

from ringbuffer.errors import AttachError, PeerDeadError
from ringbuffer.segments import NO_LOCK, lock_byte

PEER_CHECK_NS = 100_000_000  # how often a waiting side checks that its peers are alive
HOLDER_WAIT_S = 1.0  # how long a refused claimant waits for the holder to write its pid


def process_start_ms(pid: int) -> int:
    """The start time of ``pid`` in ms: with the pid it identifies a process despite pid reuse."""
    return round(psutil.Process(pid).create_time() * 1000)


def peer_state(pid: int, start_ms: int) -> str | None:
    """None if the process ``pid`` started at ``start_ms`` runs, else why it does not."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "exited (zombie)"
        if abs(round(process.create_time() * 1000) - start_ms) > 50:
            return "exited (pid reused)"
    except psutil.NoSuchProcess:
        return "exited"
    except psutil.AccessDenied:
        return None
    return None


def proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of ``pid`` from ``/proc/<pid>/stat``; None if
    there is no such process or no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), fields[19].decode()


class Process:
    """A process named by (pid, start time in ms), whose liveness is checked cheaply.

    ``state()`` is ``peer_state``: None while it runs, else why not. The first check asks
    psutil; once psutil found it alive, a check reads ``/proc/<pid>/stat`` alone (the same
    process has the same start ticks; a reused pid has others): ~10 µs instead of ~0.3 ms.
    """

    __slots__ = ("_ticks", "pid", "start_ms")

    def __init__(self, pid: int, start_ms: int) -> None:
        self.pid = pid
        self.start_ms = start_ms
        self._ticks: str | None = None  # /proc start ticks of the process psutil found alive

    def state(self) -> str | None:
        pid = self.pid
        if self._ticks is not None:
            now = proc_stat(pid)
            if now is None:
                return "exited"
            if now[1] != self._ticks:
                return "exited (pid reused)"
            return "exited (zombie)" if now[0] == "Z" else None
        before = proc_stat(pid)
        why = peer_state(pid, self.start_ms)
        after = proc_stat(pid) if why is None and before is not None else None
        if after is not None and after[1] == before[1]:
            self._ticks = before[1]  # the process psutil just checked
        return why


class PeerLine:
    """One role's peer line in a ring segment: ``role`` (``"producer"`` or
    ``"consumer 'name'"``) of ring ``ring_name``; ``line`` a one-element structured view
    with ``pid``, ``pid_start`` and ``heartbeat_ns`` fields; ``offset`` its byte offset in
    the segment (the byte the role's lock covers)."""

    __slots__ = ("_known", "_line", "offset", "ring_name", "role")

    def __init__(self, ring_name: str, line: np.ndarray, offset: int, role: str) -> None:
        self.ring_name = ring_name
        self._line = line
        self.offset = offset
        self.role = role
        self._known: Process | None = None  # the peer last found alive

    @property
    def pid(self) -> int:
        """The holder's pid (0: nobody holds the role, or it detached cleanly)."""
        return int(self._line[0]["pid"])

    @property
    def heartbeat_ns(self) -> int:
        return int(self._line[0]["heartbeat_ns"])

    def beat(self, now_ns: int) -> None:
        """Refresh the heartbeat (``time.monotonic_ns()``): this role's holder is alive."""
        self._line[0]["heartbeat_ns"] = now_ns

    def claim(self) -> int:
        """Take the role for this process and record it here (pid, start time); refuse with
        ``AttachError`` if a live process holds it. Returns the fd holding the role's lock
        (closing it gives the role back), or ``NO_LOCK``.

        Atomic: of processes attaching at the same moment exactly one wins the lock -- a
        check of the pid field and then a store (the old way) let several see it free. Why
        a lock and not a compare-and-swap of the pid: Python has no CAS on shared memory, a
        compiled one would need the pid *and* its start time swapped as one word, and a lock
        held by a process that dies, however it dies, is released by the kernel, so a
        crashed role can be taken over without guessing whether it lives. The lock is per
        open file, so a second role object in this process is refused too. Without OFD
        locks (not Linux) this falls back to the pid check, which is racy.
        """
        peer = self._line[0]
        fd = lock_byte(self.ring_name, self.offset)
        if fd is None:
            raise AttachError(
                f"ring {self.ring_name!r}: {self.role} is already attached by {self._holder()}"
            )
        me = os.getpid()
        try:
            if fd == NO_LOCK:
                pid = int(peer["pid"])
                if pid and pid != me and peer_state(pid, int(peer["pid_start"])) is None:
                    raise AttachError(
                        f"ring {self.ring_name!r}: {self.role} is already attached by live "
                        f"pid {pid}"
                    )
            peer["pid_start"] = process_start_ms(me)
            peer["heartbeat_ns"] = time.monotonic_ns()
            peer["pid"] = me  # last: a refused claimant takes a live pid here as the holder's
        except BaseException:
            if fd != NO_LOCK:
                os.close(fd)  # give the role back
            raise
        return fd

    def _holder(self) -> str:
        """Who holds a role whose lock was refused: its pid, once the holder (which may
        have won the lock a moment ago) has written it, yielding the core meanwhile."""
        peer = self._line[0]
        deadline = time.monotonic() + HOLDER_WAIT_S
        while True:
            pid = int(peer["pid"])
            if pid and peer_state(pid, int(peer["pid_start"])) is None:
                return f"live pid {pid}"
            if time.monotonic() > deadline:
                return "another process (its pid is not recorded yet)"
            os.sched_yield()

    def leave(self) -> None:
        """Record a clean detach (pid 0); the caller releases the lock afterwards."""
        self._line[0]["pid"] = 0

    def check(self, stale_after: float | None, now_ns: int) -> None:
        """Raise ``PeerDeadError`` if the holder is gone or (with ``stale_after`` seconds)
        silent; a role nobody holds yet is not dead (the waiter waits for it)."""
        peer = self._line[0]
        pid = int(peer["pid"])
        if not pid:
            return  # not attached yet (or detached cleanly): wait for it
        why = self._state(pid, int(peer["pid_start"]))
        if why is None and stale_after is not None:
            silent = (now_ns - int(peer["heartbeat_ns"])) / 1e9
            if silent > stale_after:
                why = f"silent for {silent:.1f} s (heartbeat stale, limit {stale_after} s)"
        if why is not None:
            raise PeerDeadError(
                f"ring {self.ring_name!r}: {self.role} pid {pid} {why}", self.role, pid
            )

    def _state(self, pid: int, start_ms: int) -> str | None:
        """``peer_state``, cheaply once this (pid, start) was found alive (``Process``)."""
        known = self._known
        if known is None or known.pid != pid or known.start_ms != start_ms:
            known = self._known = Process(pid, start_ms)
        return known.state()
