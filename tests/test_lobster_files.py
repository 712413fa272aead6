"""LOBSTER CSV reading and writing: exact values, line endings, errors naming line and offset."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.ingest import lobster
from tests.feedwriters import lobster_book_row, lobster_message_rows


def test_message_rows_parse_exactly(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        lobster_message_rows(
            [
                ("34200.004241176", 1, 16113575, 18, 5853300, 1),
                ("34200.1", 3, 16113575, 18, 5853300, -1),
                ("34201", 7, 0, 0, -1, -1),
            ]
        )
    )
    rows = lobster.read_messages(path)
    assert rows.dtype == lobster.MESSAGE_DTYPE
    assert list(rows["time_ns"]) == [34200_004241176, 34200_100000000, 34201_000000000]
    assert list(rows["type"]) == [1, 3, 7]
    assert list(rows["order_id"]) == [16113575, 16113575, 0]
    assert list(rows["price"]) == [5853300, 5853300, -1]
    assert list(rows["direction"]) == [1, -1, -1]


def test_crlf_and_missing_final_newline(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"1.5,1,2,3,4,1\r\n2.25,2,2,1,4,1")
    rows = lobster.read_messages(path)
    assert list(rows["time_ns"]) == [1_500_000_000, 2_250_000_000]
    assert list(rows["size"]) == [3, 1]


@pytest.mark.parametrize(
    ("text", "line", "offset", "problem"),
    [
        ("1.0,1,2,3,4,1\n1.0,1,2,3,4\n", 2, 25, "too few columns"),
        ("1.0,1,2,3,4,1,9\n", 1, 13, "too many columns"),
        ("1.0,1,x,3,4,1\n", 1, 6, "not a number: 'x' (OrderID)"),
        ("1.0,1,,3,4,1\n", 1, 6, "empty field (OrderID)"),
        ("1.0,1,2;3,4,1\n", 1, 7, "unexpected character"),
    ],
)
def test_malformed_rows_name_line_and_offset(tmp_path, text, line, offset, problem) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(lobster.LobsterFormatError) as info:
        lobster.read_messages(path)
    assert (info.value.line, info.value.offset, info.value.problem) == (line, offset, problem)
    assert "Time,Type,OrderID,Size,Price,Direction" in str(info.value)


@pytest.mark.parametrize(
    ("row", "problem", "expected"),
    [
        # 20 digits wrapped int64 and replayed as another order
        ("1.0,1,2,99999999999999999999,4,1", "Size '99999999999999999999' is out of range",
         "Size in 0..34359738367 (the matching engine's largest order quantity, max_qty)"),
        ("1.0,1,2,3,99999999999999999999,1", "Price '99999999999999999999' is out of range",
         "Price in -4611686018427387903..4611686018427387903"),
        # 19 digits: beyond int64, and beyond the engine's largest quantity
        ("1.0,1,2,9223372036854775808,4,1", "Size '9223372036854775808' is out of range", None),
        ("1.0,1,2,4611686018427387905,4,1", "Size '4611686018427387905' is out of range", None),
        # beyond the engine's largest order quantity (MAX_QTY = 2**35 - 1)
        ("1.0,1,2,34359738368,4,1", "Size '34359738368' is out of range", None),
        ("1.0,1,2,-3,4,1", "Size '-3' is out of range", None),
        ("1.0,1,1152921504606846976,3,4,1", "OrderID '1152921504606846976' is out of range",
         "replay's own orders"),
        ("99999999999.0,1,2,3,4,1", "Time '99999999999.0' is out of range", None),
        ("1.0,1,2,3,4,0", "Direction '0' is not a direction", "1 (buy) or -1 (sell)"),
        ("1.0,1,2,3,4,7", "Direction '7' is not a direction", "1 (buy) or -1 (sell)"),
        ("1.0,1,2,3,4,-2", "Direction '-2' is not a direction", None),
    ],
)  # fmt: skip
def test_values_out_of_range_are_errors_never_wrapped(tmp_path, row, problem, expected) -> None:
    path = tmp_path / "m.csv"
    good = "1.0,1,2,3,4,1\n"
    path.write_text(good + row + "\n")
    with pytest.raises(lobster.LobsterFormatError) as info:
        lobster.read_messages(path)
    assert info.value.line == 2
    assert info.value.problem == problem
    column = row.split(",").index(problem.split("'")[1])
    assert info.value.offset == len(good) + len(",".join(row.split(",")[:column])) + (column > 0)
    if expected:
        assert expected in str(info.value)


def test_largest_accepted_values_are_read_exactly(tmp_path) -> None:
    path = tmp_path / "m.csv"
    big = lobster.MAX_SIZE
    path.write_text(f"86400.999999999,1,{lobster.MAX_ORDER_ID},{big},{lobster.MAX_PRICE},-1\n")
    row = lobster.read_messages(path)[0]
    assert (row["order_id"], row["size"], row["price"]) == (
        lobster.MAX_ORDER_ID,
        big,
        lobster.MAX_PRICE,
    )
    assert row["time_ns"] == 86400_999999999


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Time,Type,OrderID,Size,Price,Direction\n1.0,1,2,3,4,1\n",
         "not a number: 'Time' (Time), a header row? LOBSTER files have none"),
        ("abc\n", "not a number: 'abc' (Time), a header row? LOBSTER files have none"),
        ("1.0,1,2,3,4,1\n2.0,1,2,3,abc,1\n", "not a number: 'abc' (Price)"),
        ("1.0,1,2,3,-,1\n", "not a number: '-' (Price)"),
    ],
)  # fmt: skip
def test_text_where_a_number_belongs_is_shown(tmp_path, text, problem) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(lobster.LobsterFormatError) as info:
        lobster.read_messages(path)
    assert info.value.problem == problem


def test_orderbook_values_out_of_range_are_errors(tmp_path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("1186600,99999999999999999999,118500,8800\n")
    with pytest.raises(lobster.LobsterFormatError, match=r"AskSize1 '9+' is out of range"):
        lobster.read_orderbook(path)


def test_orderbook_file_levels_are_inferred(tmp_path) -> None:
    path = tmp_path / "b.csv"
    rows = [
        lobster_book_row([(1186600, 9484)], [(118500, 8800), (118400, 10)], 2),
        lobster_book_row([], [], 2),
    ]
    path.write_text("\n".join(rows) + "\n")
    book = lobster.read_orderbook(path)
    assert book.shape == (2, 8)
    assert list(book[0]) == [1186600, 9484, 118500, 8800, 9999999999, 0, 118400, 10]
    assert list(book[1]) == list(lobster.empty_book_rows(1, 2)[0])


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda levels: st.lists(
            st.lists(st.integers(-(10**12), 10**12), min_size=4 * levels, max_size=4 * levels),
            min_size=1,
            max_size=20,
        )
    )
)
def test_written_orderbook_reads_back_and_matches_python_formatting(rows) -> None:
    table = np.array(rows, dtype=np.int64)
    text = lobster.format_orderbook(table)
    assert text.decode() == "".join(",".join(map(str, r)) + "\n" for r in rows)


def test_written_orderbook_round_trips_through_the_reader(tmp_path) -> None:
    table = lobster.empty_book_rows(3, 5)
    table[1, :4] = [100, 5, 99, 7]
    path = tmp_path / "out.csv"
    with open(path, "wb") as stream:
        lobster.write_orderbook(stream, table)
    assert np.array_equal(lobster.read_orderbook(path), table)


def _walk_table(rows: int, levels: int, seed: int) -> np.ndarray:
    """Book-like rows: each changes one cell or shifts the levels, like a replay's."""
    rng = np.random.default_rng(seed)
    table = lobster.empty_book_rows(rows, levels)
    for r in range(1, rows):
        table[r] = table[r - 1]
        if rng.random() < 0.2:
            table[r, 4:] = table[r, :-4]  # a new best level pushes the others down
        table[r, rng.integers(0, 4 * levels)] = rng.integers(-(10**10), 10**10)
    return table


def test_background_writer_writes_the_same_bytes_in_order(tmp_path, monkeypatch) -> None:
    """Blocks queued to the writer thread reach the file in order, across write calls and
    flushes, and equal the foreground text; small steps exercise the page release."""
    monkeypatch.setattr(lobster.OrderbookWriter, "BLOCK_BYTES", 1 << 10)  # many blocks
    monkeypatch.setattr(lobster.OrderbookWriter, "QUEUE_BLOCKS", 2)  # the queue fills up
    monkeypatch.setattr(lobster._PageRelease, "STEP", 1 << 12)
    table = _walk_table(3000, 3, seed=5)
    path = tmp_path / "book.csv"
    with open(path, "wb") as stream:
        stream.write(b"header\n")  # the release must start from where the stream is
        with lobster.OrderbookWriter(stream, table.shape[1], background=True) as writer:
            writer.write(table[:1000])
            writer.flush()
            writer.write(table[1000:2500])
            writer.write(table[2500:])
    assert path.read_bytes() == b"header\n" + lobster.format_orderbook(table)


def test_background_writer_raises_the_write_error_in_the_caller() -> None:
    class Full:
        def write(self, data) -> int:
            raise OSError(28, "No space left on device")

    writer = lobster.OrderbookWriter(Full(), 4, background=True)
    writer.write(_walk_table(10, 1, seed=1))
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    writer.close()  # the error was reported once; the writer is idle
