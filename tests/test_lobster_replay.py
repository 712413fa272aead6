"""LOBSTER replay into the matching engine, held to a plain FIFO exchange simulator."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from stages import feed_replay
from stages.ingest import lobster
from tests.feedwriters import lobster_book_row, lobster_message_rows, simulate_lobster

LEVELS = 10  # covers the simulator's 10 prices per side


def _messages(rows) -> np.ndarray:
    return np.array(
        [(round(t * 1e9), k, i, s, p, d) for t, k, i, s, p, d in rows],
        dtype=lobster.MESSAGE_DTYPE,
    )


def _replay(messages, seed_row=None, levels=LEVELS, batch=feed_replay.ENGINE_BATCH):
    out = io.BytesIO()
    result = feed_replay.replay_lobster(messages, levels, seed_row, out, batch=batch)
    text = out.getvalue().decode()
    rows = [list(map(int, line.split(","))) for line in text.splitlines()]
    return result, rows


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([7, 64, feed_replay.ENGINE_BATCH]))
def test_replay_from_an_empty_book_reproduces_every_row(seed, batch) -> None:
    rng = np.random.default_rng(seed)
    messages, expected = simulate_lobster(rng, steps=300, levels=LEVELS)
    result, rows = _replay(_messages(messages), batch=batch)
    assert rows == expected
    assert result.unknown_refs == 0
    assert result.other_order_fills == 0
    assert result.tally.rejects == {}
    assert result.messages == len(messages)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([5, feed_replay.ENGINE_BATCH]))
def test_seeded_replay_reproduces_every_row_after_the_first(seed, batch) -> None:
    rng = np.random.default_rng(seed)
    messages, expected = simulate_lobster(rng, steps=300, levels=LEVELS, preexisting=40)
    seed_row = np.array(expected[0], dtype=np.int64)
    result, rows = _replay(_messages(messages), seed_row, batch=batch)
    assert rows == expected[1:]
    assert result.unknown_refs == 0
    assert result.other_order_fills == 0
    assert result.tally.rejects == {}
    assert result.messages == len(messages) - 1


def test_without_seeding_references_to_older_orders_are_counted() -> None:
    rng = np.random.default_rng(7)
    messages, _ = simulate_lobster(rng, steps=400, levels=LEVELS, preexisting=40)
    added: set[int] = set()
    unknown = 0
    for _, kind, oid, *_ in messages:
        if kind == 1:
            added.add(oid)
        elif kind in (2, 3, 4) and oid not in added:
            unknown += 1
    assert unknown > 0
    result, _ = _replay(_messages(messages))
    assert result.unknown_refs == unknown


def test_execution_that_fills_an_older_order_is_counted() -> None:
    messages = _messages(
        [
            (1.0, 1, 1, 100, 10000, 1),
            (2.0, 1, 3, 30, 10000, 1),
            (3.0, 4, 3, 20, 10000, 1),  # LOBSTER says order 3; time priority fills order 1
            (4.0, 4, 1, 80, 10000, 1),  # order 1 has 80 left: fills order 1 only
        ]
    )
    result, rows = _replay(messages, levels=1)
    assert result.other_order_fills == 1
    assert [r[2:4] for r in rows] == [[10000, 100], [10000, 130], [10000, 110], [10000, 30]]


def test_seeded_order_is_reduced_never_below_zero_then_unknown() -> None:
    seed_row = np.array([10100, 5, 10000, 40], dtype=np.int64)
    messages = _messages(
        [
            (1.0, 1, 77, 1, 1, 1),  # the "first message", already in the seed row
            (2.0, 2, 501, 10, 10000, 1),  # unknown id at the seeded bid: reduce it by 10
            (3.0, 3, 502, 50, 10000, 1),  # delete 50 of the 30 left: the seeded order goes
            (4.0, 3, 503, 5, 10000, 1),  # nothing left at that price: unknown reference
            (5.0, 4, 504, 2, 10100, -1),  # execution of a seeded ask: an IOC buy
        ]
    )
    result, rows = _replay(messages, seed_row, levels=1)
    assert result.unknown_refs == 1
    assert result.seeded_applied == 3
    assert result.other_order_fills == 0
    assert rows == [
        [10100, 5, 10000, 30],
        [10100, 5, lobster.EMPTY_BID_PRICE, 0],
        [10100, 5, lobster.EMPTY_BID_PRICE, 0],
        [10100, 3, lobster.EMPTY_BID_PRICE, 0],
    ]


def test_halt_rejects_adds_until_resume_and_hidden_trades_change_nothing() -> None:
    messages = _messages(
        [
            (1.0, 1, 1, 10, 10000, 1),
            (2.0, 7, 0, 0, -1, -1),
            (3.0, 1, 2, 10, 10000, 1),  # rejected: halted
            (4.0, 5, 0, 10, 10000, 1),
            (5.0, 6, 0, 10, 10000, 1),
            (6.0, 7, 0, 0, 1, -1),
            (7.0, 1, 3, 5, 10000, 1),
        ]
    )
    result, rows = _replay(messages, levels=1)
    assert result.tally.rejects == {"SYMBOL_HALTED": 1}
    assert [r[3] for r in rows] == [10, 10, 10, 10, 10, 10, 15]
    assert result.tally.events["HALTED"] == 1 and result.tally.events["RESUMED"] == 1


def test_cli_writes_rows_and_prints_the_summary(tmp_path, capsys) -> None:
    rng = np.random.default_rng(3)
    messages, expected = simulate_lobster(rng, steps=200, levels=LEVELS, preexisting=20)
    msg_path = tmp_path / "X_message_10.csv"
    book_path = tmp_path / "X_orderbook_10.csv"
    out_path = tmp_path / "out.csv"
    msg_path.write_text(lobster_message_rows(messages))
    book_path.write_text("\n".join(",".join(map(str, r)) for r in expected) + "\n")
    argv = ["replay", "--format", "lobster", str(msg_path), "--seed-book", str(book_path)]
    argv += ["--levels", str(LEVELS), "--book-out", str(out_path)]
    assert main(argv) == 0
    assert out_path.read_text() == book_path.read_text().split("\n", 1)[1]
    out = capsys.readouterr().out
    assert f"{len(messages) - 1} messages" in out
    assert "unknown references: 0" in out
    assert "executions that filled a different order: 0" in out
    assert "messages/s" in out


def test_cli_rejects_a_malformed_message_file(tmp_path, capsys) -> None:
    path = tmp_path / "m.csv"
    path.write_text("1.0,1,2,3\n")
    assert main(["replay", "--format", "lobster", str(path)]) == 1
    assert "line 1" in capsys.readouterr().err


@pytest.mark.parametrize("levels", ["0", "-2", "1001", "100000"])
def test_cli_refuses_bad_levels(tmp_path, capsys, levels) -> None:
    path = tmp_path / "m.csv"
    path.write_text(lobster_message_rows([(1.0, 1, 1, 1, 1, 1)]))
    out = str(tmp_path / "out.csv")
    argv = ["replay", "--format", "lobster", str(path), "--levels", levels, "--book-out", out]
    assert main(argv) == 2
    assert f"--levels {levels} is out of range: expected 1..1000" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_book_row_writer_matches_simulator() -> None:
    assert lobster_book_row([(5, 1)], [], 1) == f"5,1,{lobster.EMPTY_BID_PRICE},0"


@pytest.mark.parametrize("batch", [1, 2, feed_replay.ENGINE_BATCH])
def test_execution_taking_the_seeded_order_first_is_seen_by_later_references(batch) -> None:
    seed_row = np.array([10100, 5, 10000, 40], dtype=np.int64)
    messages = _messages(
        [
            (1.0, 1, 77, 1, 1, 1),  # the "first message", already in the seed row
            (2.0, 1, 9, 10, 10000, 1),  # a new bid behind the seeded one
            (3.0, 4, 9, 10, 10000, 1),  # LOBSTER names order 9; time priority takes the seed
            (4.0, 2, 500, 35, 10000, 1),  # older order, 35 of the seeded 30 left: all of it
        ]
    )
    result, rows = _replay(messages, seed_row, levels=1, batch=batch)
    assert result.other_order_fills == 1
    assert result.tally.rejects == {}
    assert [r[3] for r in rows] == [50, 40, 10]


def test_every_level_of_the_seed_row_is_seeded_whatever_the_output_levels() -> None:
    seed_row = np.array([10100, 5, 10000, 40, 10200, 7, 9900, 8], dtype=np.int64)
    messages = _messages(
        [
            (1.0, 1, 77, 1, 1, 1),
            (2.0, 3, 501, 40, 10000, 1),  # the whole best bid goes: level 2 comes into view
            (3.0, 4, 502, 5, 10100, -1),  # the best ask is executed away
        ]
    )
    result, rows = _replay(messages, seed_row, levels=1)
    assert rows == [[10100, 5, 9900, 8], [10200, 7, 9900, 8]]
    assert result.unknown_refs == 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_long_seeded_day_matches_row_for_row() -> None:
    rng = np.random.default_rng(2026)
    messages, expected = simulate_lobster(rng, steps=20_000, levels=LEVELS, preexisting=300)
    result, rows = _replay(_messages(messages), np.array(expected[0]), batch=4096)
    assert rows == expected[1:]
    assert (result.unknown_refs, result.other_order_fills) == (0, 0)
    assert result.tally.rejects == {}
