"""Ordered loads and stores of the 8-byte cursors that publish ring slots across processes.

The ring's correctness rests on one rule (DESIGN §3): the producer's payload stores must be
visible to another core before its cursor store, and a consumer must read the cursor before
the payload (and finish reading the payload before it releases its own cursor). That is a
*release* store and an *acquire* load of the cursor.

* x86-64 (TSO): every store is a release and every load an acquire in hardware; the only
  reordering x86 allows is a later load before an earlier store, which this protocol never
  relies on. Between Python statements the C compiler cannot move the numpy payload copy
  past the cursor store (they are separate calls into other translation units), so a plain
  aligned 8-byte store through a ``memoryview`` cast to ``'q'`` (one ``mov``; aligned 8-byte
  moves are atomic on x86-64) is correct and costs ~30 ns. No fence is emitted.
* Everything else (aarch64, POWER, RISC-V): stores may become visible out of order, so the
  cursor is written with an LLVM ``store atomic ... release`` and read with ``load atomic
  ... acquire`` (``stlr`` / ``ldar`` on aarch64), compiled once by numba (``cache=True``)
  and called with the cursor's address. The ``atomics`` package costs ~4 µs per operation;
  this costs one numba dispatch (~100-200 ns) per cursor operation, i.e. per batch.

``tests/test_fence.py`` checks both the IR (the atomic orderings are emitted) and, where
LLVM has the AArch64 backend, the aarch64 assembly (``stlr`` / ``ldar``).

Set ``TRADEPIPE_FORCE_FENCES=1`` to use the compiled path on x86-64 too (tests do).

**Store -> load order (the park handshake).** Release/acquire is not enough for one place:
a writer stores its cursor and then loads the *parked* flag, while a waiter stores the
flag and then loads the cursor (``sequence``). That is Dekker's pattern and needs a full
store-load barrier on *both* sides -- on x86 too, where a later load may pass an earlier
store still in the store buffer; program order does not prevent it. The writer's side is
the publish hot path, so the barrier is made asymmetric with Linux ``membarrier(2)``
(``MEMBARRIER_CMD_GLOBAL_EXPEDITED``): every process that writes sequences registers once
(``asymmetric_fence_ready``), the writer keeps a plain store and a plain load (only a
compiler barrier, which separate C calls already are), and the waiter -- about to sleep
anyway -- calls ``waiter_fence()``, which makes every running thread of every registered
process execute a full barrier before it returns. The man page's own example is this
pattern: either the writer's load sees the flag or the waiter's re-check sees the cursor.
Where ``membarrier`` is missing (not Linux, kernel < 4.16, a seccomp filter), both sides
use a compiled ``fence seq_cst`` instead (``mfence``/``lock``-prefixed on x86, ``dmb ish``
on aarch64): the writer pays one numba dispatch per publish there.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Callable
from functools import partial

TSO_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})

#: True where the hardware keeps store->store and load->load order (no fence needed).
HARDWARE_ORDERED = platform.machine().lower() in TSO_MACHINES and not os.environ.get(
    "TRADEPIPE_FORCE_FENCES"
)

_compiled: tuple[Callable[[int, int], None], Callable[[int], int]] | None = None
_compiled_fences: tuple[Callable[[], None], Callable[[int, int], None]] | None = None

SYS_MEMBARRIER = {"x86_64": 324, "amd64": 324, "aarch64": 283, "arm64": 283, "i686": 375}
MEMBARRIER_CMD_QUERY = 0
MEMBARRIER_CMD_GLOBAL_EXPEDITED = 1 << 1
MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED = 1 << 2

_membarrier_number = SYS_MEMBARRIER.get(platform.machine().lower())
_membarrier_syscall = None
_registered_pid = 0  # the process that registered (a forked child registers again)


def _membarrier(command: int) -> int:
    global _membarrier_syscall
    if _membarrier_syscall is None:
        libc = ctypes.CDLL(None, use_errno=True)
        _membarrier_syscall = libc.syscall
        _membarrier_syscall.restype = ctypes.c_long
    return _membarrier_syscall(_membarrier_number, command, 0, 0)


def _membarrier_supported() -> bool:
    if not sys.platform.startswith("linux") or _membarrier_number is None:
        return False
    if os.environ.get("TRADEPIPE_NO_MEMBARRIER"):
        return False
    supported = _membarrier(MEMBARRIER_CMD_QUERY)
    needed = MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
    return supported > 0 and supported & needed == needed


#: True where waiters can fence every writer with ``membarrier`` (writers then need none).
MEMBARRIER = _membarrier_supported()


def asymmetric_fence_ready() -> bool:
    """Register this process for the waiters' ``membarrier`` (once per process); True if
    its sequence writes need no fence of their own, False if they must use the compiled one.
    """
    global _registered_pid
    if not MEMBARRIER:
        return False
    pid = os.getpid()
    if _registered_pid != pid:
        if _membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0:
            return False
        _registered_pid = pid
    return True


def waiter_fence() -> None:
    """The waiter's full store-load barrier, ordering both sides of the park handshake.

    With ``membarrier``: on return every running thread of every registered process has
    passed a full barrier, so a writer's plain cursor store and flag load are ordered too.
    Without: a compiled ``fence seq_cst`` here, paired with the writers' fenced stores.
    """
    if MEMBARRIER and _membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0:
        return
    _compile_fences()[0]()


def _compile_fences() -> tuple[Callable[[], None], Callable[[int, int], None]]:
    """Build the numba full fence and release-store-then-full-fence (for hosts without
    ``membarrier``)."""
    global _compiled_fences
    if _compiled_fences is not None:
        return _compiled_fences
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    @intrinsic
    def _fence(typingctx):
        def codegen(context, builder, signature, args):
            builder.fence("seq_cst")
            return context.get_dummy_value()

        return types.void(), codegen

    @intrinsic
    def _store_fenced(typingctx, address, value):
        def codegen(context, builder, signature, args):
            ptr = builder.inttoptr(args[0], ir.PointerType(ir.IntType(64)))
            builder.store_atomic(args[1], ptr, ordering="release", align=8)
            builder.fence("seq_cst")
            return context.get_dummy_value()

        return types.void(types.int64, types.int64), codegen

    @njit("void()", cache=True, nogil=True)
    def full_fence():
        _fence()

    @njit("void(int64, int64)", cache=True, nogil=True)
    def store_fenced(address, value):
        _store_fenced(address, value)

    _compiled_fences = (full_fence, store_fenced)
    return _compiled_fences


def _compile() -> tuple[Callable[[int, int], None], Callable[[int], int]]:
    """Build the numba release-store / acquire-load functions (imported lazily: numba is big)."""
    global _compiled
    if _compiled is not None:
        return _compiled
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    @intrinsic
    def _store_release(typingctx, address, value):
        def codegen(context, builder, signature, args):
            ptr = builder.inttoptr(args[0], ir.PointerType(ir.IntType(64)))
            builder.store_atomic(args[1], ptr, ordering="release", align=8)
            return context.get_dummy_value()

        return types.void(types.int64, types.int64), codegen

    @intrinsic
    def _load_acquire(typingctx, address):
        def codegen(context, builder, signature, args):
            ptr = builder.inttoptr(args[0], ir.PointerType(ir.IntType(64)))
            return builder.load_atomic(ptr, ordering="acquire", align=8)

        return types.int64(types.int64), codegen

    @njit("void(int64, int64)", cache=True, nogil=True)
    def store_release(address, value):
        _store_release(address, value)

    @njit("int64(int64)", cache=True, nogil=True)
    def load_acquire(address):
        return _load_acquire(address)

    _compiled = (store_release, load_acquire)
    return _compiled


def cursor_accessors(
    view: memoryview, address: int, *, ordered: bool | None = None, fenced: bool = False
) -> tuple[Callable[[], int], Callable[[int], None]]:
    """``(load_acquire, store_release)`` callables for the int64 cursor at ``view[0]``.

    ``view`` is a ``memoryview`` cast to ``'q'`` over the cursor's 8 bytes and ``address``
    its address. Both callables are C-level partials (no Python frame per call) on
    hardware-ordered machines, and the compiled atomics elsewhere. ``fenced`` makes the
    store a release store followed by a full fence (the park handshake's writer side where
    ``membarrier`` is unavailable, see the module docstring).
    """
    if fenced:
        load_acquire = _compile()[1]
        store_fenced = _compile_fences()[1]
        return partial(load_acquire, address), partial(store_fenced, address)
    if HARDWARE_ORDERED if ordered is None else ordered:
        return partial(view.__getitem__, 0), partial(view.__setitem__, 0)
    store_release, load_acquire = _compile()
    return partial(load_acquire, address), partial(store_release, address)


def llvm_ir() -> str:
    """The LLVM IR of the compiled accessors and fences (for tests and the curious)."""
    functions = (*_compile(), *_compile_fences())
    return "\n".join(ir for fn in functions for ir in fn.inspect_llvm().values())
