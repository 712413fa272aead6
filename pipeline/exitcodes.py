"""The exit statuses every ``tradepipe`` command uses, and the one error a command raises.

A command that cannot do what was asked raises ``CommandError(message, status)``; the
entry point (``pipeline.cli.main``) prints it as one line, ``tradepipe COMMAND: message``,
on stderr and exits with ``status``. No command prints a traceback: anything else that
escapes is a bug, and ``main`` still reports it as one line naming the exception.

| status | meaning | what to do |
|---|---|---|
| 0 | done; the answer printed is right | — |
| 1 | the data is damaged or a check failed (corrupt journal, state hashes differ, malformed feed) | inspect the data (``journal verify``) |
| 2 | bad usage: an option, a config value or a path on the command line is wrong | fix the command or the config |
| 3 | ``journal verify``: a torn tail (the last, never-acknowledged append) | ``journal verify --repair`` |
| 4 | the system refused: the directory is in use by a live run, disk full, read-only, no permission | free the resource, then retry |
| 130 | interrupted (Ctrl-C); the message says how far the journal is durable | — |
| 141 | the reader of standard output went away (``| head``); nothing more is printed | — |
"""

from __future__ import annotations

import enum
import errno


class ExitStatus(enum.IntEnum):
    OK = 0
    FAILED = 1  # the data is damaged or a check failed
    USAGE = 2  # bad option, config value or path
    TORN = 3  # journal verify: a torn tail
    REFUSED = 4  # busy, disk full, read-only, permission
    INTERRUPTED = 130
    PIPE_CLOSED = 141  # 128 + SIGPIPE, as ``yes | head`` ends: the reader went away


class CommandError(Exception):
    """What a command could not do, for a person: one line naming the thing and the fix."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.USAGE) -> None:
        super().__init__(message)
        self.status = status


#: What the system refuses (exit 4: free the resource, then retry), as opposed to files
#: that are not what they should be (exit 1).
REFUSED_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
)


def os_error_status(error: OSError) -> ExitStatus:
    """REFUSED for a full disk, a read-only file system or a missing permission; else FAILED."""
    return ExitStatus.REFUSED if error.errno in REFUSED_ERRNOS else ExitStatus.FAILED
