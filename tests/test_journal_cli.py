"""``tradepipe journal dump|verify|export``: filters, enum names, verdicts as exit statuses."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import build_parser, main
from stages.persistence.journal_lock import lock_journal
from stages.persistence.journal_segments import BLOCK_HEADER, list_segments
from stages.persistence.journal_writer import JournalWriter
from stages.records import COMMAND_DTYPE, CommandType, Side
from tests.builders import commands


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    directory = tmp_path / "journal"
    with JournalWriter(directory, COMMAND_DTYPE, segment_bytes=4096) as writer:
        writer.append(commands(1, 30))
        batch = commands(31, 40)
        batch["kind"][0] = CommandType.CANCEL
        writer.append(batch)
    return directory


@pytest.fixture
def crashed_journal(tmp_path: Path) -> Path:
    """The journal above as a crash leaves it: every append fsynced, the writer never closed
    (so its durable mark is the one of its last rotation, not of a close)."""
    directory = tmp_path / "journal"
    writer = JournalWriter(directory, COMMAND_DTYPE, segment_bytes=4096)
    writer.append(commands(1, 30))
    batch = commands(31, 40)
    batch["kind"][0] = CommandType.CANCEL
    writer.append(batch)
    writer.close_quietly()
    return directory


def test_dump_filters_and_names(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "dump", str(journal), "--from", "5", "--to", "40", "--account", "1",
                 "--symbol", "2"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    header, rows = out[0].split(), [line.split() for line in out[1:]]
    expected = commands(5, 36)
    expected = expected[(expected["account"] == 1) & (expected["symbol"] == 2)]
    assert [int(r[header.index("seq")]) for r in rows] == expected["seq"].tolist()
    assert {r[header.index("kind")] for r in rows} == {"NEW"}
    sides = [r[header.index("side")] for r in rows]
    assert sides == [Side(s).name for s in expected["side"]]
    assert "_pad" not in header


def test_dump_limit_and_cancel_name(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "dump", str(journal), "--from", "31", "--limit", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4
    assert "CANCEL" in out[1].split()


def test_dump_refuses_an_inverted_range(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "dump", str(journal), "--from", "9", "--to", "3"]) == 2
    assert "--to 3 is before --from 9" in capsys.readouterr().err


def test_verify_verdicts(crashed_journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = crashed_journal
    assert main(["journal", "verify", str(journal)]) == 0
    out = capsys.readouterr().out
    assert "70 records, seqs 1..70" in out and "verdict: OK" in out

    last = list_segments(journal)[-1]
    os.truncate(last, last.stat().st_size - 3)
    assert main(["journal", "verify", str(journal)]) == 3
    out = capsys.readouterr().out
    assert f"TORN TAIL: torn tail in journal segment {last} at offset" in out
    assert main(["journal", "verify", str(journal), "--repair"]) == 0
    assert "REPAIRED" in capsys.readouterr().out
    assert main(["journal", "verify", str(journal)]) == 0
    capsys.readouterr()

    first = list_segments(journal)[0]
    data = bytearray(first.read_bytes())
    data[-BLOCK_HEADER.size - 10] ^= 0x40
    first.write_bytes(bytes(data))
    assert main(["journal", "verify", str(journal), "--repair"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("CORRUPT: journal segment") and str(first) in out
    assert first.read_bytes() == bytes(data)  # corruption is never repaired away


def test_verify_missing_or_empty_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "verify", str(tmp_path / "nope")]) == 2  # a usage error, no verdict
    assert "does not exist" in capsys.readouterr().err
    assert main(["journal", "verify", str(tmp_path)]) == 1
    assert "holds no journal segment" in capsys.readouterr().out


def test_export_jsonl(journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jsonl"
    assert (
        main(["journal", "export", str(journal), "--from", "29", "--to", "32", "-o", str(out)]) == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in rows] == [29, 30, 31, 32]
    assert [r["kind"] for r in rows] == ["NEW", "NEW", "CANCEL", "NEW"]
    assert rows[0]["price"] == int(commands(29, 1)["price"][0])
    assert rows[0]["tif"] == "GTC" and rows[0]["reason"] == "OK"
    assert "(4 records exported)" in capsys.readouterr().err


def test_export_to_stdout(journal: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["journal", "export", str(journal), "--account", "3"]) == 0
    lines = capfdbinary.readouterr().out.splitlines()
    expected = commands(1, 70)
    assert [json.loads(line)["seq"] for line in lines] == expected["seq"][
        expected["account"] == 3
    ].tolist()


def test_export_parquet(journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.parquet"
    status = main(["journal", "export", str(journal), "--format", "parquet", "-o", str(out)])
    if importlib.util.find_spec("pyarrow") is None:
        assert status == 2
        assert "needs pyarrow" in capsys.readouterr().err
    else:
        import pyarrow.parquet as pq

        assert status == 0
        table = pq.read_table(out)
        assert table.column("seq").to_pylist() == list(range(1, 71))
        assert np.asarray(table.column("kind").to_pylist())[30] == "CANCEL"


@pytest.mark.parametrize("action", ["dump", "export"])
def test_dump_and_export_warn_of_a_torn_tail_once_before_their_summary(
    journal: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    last = list_segments(journal)[-1]
    os.truncate(last, last.stat().st_size - 3)
    assert main(["journal", action, str(journal)]) == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if line.startswith("warning: ")]
    assert len(warned) == 1 and str(last) in warned[0]
    assert err.index(warned[0]) < len(err) - 1 and "records" in err[-1]


def test_dump_limit_zero_prints_no_records(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "dump", str(journal), "--limit", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "(0 records)"


def _full_disk_after(monkeypatch: pytest.MonkeyPatch, first_bytes: int) -> None:
    """Make ``os.write`` into a ``*.partial`` file write ``first_bytes``, then fail: ENOSPC."""
    real_write = os.write
    written = [0]

    def write(fd: int, data: bytes) -> int:
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(".partial"):
            return real_write(fd, data)
        if written[0] >= first_bytes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(memoryview(data)[: first_bytes - written[0]]))
        written[0] += n
        return n

    monkeypatch.setattr(os, "write", write)


def test_export_on_a_full_disk_leaves_no_partial_file_and_the_old_file_intact(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    old = out_dir / "old.jsonl"
    old.write_text("the previous export\n")
    _full_disk_after(monkeypatch, 100)
    for target in (old, out_dir / "new.jsonl"):
        assert main(["journal", "export", str(journal), "-o", str(target)]) == 4
        err = capsys.readouterr().err
        assert "No space left on device (ENOSPC)" in err and "partial output was removed" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["old.jsonl"]
    assert old.read_text() == "the previous export\n"


def test_export_of_a_corrupt_journal_writes_no_output_file(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = list_segments(journal)[0]
    data = bytearray(first.read_bytes())
    data[-BLOCK_HEADER.size - 10] ^= 0x40
    first.write_bytes(bytes(data))
    out = tmp_path / "out.jsonl"
    assert main(["journal", "export", str(journal), "-o", str(out)]) == 1
    assert str(first) in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl.*"))


def test_repair_of_a_journal_a_live_writer_holds_is_refused(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    last = list_segments(journal)[-1]
    os.truncate(last, last.stat().st_size - 3)
    size = last.stat().st_size
    lock = lock_journal(journal, "a test writer")
    try:
        assert main(["journal", "verify", str(journal), "--repair"]) == 4
    finally:
        os.close(lock)
    assert f"journal {journal} is open for writing by" in capsys.readouterr().err
    assert last.stat().st_size == size  # nothing was cut while the writer held it


def test_help_is_plain_text_and_says_what_each_option_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for action in ("dump", "verify", "export"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["journal", action, "--help"])
        text = capsys.readouterr().out
        assert "``" not in text and "to show" not in text
    export_help = " ".join(text.split())
    assert "--format {jsonl,parquet} jsonl: one JSON object per record" in export_help
    assert "first sequence to export" in export_help and "last sequence to export" in export_help


def test_export_through_a_symbolic_link_writes_its_target(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, link = tmp_path / "target.jsonl", tmp_path / "link.jsonl"
    target.write_text("old\n")
    link.symlink_to(target)
    assert main(["journal", "export", str(journal), "--to", "2", "-o", str(link)]) == 0
    assert link.is_symlink()
    assert [json.loads(line)["seq"] for line in target.read_text().splitlines()] == [1, 2]


def test_verify_says_records_are_missing_when_the_newest_segment_is_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "journal"
    with JournalWriter(directory, COMMAND_DTYPE, segment_bytes=8192) as writer:
        for i in range(10):
            writer.append(commands(1 + 40 * i, 40))
    newest = list_segments(directory)[-1]
    first_lost = int(newest.name[:20])
    newest.unlink()
    assert main(["journal", "verify", str(directory)]) == 1
    out = capsys.readouterr().out
    assert f"MISSING: seqs {first_lost}..400 ({401 - first_lost} records) are missing" in out
    assert out.splitlines()[-1].startswith("verdict: records missing")
    assert main(["journal", "verify", str(directory), "--snapshots", str(tmp_path / "no")]) == 2
    assert "--snapshots" in capsys.readouterr().err
