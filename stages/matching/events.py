"""The matching core's output: one writer for every event record, and BOOK_TOP changes.

Every event is written by ``write_event``, which composes each of the record's eight int64
words from named fields (``stages.record_words``) and stores it whole: one store per word,
pad bytes zeroed, nothing of the buffer's old content read.
"""

from __future__ import annotations

from typing import NamedTuple

from numba import typeof, types

from stages.kernel_codes import EV_BOOK_TOP, R_OK
from stages.record_words import (
    E_ACCOUNT,
    E_DT_MATCH,
    E_FLAGS,
    E_KIND,
    E_ORDER_ID,
    E_OTHER_ID,
    E_PRICE,
    E_QTY,
    E_REASON,
    E_SEQ,
    E_SIDE,
    E_SYMBOL,
    E_TS_INGEST,
    WORDS,
    bits,
    put_word,
)

from .jit import njit
from .layout import B_SYMBOL
from .levels import top

#: ``dt_match`` saturates here: the largest value of its field
DT_MATCH_MAX = E_DT_MATCH[2]

# write_event stores these words whole, the fields of each ORed: they must be all the words
# of the record, each field in the word it is written to
_EVENT_WORDS = (
    (E_SEQ,),
    (E_TS_INGEST,),
    (E_ORDER_ID,),
    (E_OTHER_ID,),
    (E_PRICE,),
    (E_QTY,),
    (E_DT_MATCH, E_ACCOUNT),
    (E_SYMBOL, E_KIND, E_SIDE, E_REASON, E_FLAGS),
)
if sorted(fields[0][0] for fields in _EVENT_WORDS) != list(range(WORDS)) or any(
    field[0] != fields[0][0] for fields in _EVENT_WORDS for field in fields
):  # pragma: no cover - only a change of stages.records.EVENT_DTYPE gets here
    raise ImportError(
        "stages.matching.events.write_event no longer matches EVENT_DTYPE's words: "
        f"{_EVENT_WORDS} (word, shift, mask); group its fields by their word again"
    )


#: ``save_tops`` keeps (price, qty, count) per side: this many ints of scratch per book
TOPS_PER_BOOK = 6


class Stamp(NamedTuple):
    """What every event of one command copies from it (``docs/matching.md``)."""

    seq: int
    ts_ingest: int
    dt_match: int


@njit(inline="always")
def dt_match(t0, ts_ingest):
    """``t0 - ts_ingest`` within the field's range, 0 when the command has no time stamp."""
    if ts_ingest == 0:
        return 0
    dt = t0 - ts_ingest
    if dt < 0:
        return 0
    if dt > DT_MATCH_MAX:
        return DT_MATCH_MAX
    return dt


#: (ew, pos, stamp, order_id, other_id, price, qty, account, symbol, kind, side, reason, flags)
_WRITE_EVENT = types.int64(
    types.int64[:, ::1], types.int64, typeof(Stamp(0, 0, 0)), *[types.int64] * 10
)


@njit(signature=_WRITE_EVENT)
def write_event(
    ew, pos, stamp, order_id, other_id, price, qty, account, symbol, kind, side, reason, flags
):
    """Write one event record at ``ew[pos]`` (an ``event_words`` view); return ``pos + 1``.

    Compiled once, for int64 arguments: called with codes as constants from ~30 places, it
    would otherwise be compiled (or IR-inlined, with its 21 field helpers) at each of them,
    tripling the cold compile time. LLVM inlines it into its callers all the same.
    """
    put_word(ew, pos, E_SEQ, bits(E_SEQ, stamp.seq))
    put_word(ew, pos, E_TS_INGEST, bits(E_TS_INGEST, stamp.ts_ingest))
    put_word(ew, pos, E_ORDER_ID, bits(E_ORDER_ID, order_id))
    put_word(ew, pos, E_OTHER_ID, bits(E_OTHER_ID, other_id))
    put_word(ew, pos, E_PRICE, bits(E_PRICE, price))
    put_word(ew, pos, E_QTY, bits(E_QTY, qty))
    put_word(ew, pos, E_DT_MATCH, bits(E_DT_MATCH, stamp.dt_match) | bits(E_ACCOUNT, account))
    put_word(
        ew,
        pos,
        E_SYMBOL,
        bits(E_SYMBOL, symbol)
        | bits(E_KIND, kind)
        | bits(E_SIDE, side)
        | bits(E_REASON, reason)
        | bits(E_FLAGS, flags),
    )
    return pos + 1


@njit(inline="always")
def save_tops(levels, b, into, at):
    """Keep (price, qty, count) of both sides' best levels of book ``b`` at ``into[at:]``
    (TOPS_PER_BOOK ints)."""
    for side in range(2):
        p, q, c = top(levels, b, side)
        into[at + 3 * side] = p
        into[at + 3 * side + 1] = q
        into[at + 3 * side + 2] = c


@njit(inline="always")
def write_top_changes(ew, pos, stamp, levels, b, before):
    """BOOK_TOP for each side of book ``b`` whose (price, qty, count) differs from
    ``before`` (what ``save_tops`` kept); return the next event slot."""
    symbol = levels.books[b, B_SYMBOL]
    for side in range(2):
        p, q, c = top(levels, b, side)
        if p != before[3 * side] or q != before[3 * side + 1] or c != before[3 * side + 2]:
            pos = write_event(ew, pos, stamp, 0, c, p, q, 0, symbol, EV_BOOK_TOP, side, R_OK, 0)
    return pos
