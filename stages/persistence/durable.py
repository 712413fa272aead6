"""The file-system steps the journal and the snapshots share: durable changes, a directory
made, and a refusal explained.

A new, renamed or deleted file survives a crash only once its directory entry is on disk:
fsyncing the file is not enough, the directory itself must be fsynced too. A refusal of
the system (a full disk, a read-only file system, no permission, a file in the way) is
turned into one line for a person, naming the path, why and what to do; never a raw
``OSError``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

#: The errnos that mean "no space": freeing space is the fix.
FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def fsync_dir(directory: Path) -> None:
    """fsync ``directory`` so the entries created, renamed or removed in it are durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def explain_os_error(exc: OSError, path: Path | str, doing: str, kind: str = "journal") -> str:
    """One line for a person: what failed on which path, why, and what to do about it."""
    code = exc.errno
    why = exc.strerror or str(exc)
    if code in FULL_DISK_ERRNOS:
        fix = "free space on that file system (or move the directory), then start again"
    elif code == errno.EROFS:
        fix = f"the file system is read-only: put the {kind} on a writable one"
    elif code in (errno.EACCES, errno.EPERM):
        fix = f"no permission: run as the {kind}'s owner or fix its permissions"
    elif code == errno.ENOTDIR:
        fix = f"a file is in the way of the {kind} directory: move it, or name another directory"
    elif code == errno.EISDIR:
        fix = f"a directory has the name of a {kind} file: move it out of the way"
    elif code == errno.ENOENT:
        fix = (
            "it does not exist and cannot be made there (a virtual file system such as "
            "/proc?): name a directory on a writable file system"
        )
    else:
        fix = f"check the {kind} directory and the file system"
    return f"{kind} {path}: {doing} failed ({why}); {fix}"


def create_directory(
    directory: Path,
    *,
    named: str,
    kind: str,
    doing: str,
    error: Callable[[str, Path, int | None], Exception],
) -> None:
    """Make ``directory`` (and its parents) unless it is there.

    A file in its place, or a refusal of the system, raises ``error(message, path, errno)``:
    the message says ``{named} {directory} is a file ...`` or explains the refusal
    (:func:`explain_os_error` with ``kind`` and ``doing``).
    """
    if directory.exists() and not directory.is_dir():
        raise error(
            f"{named} {directory} is a file, not a directory: move it, or name another directory",
            directory,
            errno.ENOTDIR,
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(explain_os_error(exc, directory, doing, kind), directory, exc.errno) from None
