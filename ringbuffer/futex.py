"""Park a waiting process in the kernel until a cursor moves (Linux futex, process-shared).

A consumer with nothing to read, after spinning and yielding, parks on the 32-bit low word
of the cursor it waits for: ``FUTEX_WAIT`` sleeps only while that word still holds the
value the waiter last saw, so a publish that lands between the last check and the sleep
is never slept through. Writers check a ``parked`` flag beside the cursor after each store
and issue ``FUTEX_WAKE`` only when someone is parked — one load per publish otherwise.

The flag handshake is not fenced (x86 may order the writer's flag load before its cursor
store), so a wake-up can very rarely be missed; every park therefore has a timeout
(milliseconds), which bounds the cost of a miss and keeps heartbeats flowing. An idle
parked consumer costs only those timeouts: well under 1 % of a core.

Elsewhere than Linux, ``AVAILABLE`` is False and waits sleep instead.
"""

from __future__ import annotations

import ctypes
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


def wait(address: int, expected: int, timeout_ns: int) -> None:
    """Sleep while the 32-bit word at ``address`` equals ``expected`` (low 32 bits), at most
    ``timeout_ns``; returns early on a wake-up, a change of the word, or a signal."""
    if not AVAILABLE:
        time.sleep(timeout_ns / 1e9)
        return
    timeout = _Timespec(timeout_ns // 1_000_000_000, timeout_ns % 1_000_000_000)
    _syscall(
        _syscall_number,
        ctypes.c_void_p(address + LOW_WORD_OFFSET),
        FUTEX_WAIT,
        ctypes.c_uint32(expected & 0xFFFFFFFF),
        ctypes.byref(timeout),
        None,
        0,
    )


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
