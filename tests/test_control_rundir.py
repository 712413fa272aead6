"""The control plane's run directory and its users: permissions, tcp refusal, finding the
running pipeline (or a stale one), the verbs' client, and a stage in a spawned process."""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from pipeline import control_messages as m
from pipeline.control import (
    CLIENT_SOCKET,
    CONTROL_SOCKET,
    MANIFEST,
    ControlError,
    ControlServer,
    ControlTimeout,
    NoPipelineError,
    PipelineClient,
    PipelineManifest,
    StageControl,
    check_endpoint,
    clean_run_dir,
    find_pipeline,
    ipc_endpoint,
    prepare_run_dir,
    write_manifest,
)
from pipeline.exitcodes import ExitStatus
from ringbuffer.peers import process_start_ms

WAIT = 10.0


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.term()


# --- the run directory -----------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_a_new_run_directory_is_private(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        path = prepare_run_dir(tmp_path / "a" / "run")
    finally:
        os.umask(old)
    assert path == tmp_path / "a" / "run"
    assert path.stat().st_mode & 0o777 == 0o700
    assert prepare_run_dir(path) == path  # an existing private one is fine


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", [0o755, 0o770, 0o701])
def test_a_run_directory_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "run"
    path.mkdir()
    path.chmod(mode)
    with pytest.raises(ControlError, match=rf"run directory .*run is mode {mode:04o}: .*0700") as e:
        prepare_run_dir(path)
    assert e.value.status == ExitStatus.REFUSED
    assert path.stat().st_mode & 0o777 == mode  # refused, not repaired


@pytest.mark.timeout(30)
def test_a_run_directory_of_another_owner_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = prepare_run_dir(tmp_path / "run")
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)
    with pytest.raises(ControlError, match=rf"belongs to uid {me}, not to you \(uid {me + 1}\)"):
        prepare_run_dir(path)


@pytest.mark.timeout(30)
def test_a_run_directory_that_is_a_link_or_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ControlError, match=r"link is a symbolic link"):
        prepare_run_dir(tmp_path / "link")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ControlError, match=r"file is not a directory"):
        prepare_run_dir(tmp_path / "file")


@pytest.mark.timeout(30)
def test_a_run_directory_whose_socket_path_is_too_long_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match=r"more than the 107 a Unix socket allows"):
        ipc_endpoint(tmp_path / ("d" * 120), CONTROL_SOCKET)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5555", "tcp://*:7000"])
def test_tcp_is_refused_until_curve_is_configured(endpoint: str, context: zmq.Context) -> None:
    with pytest.raises(ControlError, match=r"TCP control endpoint requires ZeroMQ CURVE"):
        check_endpoint(endpoint)
    with pytest.raises(ControlError, match=r"requires ZeroMQ CURVE"):
        StageControl(endpoint, "risk", lambda x: m.Ack(), context=context)


@pytest.mark.timeout(30)
def test_other_transports_are_refused(context: zmq.Context) -> None:
    with pytest.raises(ControlError, match=r"inproc://x is not ipc://"):
        check_endpoint("inproc://x")


# --- finding the pipeline --------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_a_running_supervisor_is_found_and_a_closed_one_is_not(
    tmp_path: Path, context: zmq.Context
) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(NoPipelineError, match=r"no pipeline running \(no run directory .*run\)"):
        find_pipeline(run_dir)
    with ControlServer(run_dir, context=context) as server:
        found = find_pipeline(run_dir)
        assert found == server.manifest
        assert found.supervisor_pid == os.getpid()
        assert found.control == f"ipc://{run_dir / CONTROL_SOCKET}"
        assert found.client == f"ipc://{run_dir / CLIENT_SOCKET}"
        assert (run_dir / MANIFEST).stat().st_mode & 0o777 == 0o600
        with pytest.raises(ControlError, match=r"a pipeline is already running in .*pid"):
            ControlServer(run_dir, context=context)
    assert sorted(p.name for p in run_dir.iterdir()) == []  # close removes what it made
    with pytest.raises(NoPipelineError, match=r"run directory .*run has no pipeline\.json"):
        find_pipeline(run_dir)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.timeout(30)
def test_a_stale_run_directory_is_recognised(tmp_path: Path, context: zmq.Context) -> None:
    run_dir = prepare_run_dir(tmp_path / "run")
    pid = _dead_pid()
    write_manifest(run_dir, PipelineManifest(pid, 0, "ipc://x/control.sock", "ipc://x/c.sock"))
    with pytest.raises(NoPipelineError) as error:
        find_pipeline(run_dir)
    assert str(error.value) == (
        f"no pipeline running (stale run directory from pid {pid}; tradepipe clean removes it)"
    )
    assert error.value.status == ExitStatus.FAILED
    with pytest.raises(NoPipelineError, match=r"stale run directory"):
        PipelineClient(run_dir, context=context)
    # a live pid that is not the supervisor it was (pid reuse) is stale too
    write_manifest(run_dir, PipelineManifest(os.getpid(), 1, "ipc://x/a", "ipc://x/b"))
    with pytest.raises(NoPipelineError, match=rf"stale run directory from pid {os.getpid()}"):
        find_pipeline(run_dir)
    # and a new supervisor takes a stale directory over, its dead sockets too
    (run_dir / CONTROL_SOCKET).write_bytes(b"")
    (run_dir / CLIENT_SOCKET).write_bytes(b"")
    with ControlServer(run_dir, context=context) as server:
        assert find_pipeline(run_dir) == server.manifest


@pytest.mark.timeout(30)
def test_clean_run_dir_removes_what_a_dead_supervisor_left_and_refuses_a_live_one(
    tmp_path: Path, context: zmq.Context
) -> None:
    run_dir = prepare_run_dir(tmp_path / "run")
    assert clean_run_dir(tmp_path / "none") == [] and clean_run_dir(run_dir) == []
    write_manifest(run_dir, PipelineManifest(_dead_pid(), 0, "ipc://x/a", "ipc://x/b"))
    made = [CONTROL_SOCKET, CLIENT_SOCKET, ".pipeline.json.77.partial", "output.progress"]
    made.append("restart-2.state")
    for name in [*made, "journal", "notes.state"]:
        (run_dir / name).write_bytes(b"")
    (run_dir / "restart-9.state").mkdir()  # not a file a supervisor makes
    removed = clean_run_dir(run_dir)
    assert sorted(p.name for p in removed) == sorted([MANIFEST, *made])
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "journal",
        "notes.state",
        "restart-9.state",
    ]  # nothing else is touched
    with ControlServer(run_dir, context=context):
        with pytest.raises(ControlError, match=r"a pipeline is running in .*stop it first"):
            clean_run_dir(run_dir)
        assert (run_dir / MANIFEST).exists()


@pytest.mark.timeout(30)
def test_a_damaged_manifest_says_so(tmp_path: Path) -> None:
    run_dir = prepare_run_dir(tmp_path / "run")
    (run_dir / MANIFEST).write_text('{"supervisor_pid": "x"}')
    with pytest.raises(NoPipelineError, match=r"pipeline\.json is damaged: .*tradepipe clean"):
        find_pipeline(run_dir)


@pytest.mark.timeout(30)
def test_a_run_directory_opened_to_others_is_refused_by_the_client_too(tmp_path: Path) -> None:
    run_dir = prepare_run_dir(tmp_path / "run")
    run_dir.chmod(0o777)
    with pytest.raises(ControlError, match=r"is mode 0777"):
        find_pipeline(run_dir)


# --- the verbs' client -----------------------------------------------------------------------
def _ask_in_a_thread(
    run_dir: Path, context: zmq.Context, message: m.Message, timeout: float
) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []

    def ask() -> None:
        try:
            with PipelineClient(run_dir, context=context) as client:
                result.append(client.request(message, timeout))
        except ControlError as error:
            result.append(error)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.timeout(30)
def test_a_client_request_reaches_the_supervisor_and_its_reply_comes_back(
    tmp_path: Path, context: zmq.Context
) -> None:
    asked: list[m.Message] = []

    def handler(message: m.Message) -> m.Message:
        asked.append(message)
        return m.PipelineStatus(supervisor_pid=os.getpid(), stages=[])

    with ControlServer(tmp_path / "run", client_handler=handler, context=context) as server:
        thread, result = _ask_in_a_thread(tmp_path / "run", context, m.Status(), WAIT)
        while thread.is_alive():
            server.poll(0.05)
        thread.join()
    assert asked == [m.Status()]
    assert result == [m.PipelineStatus(supervisor_pid=os.getpid(), stages=[])]


@pytest.mark.timeout(30)
def test_a_supervisor_without_a_client_handler_refuses(
    tmp_path: Path, context: zmq.Context
) -> None:
    with ControlServer(tmp_path / "run", context=context) as server:
        thread, result = _ask_in_a_thread(tmp_path / "run", context, m.Halt(1), WAIT)
        while thread.is_alive():
            server.poll(0.05)
        thread.join()
    assert result == [m.Refused("this supervisor takes no requests from clients")]


@pytest.mark.timeout(30)
def test_a_client_times_out_when_the_supervisor_does_not_answer(
    tmp_path: Path, context: zmq.Context
) -> None:
    with ControlServer(tmp_path / "run", context=context):  # never polled
        thread, result = _ask_in_a_thread(tmp_path / "run", context, m.Status(), 0.1)
        thread.join(WAIT)
    [error] = result
    assert isinstance(error, ControlTimeout)
    assert str(error) == (
        f"the pipeline (supervisor pid {os.getpid()}) did not answer Status within 0.1 s"
    )


# --- a stage in a process of its own ---------------------------------------------------------
def stage_process(endpoint: str) -> None:
    """A spawned stage: answers Status with its pid until it is told to Stop."""
    stopping = False

    def handler(message: m.Message) -> m.Message:
        nonlocal stopping
        if isinstance(message, m.Stop):
            stopping = True
            return m.Ack("stopping")
        return m.StatusReply(stage="matching", state="running", pid=os.getpid())

    context = zmq.Context()
    with StageControl(endpoint, "matching", handler, context=context) as control:
        while not stopping:
            control.poll(0.05)
    context.term()


@pytest.mark.timeout(60)
def test_a_stage_in_a_spawned_process_answers_and_stops(
    tmp_path: Path, context: zmq.Context
) -> None:
    with ControlServer(tmp_path / "run", context=context) as server:
        child = multiprocessing.get_context("spawn").Process(
            target=stage_process, args=(server.manifest.control,)
        )
        child.start()
        try:
            server.wait_registered(["matching"], 45)
            assert server.pid("matching") == child.pid
            reply = server.request("matching", m.Status(), timeout=WAIT)
            assert reply == m.StatusReply(stage="matching", state="running", pid=child.pid)
            assert server.request("matching", m.Stop(), timeout=WAIT) == m.Ack("stopping")
            child.join(WAIT)
            assert child.exitcode == 0
        finally:
            if child.is_alive():
                child.kill()
                child.join()


@pytest.mark.timeout(30)
def test_tradepipe_clean_removes_a_dead_supervisors_run_files_and_refuses_a_live_one(
    tmp_path: Path, context: zmq.Context, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    from pipeline.cli import main
    from ringbuffer import segments

    monkeypatch.setattr(
        segments, "scan_segments", lambda: ([], [])
    )  # other runs' segments: not ours
    run_dir = prepare_run_dir(tmp_path / "run")
    write_manifest(run_dir, PipelineManifest(_dead_pid(), 0, "ipc://x/a", "ipc://x/b"))
    (run_dir / CONTROL_SOCKET).write_bytes(b"")
    assert main(["clean", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"removed {run_dir / MANIFEST}" in out and f"removed {run_dir / CONTROL_SOCKET}" in out
    assert list(run_dir.iterdir()) == []
    with ControlServer(run_dir, context=context):
        assert main(["clean", "--run-dir", str(run_dir)]) == ExitStatus.REFUSED
        [line] = capsys.readouterr().err.splitlines()
        assert re.search(r"tradepipe clean: a pipeline is running in .*stop it first", line)
        assert (run_dir / MANIFEST).exists()


@pytest.mark.timeout(30)
def test_clean_run_dir_removes_the_rings_a_dead_supervisor_left_and_nothing_else(
    tmp_path: Path,
) -> None:
    """Its rings go, listed in the manifest or not, as long as its pid is free; another
    process's segments and one only shaped like ours stay."""
    from ringbuffer.segments import SHM_DIR, create_segment, segment_name, unlink_segment

    run_dir = prepare_run_dir(tmp_path / "run")
    dead = _dead_pid()
    tag = f"rd{os.getpid()}"
    names = [segment_name(f"{tag}-{role}", dead) for role in ("commands", "events")]
    unlisted = segment_name(f"{tag}-checked", dead)
    others = [segment_name(f"{tag}-mine"), segment_name(f"{tag}-x", _dead_pid())]
    for name in [*names, unlisted, *others]:
        create_segment(name, 4096).close()
    lookalike = SHM_DIR / f"tradepipe.{dead}.{tag}.odd"  # not a name segments make
    lookalike.write_bytes(b"")
    try:
        manifest = PipelineManifest(dead, 0, "ipc://x/a", "ipc://x/b", tuple(names))
        write_manifest(run_dir, manifest)
        removed = clean_run_dir(run_dir)
        assert sorted(removed) == sorted(
            [run_dir / MANIFEST, *(SHM_DIR / n for n in [*names, unlisted])]
        )
        left = {p.name for p in SHM_DIR.iterdir() if tag in p.name}
        assert left == {*others, lookalike.name}
    finally:
        for name in [*names, unlisted, *others]:
            unlink_segment(name)
        lookalike.unlink(missing_ok=True)


@pytest.mark.timeout(30)
def test_a_reused_supervisor_pid_keeps_its_new_segments(tmp_path: Path) -> None:
    """The manifest's pid now belongs to another process (here: this one): only listed
    rings written before that process started go, never what it created since."""
    from ringbuffer.segments import SHM_DIR, create_segment, segment_name, unlink_segment

    run_dir = prepare_run_dir(tmp_path / "run")
    tag = f"ru{os.getpid()}"
    old, new, unlisted = (segment_name(f"{tag}-{label}") for label in ("old", "new", "other"))
    for name in (old, new, unlisted):
        create_segment(name, 4096).close()
    try:
        os.utime(SHM_DIR / old, (1_000_000, 1_000_000))  # written in 1970: the dead one's
        os.utime(SHM_DIR / unlisted, (1_000_000, 1_000_000))
        write_manifest(
            run_dir, PipelineManifest(os.getpid(), 1, "ipc://x/a", "ipc://x/b", (old, new))
        )
        assert clean_run_dir(run_dir) == [SHM_DIR / old, run_dir / MANIFEST]
        assert (SHM_DIR / new).exists() and (SHM_DIR / unlisted).exists()
    finally:
        for name in (old, new, unlisted):
            unlink_segment(name)


@pytest.mark.timeout(30)
def test_a_new_supervisor_removes_the_rings_a_dead_one_left_in_its_run_dir(
    tmp_path: Path, context: zmq.Context
) -> None:
    from ringbuffer.segments import SHM_DIR, create_segment, segment_name, unlink_segment

    run_dir = prepare_run_dir(tmp_path / "run")
    dead = _dead_pid()
    ring = segment_name(f"ns{os.getpid()}-commands", dead)
    create_segment(ring, 4096).close()
    try:
        write_manifest(run_dir, PipelineManifest(dead, 0, "ipc://x/a", "ipc://x/b", (ring,)))
        mine = (segment_name(f"ns{os.getpid()}-commands"),)
        with ControlServer(run_dir, context=context, rings=mine) as server:
            assert not (SHM_DIR / ring).exists()
            assert SHM_DIR / ring in server.removed
            assert find_pipeline(run_dir).rings == mine
    finally:
        unlink_segment(ring)


@pytest.mark.timeout(30)
def test_the_rings_of_a_supervisor_not_yet_reaped_go_too(tmp_path: Path) -> None:
    """A killed supervisor whose parent has not reaped it yet is a zombie holding its pid:
    dead all the same, and its rings go (listed in the manifest or not)."""
    from ringbuffer.segments import SHM_DIR, create_segment, segment_name, unlink_segment

    child = subprocess.Popen(["true"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    ring = segment_name(f"zo{os.getpid()}-commands", child.pid)
    create_segment(ring, 4096).close()
    try:
        run_dir = prepare_run_dir(tmp_path / "run")
        started = process_start_ms(child.pid)
        write_manifest(run_dir, PipelineManifest(child.pid, started, "ipc://x/a", "ipc://x/b"))
        assert clean_run_dir(run_dir) == [SHM_DIR / ring, run_dir / MANIFEST]
    finally:
        unlink_segment(ring)
        child.wait()
