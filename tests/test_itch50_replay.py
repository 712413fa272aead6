"""ITCH 5.0 replay into the matching engine, held to a plain reference book per stock."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from stages import feed_replay
from tests.feedwriters import itch_message, itch_stream, simulate_itch


def _engine_depth(engine, locate: int) -> tuple[list, list]:
    bids, asks = engine.depth(locate, 1 << 20)
    return [tuple(map(int, r[:2])) for r in bids], [tuple(map(int, r[:2])) for r in asks]


def _assert_books_match(result, books) -> None:
    for locate, book in books.items():
        bids, asks = _engine_depth(result.engine, locate)
        assert bids == book.depth(0), locate
        assert asks == book.depth(1), locate


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([97, 1 << 20]), st.booleans())
def test_replay_rebuilds_every_book(tmp_path_factory, seed, chunk_bytes, zero_prefix) -> None:
    rng = np.random.default_rng(seed)
    messages, books, counts = simulate_itch(rng, steps=400)
    path = tmp_path_factory.mktemp("itch") / "day.itch"
    path.write_bytes(itch_stream(messages, zero_prefix))
    result = feed_replay.replay_itch(path, chunk_bytes=chunk_bytes)
    assert result.error is None
    assert result.messages == len(messages)
    assert result.unknown_refs == counts["unknown_refs"]
    assert result.unknown_symbol_adds == counts["unknown_symbol_adds"]
    assert result.duplicate_adds == 0 and result.over_executed == 0
    assert result.tally.rejects == {}
    assert result.tally.trades == 0  # ITCH executions reduce the named order, nothing crosses
    _assert_books_match(result, books)


def test_halts_and_resumes_follow_trading_action_messages(tmp_path) -> None:
    def add(ref: int, loc: int = 1) -> bytes:
        return itch_message(
            "A", locate=loc, order_reference_number=ref, buy_sell_indicator="B", shares=100,
            price=1000000, stock="AAA",
        )  # fmt: skip

    messages = [
        itch_message("R", locate=1, stock="AAA"),
        itch_message("H", locate=1, stock="AAA", trading_state="T"),  # no change: no command
        add(1),
        itch_message("H", locate=1, stock="AAA", trading_state="H"),
        itch_message("H", locate=1, stock="AAA", trading_state="P"),  # still halted
        itch_message("X", locate=1, order_reference_number=1, cancelled_shares=40),
        itch_message("H", locate=1, stock="AAA", trading_state="Q"),  # quoting: books open
        add(2),
    ]
    path = tmp_path / "halt.itch"
    path.write_bytes(itch_stream(messages))
    result = feed_replay.replay_itch(path)
    assert result.tally.events["HALTED"] == 1
    assert result.tally.events["RESUMED"] == 1
    assert _engine_depth(result.engine, 1) == ([(1000000, 160)], [])


def test_truncated_file_applies_everything_before_the_offset(tmp_path) -> None:
    rng = np.random.default_rng(11)
    messages, books, _ = simulate_itch(rng, steps=300)
    good = itch_stream(messages)
    path = tmp_path / "cut.itch"
    path.write_bytes(good + itch_stream([itch_message("A")])[:17])
    result = feed_replay.replay_itch(path, chunk_bytes=256)
    assert result.error is not None
    assert result.error.offset == len(good)
    assert result.messages == len(messages)
    _assert_books_match(result, books)


def test_cli_prints_summary_and_depth(tmp_path, capsys) -> None:
    rng = np.random.default_rng(5)
    messages, books, counts = simulate_itch(rng, steps=300, stocks=2)
    path = tmp_path / "day.itch"
    path.write_bytes(itch_stream(messages))
    assert main(["replay", "--format", "itch50", str(path), "--depth", "3"]) == 0
    out = capsys.readouterr().out
    assert f"references to orders never added: {counts['unknown_refs']}" in out
    assert "messages/s" in out
    for locate, book in books.items():
        if book.depth(0) or book.depth(1):
            assert f"STK{locate} (locate {locate})" in out
    best_bid = books[1].depth(0)[0]
    assert f"{best_bid[1]:>10} {best_bid[0] / 10000:>12.4f} |" in out


def test_cli_reports_corruption_with_exit_status_1(tmp_path, capsys) -> None:
    path = tmp_path / "bad.itch"
    good = itch_stream([itch_message("S", event_code="O")])
    path.write_bytes(good + b"\x00\x0c?" + bytes(11))
    assert main(["replay", "--format", "itch50", str(path)]) == 1
    captured = capsys.readouterr()
    assert f"byte offset {len(good)}" in captured.err
    assert "1 messages" in captured.out


@pytest.mark.parametrize("argv", [["replay"], ["replay", "--format", "itch50"]])
def test_cli_without_input_says_what_is_missing(argv, capsys) -> None:
    assert main(argv) == 2
    assert "replay" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_long_day_over_small_chunks_rebuilds_every_book(tmp_path) -> None:
    rng = np.random.default_rng(2026)
    messages, books, counts = simulate_itch(rng, steps=30_000, stocks=20)
    path = tmp_path / "day.itch"
    path.write_bytes(itch_stream(messages))
    result = feed_replay.replay_itch(path, chunk_bytes=4096)
    assert result.error is None
    assert result.unknown_refs == counts["unknown_refs"]
    assert result.tally.rejects == {}
    _assert_books_match(result, books)
