"""Feed inputs that are not plain files: gzip, FIFOs, pipes, stdin, and what is refused.

Every feed command reads its input once, as a stream when it is not a plain file
(``stages.ingest.feedfile``): a FIFO is never opened twice (that hung), a pipe is never
sized with ``fstat`` (that read 0 messages), and a device or a directory is refused with
one line instead of an empty answer.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from stages import feed_replay
from stages.ingest import feedfile, itch50, lobster
from tests.feedwriters import (
    fifo_feeding,
    itch_message,
    itch_stream,
    lobster_book_row,
    lobster_message_rows,
    simulate_itch,
    simulate_lobster,
)

ROOT = Path(__file__).resolve().parents[1]


def _day(seed: int = 3, steps: int = 300) -> tuple[bytes, dict]:
    messages, books, _ = simulate_itch(np.random.default_rng(seed), steps=steps)
    return itch_stream(messages), books


def _books_of(result) -> dict[int, tuple[list, list]]:
    out = {}
    for locate in result.stock_names:
        bids, asks = result.engine.depth(locate, 1 << 20)
        out[locate] = ([tuple(r[:2]) for r in bids.tolist()], [tuple(r[:2]) for r in asks.tolist()])
    return out


def _stats(capsys, argv: list[str]) -> tuple[int, dict, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, json.loads(captured.out) if captured.out else {}, captured.err


# --- gzip ------------------------------------------------------------------------------------
def test_gzip_itch_is_recognised_by_its_bytes_not_its_name(tmp_path, capsys) -> None:
    data, _ = _day()
    plain = tmp_path / "day.itch"
    plain.write_bytes(data)
    packed = tmp_path / "day.bin"  # no .gz suffix
    packed.write_bytes(gzip.compress(data))
    want = _stats(capsys, ["feed", "stats", "--format", "itch50", str(plain)])
    got = _stats(capsys, ["feed", "stats", "--format", "itch50", str(packed)])
    assert want[0] == got[0] == 0
    assert got[1] == want[1] and got[1]["messages"] > 300


@pytest.mark.parametrize("chunk_bytes", [97, 1 << 20])
def test_gzip_itch_replay_equals_the_plain_file(tmp_path, chunk_bytes) -> None:
    data, books = _day(seed=5)
    (tmp_path / "day.itch").write_bytes(data)
    (tmp_path / "day.itch.gz").write_bytes(gzip.compress(data))
    plain = feed_replay.replay_itch(tmp_path / "day.itch", chunk_bytes=chunk_bytes)
    packed = feed_replay.replay_itch(tmp_path / "day.itch.gz", chunk_bytes=chunk_bytes)
    assert packed.error is None and packed.messages == plain.messages
    assert packed.by_type == plain.by_type and packed.commands == plain.commands
    assert _books_of(packed) == _books_of(plain)
    assert {loc: (b.depth(0), b.depth(1)) for loc, b in books.items()} == _books_of(packed)


def test_damaged_gzip_is_reported_with_everything_before_it(tmp_path, capsys) -> None:
    data, _ = _day(steps=3000)
    packed = gzip.compress(data)
    path = tmp_path / "cut.itch.gz"
    path.write_bytes(packed[: len(packed) // 2])  # the stream ends inside a member
    status, summary, err = _stats(capsys, ["feed", "stats", "--format", "itch50", str(path)])
    assert status == 1
    assert summary["messages"] > 0 and "gzip" in summary["error"]["problem"]
    assert "Traceback" not in err and "gzip" in err


@pytest.mark.parametrize("chunk_bytes", [64, 100, 4096])
def test_lobster_gzip_read_in_small_chunks_equals_the_plain_file(
    tmp_path, monkeypatch, chunk_bytes
) -> None:
    messages, _ = simulate_lobster(np.random.default_rng(2), steps=400, levels=3)
    text = lobster_message_rows(messages)
    (tmp_path / "m.csv").write_text(text)
    (tmp_path / "m.csv.gz").write_bytes(gzip.compress(text.encode()))
    monkeypatch.setattr(lobster, "READ_CHUNK_BYTES", chunk_bytes)
    plain = lobster.read_messages(tmp_path / "m.csv")
    assert np.array_equal(lobster.read_messages(tmp_path / "m.csv.gz"), plain)
    assert len(plain) == len(messages)


def test_lobster_stream_error_names_the_line_and_offset_of_the_whole_file(
    tmp_path, monkeypatch
) -> None:
    good = lobster_message_rows([(1.0 + i, 1, i + 1, 10, 5000, 1) for i in range(50)])
    text = good + "2.0,1,9,10,5000,7\n"
    (tmp_path / "m.csv.gz").write_bytes(gzip.compress(text.encode()))
    monkeypatch.setattr(lobster, "READ_CHUNK_BYTES", 128)  # the bad row is chunks away
    with pytest.raises(lobster.LobsterFormatError) as info:
        lobster.read_messages(tmp_path / "m.csv.gz")
    assert (info.value.line, info.value.offset) == (51, len(good) + len("2.0,1,9,10,5000,"))
    assert "Direction '7' is not a direction" in str(info.value)


def test_lobster_stream_line_longer_than_a_chunk_is_an_error(tmp_path, monkeypatch) -> None:
    (tmp_path / "m.csv.gz").write_bytes(gzip.compress(b"1." + b"0" * 500 + b",1,2,3,4,1\n"))
    monkeypatch.setattr(lobster, "READ_CHUNK_BYTES", 128)
    with pytest.raises(lobster.LobsterFormatError, match="a line longer than 128 bytes"):
        lobster.read_messages(tmp_path / "m.csv.gz")


# --- FIFOs and pipes -------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_itch_stats_from_a_fifo_equal_the_file(tmp_path, capsys) -> None:
    data, _ = _day()
    (tmp_path / "day.itch").write_bytes(data)
    want = _stats(capsys, ["feed", "stats", "--format", "itch50", str(tmp_path / "day.itch")])
    with fifo_feeding(tmp_path / "fifo", data) as fifo:
        got = _stats(capsys, ["feed", "stats", "--format", "itch50", str(fifo)])
    assert got[:2] == want[:2] and got[1]["messages"] > 300


@pytest.mark.timeout(60)
@pytest.mark.parametrize("packed", [False, True])
def test_itch_replay_from_a_fifo_reads_it_once_and_rebuilds_every_book(tmp_path, packed) -> None:
    data, books = _day(seed=11, steps=500)
    with fifo_feeding(tmp_path / "fifo", gzip.compress(data) if packed else data) as fifo:
        result = feed_replay.replay_itch(fifo, chunk_bytes=256)
    assert result.error is None
    assert result.messages == len(itch50.frame(np.frombuffer(data, np.uint8)).types)
    assert result.late_directory == 0
    assert {loc: (b.depth(0), b.depth(1)) for loc, b in books.items()} == _books_of(result)


@pytest.mark.timeout(60)
def test_itch_stream_counts_directory_messages_after_the_books_were_built(tmp_path) -> None:
    day = [
        itch_message("R", locate=1, stock="AAA"),
        itch_message("A", locate=1, order_reference_number=1, buy_sell_indicator="B",
                     shares=5, stock="AAA", price=10000),
        itch_message("R", locate=2, stock="BBB"),
        itch_message("A", locate=2, order_reference_number=2, buy_sell_indicator="B",
                     shares=5, stock="BBB", price=10000),
    ]  # fmt: skip
    with fifo_feeding(tmp_path / "fifo", itch_stream(day)) as fifo:
        result = feed_replay.replay_itch(fifo, chunk_bytes=64)  # a chunk per message or two
    assert result.late_directory == 1 and result.unknown_symbol_adds == 1
    assert result.commands == 1


@pytest.mark.timeout(60)
def test_lobster_replay_from_fifos_with_a_seed_book(tmp_path, capsys) -> None:
    messages, rows = simulate_lobster(np.random.default_rng(4), 300, 10, preexisting=20)
    text = lobster_message_rows(messages).encode()
    book = "\n".join(",".join(map(str, r)) for r in rows).encode() + b"\n"
    out = tmp_path / "out.csv"
    with (
        fifo_feeding(tmp_path / "messages", text) as fifo,
        fifo_feeding(tmp_path / "book", gzip.compress(book)) as seed,
    ):
        argv = ["replay", "--format", "lobster", str(fifo), "--seed-book", str(seed)]
        status = main([*argv, "--book-out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert f"{len(messages) - 1} messages" in captured.out
    assert out.read_bytes().splitlines() == book.splitlines()[1:]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "argv",
    [
        ["feed", "stats", "--format", "itch50"],
        ["feed", "stats", "--format", "lobster"],
        ["replay", "--format", "itch50"],
        ["replay", "--format", "lobster"],
    ],
)
def test_every_feed_command_reads_a_fifo_once(tmp_path, capsys, argv) -> None:
    """A FIFO hung all four commands (a reader opened it twice); each now reads it once."""
    if "lobster" in argv:
        messages, _ = simulate_lobster(np.random.default_rng(6), steps=200, levels=3)
        data, count = lobster_message_rows(messages).encode(), len(messages)
    else:
        data, _ = _day()
        count = len(itch50.frame(np.frombuffer(data, np.uint8)).types)
    with fifo_feeding(tmp_path / "fifo", data) as fifo:
        status = main([*argv, str(fifo)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert f'"messages": {count},' in captured.out or f": {count} messages," in captured.out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_feed_stats_reads_a_real_pipe_on_stdin(tmp_path, name) -> None:
    data, _ = _day()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "feed", "stats", "--format", "itch50", name],
        input=gzip.compress(data),
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["messages"] > 300


def test_dash_reads_stdin(capsys, monkeypatch) -> None:
    text = lobster_message_rows([(1.0, 1, 1, 5, 100, 1), (2.0, 3, 1, 5, 100, 1)])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    status, summary, _ = _stats(capsys, ["feed", "stats", "--format", "lobster", "-"])
    assert status == 0 and summary["messages"] == 2


# --- refused inputs --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/dev/zero", "is a character device"),
        ("/dev/null", "is a character device"),
        (".", "is a directory"),
    ],
)
def test_devices_and_directories_are_refused_before_reading(path, problem) -> None:
    with pytest.raises(feedfile.FeedInputError, match=problem), feedfile.open_feed(path):
        pass


def test_empty_input_is_said_not_silent(tmp_path, capsys) -> None:
    (tmp_path / "empty.itch").write_bytes(b"")
    status, summary, err = _stats(
        capsys, ["feed", "stats", "--format", "itch50", str(tmp_path / "empty.itch")]
    )
    assert status == 0 and summary["messages"] == 0
    assert err.startswith("warning: ") and "holds no messages" in err


def test_seed_book_levels_come_from_a_streamed_first_row(tmp_path) -> None:
    row = lobster_book_row([(1010000, 5)], [(990000, 7)], 3)
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(f"\n{row}\n{row}\n".encode()))
    assert lobster.read_orderbook(tmp_path / "b.csv.gz").shape == (2, 12)
