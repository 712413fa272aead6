"""Segment lifecycle: names, listing, removal of what dead processes left behind."""

from __future__ import annotations

import multiprocessing

import pytest

from pipeline.cli import main
from ringbuffer.segments import (
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


@pytest.mark.timeout(120)
def test_tradepipe_clean_command(capsys):
    stale = leave_stale_segment("cli")
    assert main(["clean"]) == 0
    assert f"removed /dev/shm/{stale}" in capsys.readouterr().out
