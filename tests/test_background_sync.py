"""``BackgroundSync``: the id log's fsync on a thread, reported done through a pipe."""

from __future__ import annotations

import select
import threading

import pytest

from stages.gateway.background_sync import BackgroundSync

pytestmark = pytest.mark.timeout(60)


def test_a_sync_runs_on_its_thread_and_its_pipe_says_when_it_is_done():
    release, calls = threading.Event(), []

    def sync() -> None:
        assert release.wait(30)
        calls.append(threading.current_thread().name)

    syncer = BackgroundSync(sync)
    try:
        assert not syncer.in_flight
        syncer.wait()  # nothing in flight: returns at once
        syncer.start()
        assert syncer.in_flight
        with pytest.raises(RuntimeError, match="already in flight"):
            syncer.start()  # one at a time
        assert select.select([syncer.fd], [], [], 0)[0] == []  # not done: not readable
        release.set()
        assert select.select([syncer.fd], [], [], 30)[0] == [syncer.fd]
        syncer.wait()
        assert not syncer.in_flight and calls == ["id-log-sync"]
        assert select.select([syncer.fd], [], [], 0)[0] == []  # the byte was taken
        syncer.start()  # again
        syncer.wait()
        assert len(calls) == 2
    finally:
        release.set()
        syncer.close()


def test_a_failed_sync_raises_in_the_waiting_thread_and_the_next_one_runs():
    outcomes = [OSError(5, "Input/output error"), None]

    def sync() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    syncer = BackgroundSync(sync)
    try:
        syncer.start()
        with pytest.raises(OSError, match="Input/output error"):
            syncer.wait()
        assert not syncer.in_flight
        syncer.start()
        syncer.wait()  # the error was raised once, not again
        assert outcomes == []
    finally:
        syncer.close()
