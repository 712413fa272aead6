"""``numba.njit`` as every function of the matching core is compiled: cached, without NRT.

Nothing in the core allocates: every function only indexes arrays owned by the Python
wrapper (``engine.py``), which keeps them alive for the whole call. Compiled without the
runtime's reference counting (``_nrt=False``), passing a dozen arrays to a helper costs no
atomic incref/decref pairs, which measured ~35 % of the per-command time.

``inline="always"`` inlines at the numba IR level (small per-command helpers, so LLVM keeps
the state in registers across them); the default leaves a function a call of its own, which
LLVM may still inline (numba links every callee's IR into its caller).
"""

from __future__ import annotations

from numba import njit as _numba_njit


def njit(inline: str = "never", signature=None):
    """Decorator: ``numba.njit(cache=True, _nrt=False, inline=inline)``.

    With a ``signature`` the function is compiled for it alone (eagerly, then from the
    cache), and every call converts its arguments to it. Without one, numba compiles a
    version per distinct *constant* argument of a call site (``Literal[int](4)``), which for
    a helper called with many different codes multiplies the cold compile time.
    """
    if signature is None:
        return _numba_njit(cache=True, _nrt=False, inline=inline)
    return _numba_njit(signature, cache=True, _nrt=False, inline=inline)
