"""A supervisor killed with ``kill -9`` leaves no stage running: on its control poll each
stage sees that the supervisor its run directory's manifest names is gone (or its parent,
the supervisor's fork server, which exits with it, changed) and exits with an error on its
own; so does every stage of a supervisor that hangs (``SIGSTOP``: alive, but its heartbeats
stop). ``tradepipe clean``
then removes the rings and run files it left, and nothing else.

The test makes itself a child subreaper while it runs, so the orphaned stages become its
children: it can tell they exited (not just vanished into init, which may not reap them)
and with what status, and it reaps every one of them whatever happens.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipeline import control_messages as m
from pipeline.cli import main
from pipeline.control import MANIFEST, ControlError, PipelineClient
from pipeline.topology import STAGES
from ringbuffer.segments import list_segments

READY_TIMEOUT = 150.0  # seconds for five spawned stages to import and register
EXIT_TIMEOUT = 60.0  # seconds for the orphaned stages to notice and exit: a bound, not a guess
PR_SET_CHILD_SUBREAPER = 36

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="Linux")]


@contextlib.contextmanager
def subreaper() -> Iterator[None]:
    """Orphans of this process's descendants are re-parented to it while the block runs."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _pipeline_status(run_dir: Path, supervisor: subprocess.Popen) -> dict[str, int]:
    """Stage → pid, once every stage registered (the supervisor answers ``status``)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(ControlError):  # no manifest yet, or no answer yet
            with PipelineClient(run_dir) as client:
                reply = client.request(m.Status(), timeout=5.0)
            if isinstance(reply, m.PipelineStatus):
                pids = {stage.stage: stage.pid for stage in reply.stages}
                if set(pids) == set(STAGES):
                    return pids
        with contextlib.suppress(subprocess.TimeoutExpired):  # the pause between two asks
            supervisor.wait(0.2)
            raise AssertionError(f"the supervisor exited early ({supervisor.returncode})")
    raise AssertionError(f"the stages did not all register within {READY_TIMEOUT} s")


def _readable(fd: int, deadline: float) -> bool:
    """Whether ``fd`` (a pidfd: readable once its process exited) becomes readable before
    ``deadline``. ``poll``, not ``select``: a test process may hold fds above 1023."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))


def _wait_exited(pids: set[int], timeout: float) -> set[int]:
    """Those of ``pids`` that exited within ``timeout`` (bounded wait; nothing is reaped,
    so a child of another process counts once it is a zombie)."""
    exited: set[int] = set()
    deadline = time.monotonic() + timeout
    for pid in sorted(pids):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            exited.add(pid)
            continue
        try:
            if _readable(fd, deadline):
                exited.add(pid)
        finally:
            os.close(fd)
    return exited


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has exited: its parent has yet to reap it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _reap(pids: set[int], timeout: float) -> dict[int, int]:
    """Wait (bounded) for each of ``pids``, children of this process, and reap it; pid →
    wait status of those that exited (-1: gone, but not as a child of this process)."""
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    for pid in sorted(pids):
        try:
            fd = os.pidfd_open(pid)  # readable once it exited; waiting on it reaps nothing
        except ProcessLookupError:
            pass
        else:
            try:
                _readable(fd, deadline)
            finally:
                os.close(fd)
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # a child of the supervisor's fork server, not of ours
            if not _running(pid):
                statuses[pid] = -1
            continue
        if done:
            statuses[pid] = status
    return statuses


@pytest.mark.timeout(400)
@pytest.mark.parametrize("how", ["killed", "hung"])
def test_stages_exit_on_their_own_when_the_supervisor_is_gone_and_clean_removes_the_rest(
    tmp_path: Path, how: str
) -> None:
    run_dir = tmp_path / "rd"
    config = tmp_path / "run.toml"
    config.write_text(
        f"[load]\norders = 1_000_000_000\nbatch = 512\naccounts = 40\n"
        f'[journal]\ndirectory = "{tmp_path / "journal"}"\n'
        f'[snapshots]\ndirectory = "{tmp_path / "snapshots"}"\n'
        f'[pipeline]\nrun_dir = "{run_dir}"\n'
    )
    tradepipe = Path(sys.executable).with_name("tradepipe")
    descendants: set[int] = set()
    with subreaper(), open(tmp_path / "out.txt", "wb") as out:
        supervisor = subprocess.Popen([tradepipe, "run", str(config)], stdout=out, stderr=out)
        try:
            stages = _pipeline_status(run_dir, supervisor)
            # the stages, and any helper multiprocessing started: all must go
            descendants = {p.pid for p in psutil.Process(supervisor.pid).children(recursive=True)}
            assert set(stages.values()) <= descendants
            tag = f"tp{supervisor.pid}"
            rings = [info.name for info in list_segments() if tag in info.name]
            assert len(rings) == 3, rings

            if how == "hung":  # alive, but silent: the stages go after SUPERVISOR_SILENCE
                os.kill(supervisor.pid, signal.SIGSTOP)
                exited = _wait_exited(set(stages.values()), EXIT_TIMEOUT)
                assert exited == set(stages.values()), "stages outlived a silent supervisor"
            os.kill(supervisor.pid, signal.SIGKILL)  # (its zombies come to this process)
            assert supervisor.wait(EXIT_TIMEOUT) == -signal.SIGKILL
            statuses = _reap(set(stages.values()), EXIT_TIMEOUT)
            alive = {name: pid for name, pid in stages.items() if pid not in statuses}
            assert not alive, f"stages still running {EXIT_TIMEOUT} s after the supervisor died"
            for name, pid in stages.items():  # on their own: an exit status, not a signal
                status = statuses[pid]  # -1: reaped by the fork server the stages came from
                assert status == -1 or (os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0), (
                    name,
                    status,
                )
        finally:
            for pid in [supervisor.pid, *descendants]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            supervisor.wait(EXIT_TIMEOUT)
            _reap(descendants, EXIT_TIMEOUT)

    text = (tmp_path / "out.txt").read_text(errors="replace")
    assert "Traceback" not in text, text
    # what the dead supervisor left, and clean removes: its rings and run files
    assert {info.name for info in list_segments() if tag in info.name} == set(rings)
    assert (run_dir / MANIFEST).exists()
    try:
        assert main(["clean", "--run-dir", str(run_dir)]) == 0
    finally:
        assert [info.name for info in list_segments() if tag in info.name] == []
    assert list(run_dir.iterdir()) == []
    assert run_dir.stat().st_mode & 0o777 == 0o700
