"""Shared fixtures: every test must leave nothing of its own in /dev/shm."""

from __future__ import annotations

import os

import pytest

from ringbuffer.segments import list_segments


@pytest.fixture(autouse=True)
def no_leftover_segments():
    """Fail a test that leaves a segment created by this process (or a dead one it made)."""
    before = {info.name for info in list_segments()}
    yield
    me = os.getpid()
    left = [
        info.name
        for info in list_segments()
        if info.name not in before and (info.creator_pid == me or not info.creator_alive)
    ]
    for name in left:
        from ringbuffer.segments import unlink_segment

        unlink_segment(name)
    assert not left, f"test left shared-memory segments behind: {left}"
