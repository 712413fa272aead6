"""``tradepipe feed stats --format itch50``: counts, per-stock adds, time span, partial output."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pipeline.cli import main
from stages.ingest import itch50
from tests.feedwriters import itch_message, itch_stream, lobster_message_rows

STOCKS = ["AAPL", "MSFT", "ZVZZT"]


def _day() -> list[tuple[str, dict]]:
    """A small day touching every message type; adds spread over three stocks."""
    day: list[tuple[str, dict]] = [("S", {"event_code": "O"})]
    day += [("R", {"stock": s}) for s in STOCKS]
    for i in range(30):
        day.append(("A" if i % 3 else "F", {"stock": STOCKS[i % len(STOCKS) if i % 4 else 0]}))
    day += [(k, {}) for k in "HYLVWKJhECXDUPQBINO"]
    return day


def _write(path, messages, tail: bytes = b"") -> None:
    raw = [itch_message(k, timestamp=1000 + 7 * i, **f) for i, (k, f) in enumerate(messages)]
    path.write_bytes(itch_stream(raw) + tail)


def test_stats_json_counts_types_and_adds_per_stock(tmp_path, capsys) -> None:
    day = _day()
    path = tmp_path / "day.itch"
    _write(path, day)
    assert main(["feed", "stats", "--format", "itch50", str(path), "--chunk-mb", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["messages"] == len(day)
    assert out["by_type"] == dict(Counter(k for k, _ in day))
    assert set(out["by_type"]) == set(itch50.MESSAGE_LENGTHS)
    adds = Counter(f["stock"] for k, f in day if k in "AF")
    assert out["symbols"] == dict(adds)
    assert out["first_ts_ns"] == 1000
    assert out["last_ts_ns"] == 1000 + 7 * (len(day) - 1)


def test_stats_over_many_small_chunks_equal_one_pass(tmp_path) -> None:
    path = tmp_path / "day.itch"
    _write(path, _day() * 20)
    whole = itch50.file_stats(path).as_dict()
    chunked = itch50.file_stats(path, chunk_bytes=100).as_dict()
    assert whole == chunked


def test_corrupt_file_reports_everything_before_the_offset(tmp_path, capsys) -> None:
    day = _day()
    path = tmp_path / "bad.itch"
    _write(path, day, tail=itch_stream([itch_message("A")])[:20])
    good_bytes = path.stat().st_size - 20
    assert main(["feed", "stats", "--format", "itch50", str(path)]) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["messages"] == len(day)
    assert out["error"]["offset"] == good_bytes
    assert f"byte offset {good_bytes}" in captured.err


def test_lobster_stats(tmp_path, capsys) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        lobster_message_rows([(1.5, 1, 1, 10, 100, 1), (2.0, 4, 1, 5, 100, 1), (3, 1, 2, 1, 9, -1)])
    )
    assert main(["feed", "stats", "--format", "lobster", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["by_type"] == {"1": 2, "4": 1}
    assert (out["first_ts_ns"], out["last_ts_ns"]) == (1_500_000_000, 3_000_000_000)


def test_missing_file_is_a_clear_error(tmp_path, capsys) -> None:
    assert main(["feed", "stats", "--format", "itch50", str(tmp_path / "nope.itch")]) == 2
    assert "nope.itch: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("chunk_mb", ["0", "-1"])
def test_bad_chunk_size_is_refused(tmp_path, capsys, chunk_mb) -> None:
    assert main(["feed", "stats", "--format", "itch50", "x", "--chunk-mb", chunk_mb]) == 2
    assert "--chunk-mb" in capsys.readouterr().err
