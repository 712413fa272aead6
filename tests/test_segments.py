"""Segment lifecycle: names, listing, removal of what dead processes left behind."""

from __future__ import annotations

import contextlib
import multiprocessing
import os

import pytest

from pipeline.cli import main
from pipeline.exitcodes import ExitStatus
from ringbuffer import segments
from ringbuffer.segments import (
    SHM_DIR,
    create_segment,
    creator_pid,
    list_segments,
    remove_stale_segments,
    segment_name,
    unlink_segment,
)


def _create_and_die(label: str) -> None:
    create_segment(segment_name(label), 4096).close()


def leave_stale_segment(label: str) -> str:
    process = multiprocessing.get_context("spawn").Process(target=_create_and_die, args=(label,))
    process.start()
    process.join(60)
    return segment_name(label, process.pid)


def test_names_carry_prefix_and_creator():
    name = segment_name("orders", pid=42)
    assert name == "tradepipe.42.orders"
    assert creator_pid(name) == 42
    assert creator_pid("psm_1234") is None
    with pytest.raises(ValueError, match=r"without ./. or .\.."):
        segment_name("a.b")


def test_create_refuses_an_existing_name():
    segment = create_segment(segment_name("dup"), 4096)
    try:
        with pytest.raises(FileExistsError):
            create_segment(segment.name, 4096)
    finally:
        segment.close()
        segment.unlink()


@pytest.mark.timeout(120)
def test_remove_stale_segments_removes_only_dead_creators():
    stale = leave_stale_segment("stale")
    live = create_segment(segment_name("live"), 4096)
    try:
        names = {info.name: info for info in list_segments()}
        assert not names[stale].creator_alive
        assert names[live.name].creator_alive
        removed = remove_stale_segments()
        assert stale in removed
        assert live.name not in removed
        assert stale not in {info.name for info in list_segments()}
    finally:
        live.close()
        live.unlink()
        unlink_segment(stale)


def only_this_test(monkeypatch, marker: str) -> None:
    """Let ``clean`` see only entries whose names hold ``marker`` (the whole of /dev/shm is
    still scanned): other sessions' segments on this machine are never touched, and their
    test fixtures (which unlink stale segments that appear during their tests) cannot make
    ours vanish unseen."""
    real_scan = segments.scan_segments

    def scan():
        found, skipped = real_scan()
        return (
            [info for info in found if marker in info.name],
            [(name, why) for name, why in skipped if marker in name],
        )

    monkeypatch.setattr(segments, "scan_segments", scan)


@pytest.mark.timeout(120)
def test_tradepipe_clean_command(capsys, monkeypatch):
    marker = f"cli{os.getpid()}"
    only_this_test(monkeypatch, marker)
    live = create_segment(segment_name(marker), 4096)
    try:
        assert main(["clean"]) == 0
        assert f"removed {SHM_DIR / live.name}" not in capsys.readouterr().out, "alive"
        assert main(["clean", "--all"]) == 0
        assert f"removed {SHM_DIR / live.name}" in capsys.readouterr().out
    finally:
        live.close()
        live.unlink()


@pytest.mark.parametrize(
    ("name", "pid"),
    [
        ("tradepipe.42.orders", 42),
        ("tradepipe.2147483647.x", 2**31 - 1),
        ("tradepipe.99999999999999999999.x", None),  # beyond any pid (psutil overflowed)
        ("tradepipe.2147483648.x", None),
        ("tradepipe.0.x", None),
        ("tradepipe.042.x", None),  # segment_name never writes leading zeros
        ("tradepipe.\u0663.x", None),  # a digit, but not an ASCII one
        ("tradepipe.-1.x", None),
        ("tradepipe.12", None),
        ("tradepipe.12.", None),
        ("tradepipe.12.a.b", None),  # labels have no dots
        ("other.12.x", None),
    ],
)
def test_only_names_segment_name_can_make_carry_a_creator(name, pid):
    assert creator_pid(name) == pid


@contextlib.contextmanager
def odd_entries_in_shm(dead_pid: int):
    """Things any user can put in /dev/shm under names that look like ours (each name holds
    this test's pid, so it is unique to the test); removed on exit."""
    me = os.getpid()
    directory = SHM_DIR / f"tradepipe.{dead_pid}.dir{me}"  # sorts before the stale segment
    files = [
        SHM_DIR / f"tradepipe.099999999999999999999{me}.x",  # sorts first, overflows a pid
        SHM_DIR / f"tradepipe.99999999999999999999.x{me}",
        SHM_DIR / f"tradepipe.nopid.x{me}",
    ]
    directory.mkdir()
    try:
        for path in files:
            path.write_bytes(b"not a ring")
        yield [directory, *files]
    finally:
        for path in files:
            path.unlink(missing_ok=True)
        directory.rmdir()


@pytest.mark.timeout(120)
def test_clean_skips_odd_names_with_a_warning_and_still_removes_stale_segments(capsys, monkeypatch):
    """Odd names used to stop ``tradepipe clean`` with a traceback, leaving every stale
    segment after them (a directory named like a segment, a pid that overflows)."""
    me = os.getpid()
    only_this_test(monkeypatch, str(me))
    stale = leave_stale_segment(f"stale{me}")
    dead_pid = creator_pid(stale)
    try:
        with odd_entries_in_shm(dead_pid) as odd:
            status = main(["clean"])
            err = capsys.readouterr().err
            assert status == 0, err
            assert "Traceback" not in err
            assert not (SHM_DIR / stale).exists(), "the stale segment after the odd names"
            warnings = err.splitlines()
            for path in odd:
                assert path.exists(), f"{path} is not ours: it must be left alone"
                mine = [line for line in warnings if str(path) in line]
                assert len(mine) == 1, f"one warning line for {path}: {err!r}"
                assert mine[0].startswith(f"warning: skipped {path}: "), mine[0]
            assert f"skipped {odd[0]}: not a regular file" in err
    finally:
        unlink_segment(stale)


@pytest.mark.timeout(120)
def test_clean_reports_a_segment_it_cannot_remove_and_removes_the_others(monkeypatch, capsys):
    me = os.getpid()
    only_this_test(monkeypatch, f"{me}")
    first, second = (segment_name(f"{label}{me}") for label in ("stuck", "zfree"))
    for name in (first, second):  # live segments: ``--all`` below
        create_segment(name, 4096).close()
    real_unlink = segments.unlink_segment

    def unlink(name: str) -> None:
        if name == first:
            raise PermissionError(1, "Operation not permitted")
        real_unlink(name)

    monkeypatch.setattr(segments, "unlink_segment", unlink)
    try:
        status = main(["clean", "--all"])
        err = capsys.readouterr().err
        assert status == ExitStatus.REFUSED
        assert not (SHM_DIR / second).exists(), "the next segment is still removed"
        assert err.splitlines() == [
            f"tradepipe clean: could not remove {SHM_DIR / first}: Operation not permitted; "
            "remove it as its owner or as root"
        ]
    finally:
        real_unlink(first)
        real_unlink(second)
