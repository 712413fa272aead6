"""The matching core's entry point: ``run_batch`` reads each command and calls its handler.

A price-time book per symbol lives in preallocated int64 arrays (``layout.py``): price
levels (``levels.py``), an order pool (``order_pool.py``), the match loop (``match.py``),
the symbol rules (``symbol_rules.py``) and one handler per command kind (``commands.py``),
all ``numba`` compiled without the runtime's reference counting (``jit.py``). The
semantics are documented in ``docs/matching.md`` and held by the tests against the
pure-Python reference book (``tests/reference_book.py``).
"""

# ruff: noqa: SIM109  (explicit branches compile to plain compares in numba)

from __future__ import annotations

from stages.kernel_codes import (
    CMD_CANCEL,
    CMD_DEPOSIT,
    CMD_HALT,
    CMD_KILL_SWITCH,
    CMD_KILL_SWITCH_RELEASE,
    CMD_NEW,
    CMD_REDUCE,
    CMD_REPLACE,
    CMD_RESUME,
    CMD_WITHDRAW,
    R_INVALID_COMMAND,
    R_OK,
)

from . import commands
from .capacity import shortage
from .events import Stamp, dt_match
from .jit import njit
from .layout import ST_DONE, OrderPool, PriceLevels


@njit()
def run_batch(
    cw, start, ew, pos, t0, emit_top, book_of_symbol, books, side_keys, side_levels,
    level_rows, level_free, order_rows, order_free, order_index, counters, tops,
):  # fmt: skip
    """HOT. Process commands ``cw[start:]`` in order, writing events at ``ew[pos:]``.

    ``cw`` / ``ew`` are the batches as ``stages.record_words.command_words`` /
    ``event_words``; the state arrays are those of ``PriceLevels`` and ``OrderPool``, and
    ``book_of_symbol`` maps a symbol id to its book row (-1: not configured); ``tops`` is
    scratch of TOPS_PER_BOOK ints per book. Returns ``(next command, next event slot,
    status, events needed)``: status ST_DONE when the batch is finished, otherwise what
    must grow before resuming at ``next command`` (nothing of that command has been
    applied). Must not allocate or call Python per record: every command is a few array
    reads and writes.
    """
    levels = PriceLevels(books, side_keys, side_levels, level_rows, level_free, counters)
    pool = OrderPool(order_rows, order_free, order_index, counters)
    i = start
    while i < cw.shape[0]:
        command = commands.read_command(cw, i)
        status, need = shortage(command, ew.shape[0] - pos, book_of_symbol, levels, pool)
        if status != ST_DONE:
            return i, pos, status, need
        stamp = Stamp(command.seq, command.ts_ingest, dt_match(t0, command.ts_ingest))
        kind = command.kind
        b = book_of_symbol[command.symbol]
        reason = command.reason  # != R_OK: refused upstream, only reported here
        if reason == R_OK:
            if kind == CMD_NEW:
                pos, reason = commands.new_order(command, b, ew, pos, stamp, levels, pool, tops,
                                                 emit_top)  # fmt: skip
            elif kind == CMD_CANCEL:
                pos, reason = commands.cancel(command, ew, pos, stamp, levels, pool, tops,
                                              emit_top)  # fmt: skip
            elif kind == CMD_REDUCE:
                pos, reason = commands.reduce(command, ew, pos, stamp, levels, pool, tops,
                                              emit_top)  # fmt: skip
            elif kind == CMD_REPLACE:
                pos, reason = commands.replace(command, ew, pos, stamp, levels, pool, tops,
                                               emit_top)  # fmt: skip
            elif kind == CMD_HALT or kind == CMD_RESUME:
                pos, reason = commands.halt_or_resume(command, b, ew, pos, stamp, levels)
            elif kind == CMD_KILL_SWITCH:
                pos, reason = commands.kill_switch(command, ew, pos, stamp, levels, pool, tops,
                                                   emit_top)  # fmt: skip
            elif kind == CMD_KILL_SWITCH_RELEASE:
                pos, reason = commands.kill_switch_release(command, ew, pos, stamp)
            elif kind == CMD_DEPOSIT or kind == CMD_WITHDRAW:
                pos, reason = commands.deposit_or_withdraw(command, ew, pos, stamp)
            else:
                reason = R_INVALID_COMMAND
        if reason != R_OK:  # one REJECTED event; the handler touched nothing
            pos = commands.reject(command, ew, pos, stamp, reason)
        i += 1
    return i, pos, ST_DONE, 0
