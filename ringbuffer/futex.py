"""Park a waiting process in the kernel until a cursor moves (Linux futex, process-shared).

A consumer with nothing to read, after spinning and yielding, parks on the *wake counter*
of the cursor it waits for (``sequence``): ``FUTEX_WAIT`` sleeps only while the counter's
32-bit low word still holds the value the waiter read before its last check, so a wake-up
that lands between that check and the sleep is never slept through. The cursor's writer
checks a ``parked`` flag after each store and bumps the counter and issues ``FUTEX_WAKE``
only when it is set -- one load per publish otherwise. ``sequence`` explains why the
handshake cannot lose a wake-up, and ``fence`` how its store-load barriers stay off the
publish path.

Every park still has a timeout (milliseconds) so heartbeats and peer checks keep running
while idle; ``wait`` says whether it ran out (an idle parked consumer costs only those
timeouts: well under 1 % of a core).

Elsewhere than Linux, ``AVAILABLE`` is False and waits sleep instead.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import sys
import time

FUTEX_WAIT = 0
FUTEX_WAKE = 1
WAKE_ALL = 0x7FFFFFFF
SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98, "i686": 240, "i386": 240}


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_syscall_number = SYS_FUTEX.get(platform.machine().lower())
AVAILABLE = sys.platform.startswith("linux") and _syscall_number is not None
if AVAILABLE:
    _libc = ctypes.CDLL(None, use_errno=True)
    _syscall = _libc.syscall
    _syscall.restype = ctypes.c_long
#: byte offset of the low 32 bits inside an int64 (futex words are 32-bit)
LOW_WORD_OFFSET = 0 if sys.byteorder == "little" else 4


def wait(address: int, expected: int, timeout_ns: int) -> bool:
    """Sleep while the 32-bit word at ``address`` equals ``expected`` (low 32 bits), at most
    ``timeout_ns``. False if the timeout ran out; True on a wake-up, when the word already
    differed, or on a signal."""
    if not AVAILABLE:
        time.sleep(timeout_ns / 1e9)
        return False
    timeout = _Timespec(timeout_ns // 1_000_000_000, timeout_ns % 1_000_000_000)
    result = _syscall(
        _syscall_number,
        ctypes.c_void_p(address + LOW_WORD_OFFSET),
        FUTEX_WAIT,
        ctypes.c_uint32(expected & 0xFFFFFFFF),
        ctypes.byref(timeout),
        None,
        0,
    )
    return result == 0 or ctypes.get_errno() != errno.ETIMEDOUT


def wake(address: int, count: int = WAKE_ALL) -> None:
    """Wake up to ``count`` processes parked on the word at ``address``."""
    if not AVAILABLE:
        return
    _syscall(
        _syscall_number,
        ctypes.c_void_p(address + LOW_WORD_OFFSET),
        FUTEX_WAKE,
        count,
        None,
        None,
        0,
    )
