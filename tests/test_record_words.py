"""``stages.record_words`` and ``stages.kernel_codes`` agree with ``stages.records``.

Every named field is read and written through the compiled helpers and compared with
numpy's own structured access to the same record, with values that fill every bit of the
field; every member of every enum has its kernel constant, with its value.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from stages import kernel_codes, record_words
from stages.record_words import COMMAND_FIELDS, EVENT_FIELDS, command_words, event_words
from stages.records import COMMAND_DTYPE, EVENT_DTYPE


@njit(cache=False)
def _get(words, i, field):
    return record_words.get(words, i, field)


@njit(cache=False)
def _put(words, i, field, value):
    record_words.put(words, i, field, value)


@njit(cache=False)
def _bits(field, value):
    return record_words.bits(field, value)


def _extremes(dtype: np.dtype, name: str) -> list[int]:
    info = np.iinfo(dtype.fields[name][0])
    return [int(info.min), int(info.max), 1, int(info.max) // 3]


CASES = [(COMMAND_DTYPE, COMMAND_FIELDS, command_words), (EVENT_DTYPE, EVENT_FIELDS, event_words)]


@pytest.mark.parametrize(("dtype", "fields", "words_of"), CASES, ids=["command", "event"])
def test_every_field_reads_and_writes_what_numpy_does(dtype, fields, words_of):
    assert set(fields) == {name for name in dtype.names if not name.startswith("_")}
    rng = np.random.default_rng(7)
    for name, field in fields.items():
        for value in _extremes(dtype, name):
            batch = np.frombuffer(rng.bytes(dtype.itemsize * 3), dtype=dtype).copy()
            others = {n: batch[n].copy() for n in fields if n != name}
            words = words_of(batch)
            batch[name][1] = value
            assert _get(words, 1, field) == value, name
            batch[name][1] = 0
            _put(words, 1, field, value)
            assert int(batch[name][1]) == value, name
            for other, before in others.items():  # put touched nothing else
                assert np.array_equal(batch[other], before), (name, other)


@pytest.mark.parametrize(("dtype", "fields", "words_of"), CASES, ids=["command", "event"])
def test_bits_of_the_fields_of_one_word_compose_that_word(dtype, fields, words_of):
    batch = np.zeros(1, dtype)
    words = words_of(batch)
    by_word: dict[int, list[str]] = {}
    for name, field in fields.items():
        by_word.setdefault(field[0], []).append(name)
    for word, names in by_word.items():
        value = 0
        for k, name in enumerate(names):
            batch[name][0] = k + 1
            value |= _bits(fields[name], k + 1)
        assert words[0, word] == value, names


def test_a_word_view_shares_the_batch_and_refuses_what_is_not_a_batch():
    batch = np.zeros(4, COMMAND_DTYPE)
    command_words(batch)[2, record_words.C_QTY[0]] = 9
    assert batch["qty"][2] == 9
    with pytest.raises(TypeError, match="COMMAND_DTYPE"):
        command_words(np.zeros(4, EVENT_DTYPE))
    with pytest.raises(ValueError, match="not contiguous"):
        command_words(batch[::2])


def test_every_enum_member_has_its_kernel_constant():
    expected = {
        f"{prefix}_{member.name}": int(member)
        for enum, prefix in kernel_codes.PREFIXES.items()
        for member in enum
    }
    found = {name: getattr(kernel_codes, name, None) for name in expected}
    assert found == expected
