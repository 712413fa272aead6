"""The journal's writer lock: one writer, or one repairer, per journal directory.

An ``flock`` on ``writer.lock`` in the journal directory, taken without waiting. The
operating system releases it at any death of its holder, even ``SIGKILL``, so a stale lock
never blocks a restart; the holder writes its pid into the file so that a refusal can name
it. Everything that changes a journal holds it: the writer for its whole life, and a reader
only while it cuts off a torn tail (so ``repair=True`` is refused while a writer runs).
Readers that only read take no lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from stages.persistence.journal_errors import JournalBusyError, access_error

LOCK_NAME = "writer.lock"


def lock_journal(directory: Path, purpose: str) -> int:
    """Take the journal's exclusive lock (one writer, or one repairer) or say who holds it.

    Returns the lock file's descriptor; closing it releases the lock (so does any death of
    the holder, even SIGKILL). The holder's pid is written into the lock file, so a refusal
    can name it. Raises :class:`JournalBusyError` when a live process holds it, and
    :class:`JournalAccessError` when the lock file cannot be opened (read-only file system,
    no permission, the directory is a file or missing).
    """
    directory = Path(directory)
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise access_error(exc, directory, f"opening its writer lock for {purpose}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        pid = int(text) if text.isdigit() else None
        raise JournalBusyError(
            f"journal {directory} is open for writing by pid {pid if pid else '(unknown)'}; "
            f"{purpose} needs it to be the only one: stop that process first",
            directory,
            pid,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
