"""A supervisor running in a thread for a test, and the rings a test left behind.

One helper for every test that drives a real pipeline: it starts ``Supervisor.run`` in a
thread, waits until every stage registered, hands the test the outcome dict the thread
fills (``report`` or ``error``), and on the way out drains the run (always, with
``stop_on_exit``; else only when the test failed), joins the thread and kills any stage the
run failed to reap, so a failing test never leaves a process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

from pipeline.supervisor import Supervisor
from ringbuffer.segments import list_segments

READY_TIMEOUT = 150  # seconds for the stages to start and register (a cold cache compiles)


@contextlib.contextmanager
def running(supervisor: Supervisor, *, stop_on_exit: bool = False) -> Iterator[dict]:
    """Run ``supervisor`` in a thread while the block runs (see the module docstring)."""
    outcome: dict[str, object] = {}

    def drive() -> None:
        try:
            outcome["report"] = supervisor.run()
        except BaseException as error:  # handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=drive)
    thread.start()
    try:
        assert supervisor.ready.wait(READY_TIMEOUT), "the stages never registered"
        yield outcome
    except BaseException:
        supervisor.request_stop()  # the test failed: drain and end the run
        raise
    finally:
        if stop_on_exit:
            supervisor.request_stop()
        thread.join(READY_TIMEOUT * 2)
        for pid in supervisor.pids.values():  # the run failed to reap them: never leave any
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not thread.is_alive()


def segments(tag: str) -> list[str]:
    """This process's rings of ``tag`` (another test run on the host may have its own)."""
    mine = f".{os.getpid()}.{tag}-"
    return [info.name for info in list_segments() if mine in info.name]
