"""The two records as compiled kernels see them: eight int64 words, each field named.

Compiled kernels take a batch as an ``int64[n, 8]`` array (``command_words`` /
``event_words``: one view sharing the batch's memory, built once per batch) and read and
write fields through the names here instead of bare column numbers and shifts. Every name
is *derived* from the dtypes in ``stages.records`` at import, so a layout change there
moves every kernel with it; ``tests/test_record_words.py`` checks each field against a
numpy write of the same record.

A field is a ``(word, shift, mask)`` tuple of plain ints, which numba folds into the code
as constants: ``get(words, i, C_KIND)`` compiles to one load, one shift and one and.
Whole-word fields (seq, prices, quantities, ids) have shift 0 and mask -1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stages.records import COMMAND_DTYPE, EVENT_DTYPE, RECORD_SIZE

WORDS = RECORD_SIZE // 8  # int64 words per record

Field = tuple[int, int, int]  # (word index, bit shift inside the word, mask after shifting)


def field_of(dtype: np.dtype, name: str) -> Field:
    """Where ``name`` of ``dtype`` sits in the record's little-endian int64 words."""
    base, offset = dtype.fields[name][:2]
    if base.itemsize == 8:
        if offset % 8:
            raise ValueError(f"{name}: an 8-byte field must be word aligned (offset {offset})")
        return offset // 8, 0, -1
    word, byte = divmod(offset, 8)
    if byte + base.itemsize > 8:
        raise ValueError(f"{name}: a packed field may not straddle two words (offset {offset})")
    return word, byte * 8, (1 << (8 * base.itemsize)) - 1


def _fields(dtype: np.dtype) -> dict[str, Field]:
    return {name: field_of(dtype, name) for name in dtype.names if not name.startswith("_")}


COMMAND_FIELDS = _fields(COMMAND_DTYPE)
EVENT_FIELDS = _fields(EVENT_DTYPE)

# --- commands (stages.records.COMMAND_DTYPE) ------------------------------------------------
C_SEQ = COMMAND_FIELDS["seq"]
C_TS_INGEST = COMMAND_FIELDS["ts_ingest"]
C_TS_RISK = COMMAND_FIELDS["ts_risk"]
C_ORDER_ID = COMMAND_FIELDS["order_id"]
C_PRICE = COMMAND_FIELDS["price"]
C_QTY = COMMAND_FIELDS["qty"]
C_ACCOUNT = COMMAND_FIELDS["account"]
C_SYMBOL = COMMAND_FIELDS["symbol"]
C_KIND = COMMAND_FIELDS["kind"]
C_SIDE = COMMAND_FIELDS["side"]
C_ORDER_TYPE = COMMAND_FIELDS["order_type"]
C_TIF = COMMAND_FIELDS["tif"]
C_STP = COMMAND_FIELDS["stp"]
C_FLAGS = COMMAND_FIELDS["flags"]
C_REASON = COMMAND_FIELDS["reason"]

# --- events (stages.records.EVENT_DTYPE) ----------------------------------------------------
E_SEQ = EVENT_FIELDS["seq"]
E_TS_INGEST = EVENT_FIELDS["ts_ingest"]
E_ORDER_ID = EVENT_FIELDS["order_id"]
E_OTHER_ID = EVENT_FIELDS["other_id"]
E_PRICE = EVENT_FIELDS["price"]
E_QTY = EVENT_FIELDS["qty"]
E_DT_MATCH = EVENT_FIELDS["dt_match"]
E_ACCOUNT = EVENT_FIELDS["account"]
E_SYMBOL = EVENT_FIELDS["symbol"]
E_KIND = EVENT_FIELDS["kind"]
E_SIDE = EVENT_FIELDS["side"]
E_REASON = EVENT_FIELDS["reason"]
E_FLAGS = EVENT_FIELDS["flags"]


def _signed(value: int) -> int:
    """``value`` (0..2**64-1) as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


@njit(cache=True, inline="always", _nrt=False)
def get(words, i, field):
    """Field ``field`` of record ``i`` of a word view."""
    return (words[i, field[0]] >> field[1]) & field[2]


@njit(cache=True, inline="always", _nrt=False)
def unpack(word, field):
    """Field ``field`` from ``word``, a value already loaded from the field's word."""
    return (word >> field[1]) & field[2]


@njit(cache=True, inline="always", _nrt=False)
def bits(field, value):
    """``value`` placed at ``field``'s bits: OR several into one word to write it whole."""
    return (value & field[2]) << field[1]


@njit(cache=True, inline="always", _nrt=False)
def put(words, i, field, value):
    """Overwrite field ``field`` of record ``i``, leaving the rest of its word as it was."""
    keep = ~(field[2] << field[1])
    words[i, field[0]] = (words[i, field[0]] & keep) | ((value & field[2]) << field[1])


@njit(cache=True, inline="always", _nrt=False)
def put_word(words, i, field, word):
    """Store ``word`` (its fields composed with ``bits`` and ORed) as the whole word of
    record ``i`` that holds ``field``: one store, nothing of the old word read or kept."""
    words[i, field[0]] = word


def _check_words(batch: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    if (batch.dtype is not dtype and batch.dtype != dtype) or batch.ndim != 1:
        raise TypeError(
            f"{what} batch has dtype {batch.dtype} and {batch.ndim} dimension(s): expected a "
            f"1-d array of stages.records.{'COMMAND' if what == 'commands' else 'EVENT'}_DTYPE"
        )
    if not batch.flags.c_contiguous:
        raise ValueError(
            f"{what} batch is not contiguous (a strided view?): pass a contiguous slice or "
            "np.ascontiguousarray(batch), and copy the results back if you need them there"
        )
    # from the buffer, not .view(): numpy checks a view of a structured dtype in Python
    # (~0.7 µs), which every per-batch path would pay for nothing
    return np.ndarray((len(batch), WORDS), np.int64, batch)


def command_words(commands: np.ndarray) -> np.ndarray:
    """``commands`` (1-d, contiguous COMMAND_DTYPE) as ``int64[n, 8]`` sharing its memory:
    kernels write through it (reasons, stamps) into the batch itself."""
    return _check_words(commands, COMMAND_DTYPE, "commands")


def event_words(events: np.ndarray) -> np.ndarray:
    """``events`` (1-d, contiguous EVENT_DTYPE) as ``int64[n, 8]`` sharing its memory."""
    return _check_words(events, EVENT_DTYPE, "events")
