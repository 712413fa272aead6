"""The exceptions a ring raises, so callers can tell waiting problems from layout problems."""

from __future__ import annotations


class RingError(Exception):
    """Base class of every error raised by ``ringbuffer``."""


class LayoutMismatchError(RingError):
    """The segment's header does not match what the attaching process expects."""


class AttachError(RingError):
    """The segment cannot be attached: missing, not a ring, or the role is already taken."""


class WaitTimeoutError(RingError, TimeoutError):
    """A wait reached its timeout before the sequence it waited for became available."""


class AlertedError(RingError):
    """A wait was interrupted by ``Ring.alert()`` (from any process): the stage should stop."""


class EndOfStreamError(RingError):
    """The producer called ``finish()`` and this consumer has read everything it published."""


class PeerDeadError(RingError):
    """The process this side is waiting on is gone (pid dead) or hung (heartbeat stale).

    ``role`` is ``"producer"`` or ``"consumer 'name'"``, ``pid`` the process it was.
    """

    def __init__(self, message: str, role: str, pid: int) -> None:
        super().__init__(message)
        self.role = role
        self.pid = pid
