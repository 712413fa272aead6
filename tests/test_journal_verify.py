"""verify_journal cross-checks the journal's end: a deleted newest segment is not "OK".

The writer keeps its own record of how far the journal was durable (``durable.mark``,
rewritten at creation, rotation and close only); the newest snapshot is another witness.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.persistence.journal_durability import DURABLE_MARK_NAME, read_durable_mark
from stages.persistence.journal_errors import JournalError, TornTailWarning
from stages.persistence.journal_segments import list_segments
from stages.persistence.journal_verify import verify_journal
from stages.persistence.journal_writer import JournalWriter
from stages.persistence.snapshots import SnapshotStore
from stages.records import COMMAND_DTYPE
from tests.builders import commands


def write(directory: Path, batches: int, *, close: bool = True, fsync: str = "batch") -> int:
    """``batches`` appends of 40 records over small segments; return the last seq."""
    writer = JournalWriter(directory, COMMAND_DTYPE, segment_bytes=8192, fsync=fsync)
    for i in range(batches):
        writer.append(commands(1 + 40 * i, 40))
    if close:
        writer.close()
    else:
        writer.close_quietly()  # as a crash leaves it: no final mark
    return 40 * batches


def test_a_sound_journal_has_nothing_missing(tmp_path: Path) -> None:
    last = write(tmp_path, 10)
    report = verify_journal(tmp_path)
    assert report.missing == []
    assert read_durable_mark(tmp_path).durable_seq == last
    assert any(DURABLE_MARK_NAME in line for line in report.checked_against)


def test_a_deleted_newest_segment_is_reported_with_what_is_missing(tmp_path: Path) -> None:
    last = write(tmp_path, 10)
    segments = list_segments(tmp_path)
    assert len(segments) >= 3
    newest = segments[-1]
    first_lost = int(newest.name[:20])
    newest.unlink()
    report = verify_journal(tmp_path)
    assert report.last_seq == first_lost - 1
    [missing] = report.missing
    assert (missing.from_seq, missing.to_seq) == (first_lost, last)
    text = missing.describe()
    assert f"seqs {first_lost}..{last} ({last - first_lost + 1} records) are missing" in text
    assert newest.name in text and DURABLE_MARK_NAME in text


def test_a_deleted_newest_segment_after_a_crash_is_reported(tmp_path: Path) -> None:
    # no close: the mark is the one written when the newest segment was created
    write(tmp_path, 10, close=False)
    newest = list_segments(tmp_path)[-1]
    newest.unlink()
    [missing] = verify_journal(tmp_path).missing
    assert missing.from_seq == int(newest.name[:20]) and missing.to_seq is None
    assert "how many is not known" in missing.describe() and newest.name in missing.describe()


def test_the_mark_is_not_written_per_append(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, COMMAND_DTYPE, segment_bytes=1 << 20)
    mark = tmp_path / DURABLE_MARK_NAME
    created = mark.stat().st_ino
    for i in range(20):
        writer.append(commands(1 + 10 * i, 10))
    assert mark.stat().st_ino == created  # never replaced by an append
    assert read_durable_mark(tmp_path).durable_seq == 0
    writer.close()
    assert read_durable_mark(tmp_path).durable_seq == 200


def test_the_newest_snapshot_is_a_witness_too(tmp_path: Path) -> None:
    write(tmp_path / "j", 3)
    (tmp_path / "j" / DURABLE_MARK_NAME).unlink()  # a journal from before the mark
    SnapshotStore(tmp_path / "s").save(500, b"state")
    report = verify_journal(tmp_path / "j", snapshot_dir=tmp_path / "s")
    [missing] = report.missing
    assert (missing.from_seq, missing.to_seq) == (121, 500)
    assert "snapshot-00000000000000000500.tps covers up to seq 500" in missing.describe()
    assert verify_journal(tmp_path / "j").missing == []  # without a witness, nothing to say
    with pytest.raises(JournalError, match="does not exist"):
        verify_journal(tmp_path / "j", snapshot_dir=tmp_path / "nope")


def test_a_damaged_mark_is_said_and_ignored(tmp_path: Path) -> None:
    write(tmp_path, 2)
    mark = tmp_path / DURABLE_MARK_NAME
    mark.write_bytes(mark.read_bytes()[:-1] + b"\xff")
    report = verify_journal(tmp_path)
    assert report.missing == []
    assert any("damaged" in line for line in report.checked_against)


def test_an_all_zero_last_segment_names_its_first_seq(tmp_path: Path) -> None:
    write(tmp_path, 10)
    newest = list_segments(tmp_path)[-1]
    size = newest.stat().st_size
    with open(newest, "r+b") as f:
        f.write(bytes(size))
    with pytest.warns(TornTailWarning) as caught:
        report = verify_journal(tmp_path)
    [torn] = report.torn
    assert torn.seq == int(newest.name[:20])
    assert f"(from seq {int(newest.name[:20])})" in str(caught[0].message)
    assert "seq -1" not in torn.describe()
    assert report.missing and report.missing[0].from_seq == int(newest.name[:20])


def _replay(directory: Path):
    from stages.persistence.recovery import replay_journal
    from tests.builders import Counter

    return replay_journal(directory, None, Counter)


@pytest.mark.parametrize("lost", ["newest", "all"])
def test_replay_and_the_writer_refuse_a_journal_that_lost_its_newest_segments(
    tmp_path: Path, lost: str
) -> None:
    from stages.persistence.journal_errors import JournalLostRecordsError
    from stages.persistence.recovery import RecoveryError

    last = write(tmp_path, 10)
    segments = list_segments(tmp_path)
    gone = segments[-1:] if lost == "newest" else segments
    first_lost = int(gone[0].name[:20])
    for path in gone:
        path.unlink()
    with pytest.raises(RecoveryError, match=rf"seqs {first_lost}\.\.{last} .* are missing"):
        _replay(tmp_path)
    with pytest.raises(JournalLostRecordsError, match="cannot be appended to") as caught:
        JournalWriter(tmp_path, COMMAND_DTYPE, segment_bytes=8192)
    assert (caught.value.missing.from_seq, caught.value.missing.to_seq) == (first_lost, last)
    assert read_durable_mark(tmp_path).durable_seq == last  # the refusal rewrote nothing


def test_replay_up_to_a_seq_the_journal_still_holds_needs_nothing_lost_after_it(
    tmp_path: Path,
) -> None:
    from stages.persistence.recovery import replay_journal
    from tests.builders import Counter

    write(tmp_path, 10)
    segments = list_segments(tmp_path)
    segments[-1].unlink()
    held = int(segments[-1].name[:20]) - 1
    assert replay_journal(tmp_path, None, Counter, to_seq=held).last_seq == held


def test_with_fsync_never_a_short_journal_is_reported_but_still_replays(tmp_path: Path) -> None:
    from stages.persistence.recovery import replay_journal
    from tests.builders import Counter

    last = write(tmp_path, 10, fsync="never")
    list_segments(tmp_path)[-1].unlink()  # what a power loss may do to unsynced data
    assert verify_journal(tmp_path).missing  # verify still says what the mark knew
    result = replay_journal(tmp_path, None, Counter)
    assert result.last_seq < last
    with JournalWriter(tmp_path, COMMAND_DTYPE, segment_bytes=8192, fsync="never") as writer:
        assert writer.next_seq == result.last_seq + 1
