"""The journal's faults as values a caller can catch, each naming the journal and what to do.

Every fault is a :class:`JournalError`, never a raw ``OSError``: a journal written with
another record layout (:class:`JournalLayoutError`), damage before the tail
(:class:`JournalCorruptError`: file, offset, seq; recovery stops there), records the durable
mark proves lost (:class:`JournalLostRecordsError`), a full disk (:class:`JournalFullError`:
the journal is valid up to ``valid_seq``), another live writer (:class:`JournalBusyError`)
and any other refusal of the system (:class:`JournalAccessError`: path and errno). A torn
tail is not an error: it is a crash in the last, never acknowledged append, reported with a
:class:`TornTailWarning` and cut off.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stages.persistence.durable import FULL_DISK_ERRNOS, explain_os_error

if TYPE_CHECKING:
    from stages.persistence.journal_durability import MissingRecords


class JournalError(Exception):
    """Something about a journal is wrong; the message names the journal and what to do."""


class JournalLayoutError(JournalError):
    """The journal was written with another record layout than the one asked for."""


class JournalCorruptError(JournalError):
    """Data before the tail fails its checks; recovery must stop, never skip it."""

    def __init__(self, message: str, path: Path, offset: int, seq: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset
        self.seq = seq


class JournalLostRecordsError(JournalError):
    """The writer's durable mark proves records the journal no longer holds."""

    def __init__(self, message: str, missing: MissingRecords) -> None:
        super().__init__(message)
        self.missing = missing


class JournalFullError(JournalError):
    """The disk is full; the journal is valid up to ``valid_seq`` and the writer is closed."""

    def __init__(self, message: str, valid_seq: int, durable_seq: int) -> None:
        super().__init__(message)
        self.valid_seq = valid_seq
        self.durable_seq = durable_seq


class JournalBusyError(JournalError):
    """Another live process holds the journal's writer lock (``pid`` when it recorded one)."""

    busy = True

    def __init__(self, message: str, directory: Path, pid: int | None) -> None:
        super().__init__(message)
        self.directory = directory
        self.pid = pid


class JournalAccessError(JournalError):
    """The system refused a file operation (read-only, no permission, not a directory...).

    ``path`` is the file or directory, ``errno`` the refusal; the message says what to do.
    """

    def __init__(self, message: str, path: Path, errno_: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno_


class TornTailWarning(UserWarning):
    """The last block of the journal was torn by a crash and has been (or would be) cut off."""


def refusal(message: str, path: Path | str, errno_: int | None) -> JournalError:
    """The ``JournalError`` a refusal of the system becomes: :class:`JournalFullError` for a
    full disk (how far the journal is valid is the writer's to say: -1 here), otherwise
    :class:`JournalAccessError`."""
    if errno_ in FULL_DISK_ERRNOS:
        return JournalFullError(message, -1, -1)
    return JournalAccessError(message, Path(path), errno_)


def access_error(exc: OSError, path: Path | str, doing: str) -> JournalError:
    """The ``JournalError`` an ``OSError`` on a journal file becomes (full disk included)."""
    return refusal(explain_os_error(exc, path, doing), path, exc.errno)
