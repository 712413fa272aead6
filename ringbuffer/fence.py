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
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from functools import partial

TSO_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})

#: True where the hardware keeps store->store and load->load order (no fence needed).
HARDWARE_ORDERED = platform.machine().lower() in TSO_MACHINES and not os.environ.get(
    "TRADEPIPE_FORCE_FENCES"
)

_compiled: tuple[Callable[[int, int], None], Callable[[int], int]] | None = None


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
    view: memoryview, address: int, *, ordered: bool | None = None
) -> tuple[Callable[[], int], Callable[[int], None]]:
    """``(load_acquire, store_release)`` callables for the int64 cursor at ``view[0]``.

    ``view`` is a ``memoryview`` cast to ``'q'`` over the cursor's 8 bytes and ``address``
    its address. Both callables are C-level partials (no Python frame per call) on
    hardware-ordered machines, and the compiled atomics elsewhere.
    """
    if HARDWARE_ORDERED if ordered is None else ordered:
        return partial(view.__getitem__, 0), partial(view.__setitem__, 0)
    store_release, load_acquire = _compile()
    return partial(load_acquire, address), partial(store_release, address)


def llvm_ir() -> str:
    """The LLVM IR of the compiled accessors (for tests and the curious)."""
    store_release, load_acquire = _compile()
    return "\n".join(
        ir for fn in (store_release, load_acquire) for ir in fn.inspect_llvm().values()
    )
