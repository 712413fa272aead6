"""The control plane: ZeroMQ sockets in a private run directory between the supervisor, its
stages and the command-line verbs, carrying ``pipeline.control_messages``.

Only control moves here (status, stop, snapshot, halts, kill switch, deposits, heartbeats);
records move through the rings. Three parts:

* **The run directory** (``prepare_run_dir``): mode 0700, owned by this user. One that
  exists with looser permissions, another owner, or as a symbolic link is refused, never
  repaired: someone else may be listening there. It holds the two ``ipc://`` sockets and
  ``pipeline.json`` (``PipelineManifest``: the endpoints, the supervisor's pid and start
  time, and the ring segments it creates), through which a command-line verb finds the
  running pipeline (``find_pipeline``); a manifest whose supervisor is dead is recognised
  as stale, and ``clean_run_dir`` (``tradepipe clean``, and a new ``ControlServer`` in the
  same directory) removes what it left: its files and its rings. ``tcp://`` endpoints need
  ZeroMQ CURVE authentication, which is not configured yet, so they are refused
  (``check_endpoint``).
* **The supervisor side** (``ControlServer``): a ROUTER bound on ``control.sock`` where each
  stage's DEALER connects under the stage's name, and a ROUTER on ``client.sock`` for the
  verbs. ``request(stage, message, timeout)`` returns the stage's reply or raises
  ``ControlTimeout``; ``broadcast`` asks every registered stage; ``last_seen`` / ``stale``
  track heartbeats against an injectable clock.
* **The stage side** (``StageControl``): a DEALER with the stage's name as identity. It
  registers on connect; a stage's run loop calls ``poll()`` between batches (a zero-timeout
  ``zmq.Poller`` poll and a clock read when idle), which answers every waiting request
  through the stage's handler and sends a heartbeat when one is due. Its run loop's
  ``LoopChannel`` raises ``SupervisorGoneError`` once the supervisor process is gone or has
  been silent for ``SUPERVISOR_SILENCE`` seconds, so a stage never outlives its supervisor.

Frames: a stage or client sends ``[request id (8 bytes, little-endian), msgpack]``; the
ROUTER sees the sender's identity before them and replies with the same id. Id 0 is for
messages that are not answered (``Register``, ``Heartbeat``). Nothing a peer sends crashes
either side: a message that does not decode is counted (``undecodable``) and answered
``Refused`` with msgspec's reason; a reply that comes after its request timed out is counted
(``late_replies``) and dropped.

The supervisor (``pipeline.supervisor``, ``tradepipe run``) and the stages use
it; ``tradepipe status`` / ``stop`` reach it through ``PipelineClient``
(``docs/architecture.md``, "Control plane").
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import psutil
import zmq

from pipeline import control_messages as m
from pipeline.exitcodes import REFUSED_ERRNOS, CommandError, ExitStatus
from ringbuffer.peers import Process, peer_state, process_start_ms
from ringbuffer.segments import SHM_DIR, creator_pid, scan_segments, unlink_segment

CONTROL_SOCKET = "control.sock"  # stages ↔ supervisor
CLIENT_SOCKET = "client.sock"  # command-line verbs → supervisor
MANIFEST = "pipeline.json"
#: every file a supervisor may create in its run directory (names and glob patterns), all
#: of which a dead supervisor's ``clean_run_dir`` removes, and nothing else: the manifest,
#: its sockets, a manifest being written, output's release position (``output.progress``,
#: ``pipeline.supervisor``) and the state a stage restart starts from. A supervisor that
#: creates another file there adds it here.
PROGRESS_FILE = "output.progress"
GATEWAY_SOCKET = "gateway.sock"  # clients → the order gateway (the default endpoint)
MARKET_DATA_SOCKET = "market-data.sock"  # the market-data feed (the default endpoint)
ANSWERS_DOORBELL = "answers.bell"  # the answers ring's doorbell (output → the gateway)
RESTART_STATE = "restart-{number}.state"
RUN_FILES = (
    MANIFEST,
    CONTROL_SOCKET,
    CLIENT_SOCKET,
    f".{MANIFEST}.*.partial",
    PROGRESS_FILE,
    RESTART_STATE.format(number="*"),
    GATEWAY_SOCKET,
    MARKET_DATA_SOCKET,
    ANSWERS_DOORBELL,
)
#: A Unix socket path holds at most 107 bytes (``sun_path`` is 108 with its NUL).
MAX_IPC_PATH = 107
NO_REPLY = 0  # the request id of messages that are not answered
#: how often (seconds) each side of the control plane says it is alive when it has nothing
#: else to say: every wake-up costs an idle pipeline CPU, and a death is seen otherwise
#: (exit codes, ``SUPERVISOR_CHECK_EVERY``); only a hang needs heartbeats
HEARTBEAT_EVERY = 0.5
#: seconds a stage waits for word from its supervisor (which beats every 0.5 s) before it
#: takes it for gone: ten beats missed. Only a supervisor that lives but hangs (stopped,
#: deadlocked, swapped out) needs it, since a dead one is seen within
#: ``SUPERVISOR_CHECK_EVERY``; so it leaves a wide margin over the pauses of a busy
#: supervisor on a crowded host (a status broadcast or a stop request waits up to 2 s; its
#: engine replica catches up and writes snapshots between beats), because a false verdict
#: stops the whole pipeline
SUPERVISOR_SILENCE = 5.0
#: how often (seconds) a stage's ``LoopChannel`` checks that its supervisor process exists:
#: one ``getppid()``, never per batch
SUPERVISOR_CHECK_EVERY = 0.25

Clock = Callable[[], float]  # seconds, monotonic
Handler = Callable[[m.Message], m.Message]


class ControlError(CommandError):
    """The control plane cannot do what was asked; the message says what and what to do."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.REFUSED) -> None:
        super().__init__(message, status)


class ControlTimeout(ControlError):
    """A request got no reply within its timeout."""


class NoPipelineError(ControlError):
    """A verb found no running pipeline through the run directory (none, or a stale one)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitStatus.FAILED)


class SupervisorGoneError(ControlError):
    """A stage's supervisor died or went silent. Raised from the stage's control poll, it
    ends the stage's run loop with an error (exit status ≠ 0, its outputs not finished):
    nobody is left to watch the stage, stop it or collect its result, and the rings and
    journal lock it holds must be freed for ``tradepipe clean`` and the next run."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitStatus.FAILED)


# --- the run directory -----------------------------------------------------------------------
class PipelineManifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``pipeline.json``: how a verb reaches the running pipeline, and whether it still runs."""

    supervisor_pid: int
    supervisor_start_ms: int  # with the pid, identifies the supervisor despite pid reuse
    control: str  # the stages' endpoint
    client: str  # the verbs' endpoint
    # the /dev/shm segment names of the rings the supervisor creates (written before it
    # creates them), so that what a dead supervisor left is removed exactly, even after
    # its pid was reused; absent in manifests of supervisors that do not list them
    rings: tuple[str, ...] = ()
    # the order gateway's endpoints (ROUTER) and the market-data feed's (PUB), when it runs
    gateway: tuple[str, ...] = ()
    market_data: tuple[str, ...] = ()


def prepare_run_dir(path: str | Path) -> Path:
    """Create the run directory ``path`` (mode 0700, parents as needed), or check that the
    existing one is private to this user; the absolute path, or a ``ControlError``: exit 4
    where the system refuses (no permission, read-only, disk full), else 2 (a path that
    cannot be a directory, e.g. under a file: the config names a wrong path)."""
    path = Path(path).absolute()
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except NotADirectoryError:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        raise ControlError(
            f"cannot create the run directory {path}: {blocker} is not a directory; set "
            "[pipeline] run_dir to a path under a directory",
            ExitStatus.USAGE,
        ) from None
    except OSError as error:
        status = ExitStatus.REFUSED if error.errno in REFUSED_ERRNOS else ExitStatus.USAGE
        raise ControlError(
            f"cannot create the run directory {path}: {error.strerror or error}; "
            "set [pipeline] run_dir to a directory you may write",
            status,
        ) from None
    else:
        os.chmod(path, 0o700)  # whatever the umask took away, never more than 0700
    return check_run_dir(path)


def check_run_dir_creatable(path: str | Path) -> Path:
    """Refuse now what ``prepare_run_dir(path)`` would refuse for a directory that does not
    exist yet, without creating anything: a path under a file (exit 2) or under a
    directory this user may not write (exit 4). ``tradepipe run`` asks before ``--fresh``
    deletes a previous run, and creates the directory only when the supervisor starts."""
    path = Path(path).absolute()
    parent = next(p for p in path.parents if p.exists() or p.is_symlink())
    if not parent.is_dir():
        raise ControlError(
            f"cannot create the run directory {path}: {parent} is not a directory; set "
            "[pipeline] run_dir to a path under a directory",
            ExitStatus.USAGE,
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ControlError(
            f"cannot create the run directory {path}: no permission to write in {parent}; "
            "set [pipeline] run_dir to a directory you may write",
            ExitStatus.REFUSED,
        )
    return path


def check_run_dir(path: str | Path) -> Path:
    """``path`` if it is a directory (not a link) owned by this user and closed to others."""
    path = Path(path).absolute()
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise ControlError(f"run directory {path} does not exist") from None
    if stat.S_ISLNK(info.st_mode):
        raise ControlError(
            f"run directory {path} is a symbolic link: name the directory itself "
            "(a link may be redirected by whoever owns it)"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise ControlError(
            f"run directory {path} is not a directory: remove it or name another",
            ExitStatus.USAGE,  # a wrong path, as for a journal directory that is a file
        )
    if info.st_uid != os.geteuid():
        raise ControlError(
            f"run directory {path} belongs to uid {info.st_uid}, not to you (uid "
            f"{os.geteuid()}): its sockets are not private; name a directory of your own"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ControlError(
            f"run directory {path} is mode {mode:04o}: others may reach its control sockets; "
            f"it must be 0700 (chmod 700 {path}, or remove it and let tradepipe create it)"
        )
    return path


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` if this build may use it: ``ipc://`` only (``tcp://`` needs CURVE)."""
    if endpoint.startswith("tcp://"):
        raise ControlError(
            f"control endpoint {endpoint} is TCP: a TCP control endpoint requires ZeroMQ CURVE "
            "authentication, which is not configured; use the ipc:// sockets of the run "
            "directory"
        )
    if not endpoint.startswith("ipc://"):
        raise ControlError(
            f"control endpoint {endpoint} is not ipc://: control runs over the ipc:// sockets "
            "of the run directory"
        )
    return endpoint


def ipc_endpoint(run_dir: Path, name: str) -> str:
    """The ``ipc://`` endpoint of socket ``name`` in ``run_dir``, if its path fits."""
    path = Path(run_dir).absolute() / name
    if len(os.fsencode(path)) > MAX_IPC_PATH:
        raise ControlError(
            f"socket path {path} is {len(os.fsencode(path))} bytes, more than the "
            f"{MAX_IPC_PATH} a Unix socket allows: set [pipeline] run_dir to a shorter path"
        )
    return f"ipc://{path}"


def write_manifest(run_dir: Path, manifest: PipelineManifest) -> Path:
    """Write ``pipeline.json`` (mode 0600) whole: under a temporary name, then renamed."""
    final = Path(run_dir) / MANIFEST
    partial = final.with_name(f".{MANIFEST}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
    os.replace(partial, final)
    return final


def find_pipeline(run_dir: str | Path) -> PipelineManifest:
    """The manifest of the pipeline running in ``run_dir``, or ``NoPipelineError`` saying
    why none runs (no directory, no manifest, a damaged one, a dead supervisor)."""
    run_dir = Path(run_dir).absolute()
    if not run_dir.exists():
        raise NoPipelineError(f"no pipeline running (no run directory {run_dir})")
    check_run_dir(run_dir)
    try:
        raw = (run_dir / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise NoPipelineError(
            f"no pipeline running (run directory {run_dir} has no {MANIFEST})"
        ) from None
    try:
        manifest = msgspec.json.decode(raw, type=PipelineManifest)
    except msgspec.DecodeError as error:
        raise NoPipelineError(
            f"no pipeline running ({run_dir / MANIFEST} is damaged: {error}; "
            "tradepipe clean removes it)"
        ) from None
    if peer_state(manifest.supervisor_pid, manifest.supervisor_start_ms) is not None:
        raise NoPipelineError(
            f"no pipeline running (stale run directory from pid {manifest.supervisor_pid}; "
            "tradepipe clean removes it)"
        )
    check_endpoint(manifest.control)
    check_endpoint(manifest.client)
    return manifest


def read_manifest(run_dir: str | Path) -> PipelineManifest | None:
    """The manifest in ``run_dir`` as written, live or stale; None if there is none or it
    does not decode (whoever needs a live pipeline asks ``find_pipeline``)."""
    try:
        raw = (Path(run_dir) / MANIFEST).read_bytes()
        return msgspec.json.decode(raw, type=PipelineManifest)
    except (OSError, msgspec.DecodeError):
        return None


def supervisor_of(endpoint: str) -> PipelineManifest | None:
    """The manifest of the supervisor that bound ``endpoint``: the ``pipeline.json`` in the
    socket's directory, if it names that endpoint; None if there is none (a test's)."""
    manifest = read_manifest(Path(endpoint.removeprefix("ipc://")).parent)
    return manifest if manifest is not None and manifest.control == endpoint else None


def dead_supervisor_rings(manifest: PipelineManifest) -> list[str]:
    """The ring segments in /dev/shm that the dead supervisor of ``manifest`` left.

    Only names ``ringbuffer.segments`` accepts as this project's (a regular file, a
    well-formed ``tradepipe.<pid>.<label>``) created by that supervisor's pid, and of
    those only: the rings the manifest lists, and any segment of that pid while no
    running process holds the pid (a zombie, e.g. the supervisor itself not yet reaped by
    its parent, creates nothing). A listed ring whose pid a newer process holds (pid
    reuse) goes only if it was last written before that process started: what the newer
    process created can only be younger. The caller has made sure the supervisor is dead.
    """
    pid = manifest.supervisor_pid
    listed = {name for name in manifest.rings if creator_pid(name) == pid}
    infos, _ = scan_segments()
    mine = [info for info in infos if info.creator_pid == pid]
    try:
        holder = psutil.Process(pid)
        started = None if holder.status() == psutil.STATUS_ZOMBIE else holder.create_time()
    except psutil.Error:
        started = None  # nobody holds the pid: nothing newer can hold the names
    if started is None:
        return [info.name for info in mine]
    names = []
    for info in mine:
        if info.name not in listed:
            continue
        try:
            written = (SHM_DIR / info.name).stat().st_mtime
        except OSError:
            continue
        if written < started:
            names.append(info.name)
    return names


def _remove_leftovers(run_dir: Path) -> list[Path]:
    """What a dead supervisor left: its rings in /dev/shm and its files in ``run_dir``
    (the caller has made sure no live supervisor holds ``run_dir``)."""
    removed: list[Path] = []
    manifest = read_manifest(run_dir)
    if manifest is not None:
        for name in dead_supervisor_rings(manifest):
            try:
                unlink_segment(name)
            except OSError:
                continue  # not ours to remove after all: tradepipe clean reports it
            removed.append(SHM_DIR / name)
    for pattern in RUN_FILES:
        for path in sorted(run_dir.glob(pattern)):
            if path.is_symlink() or not path.is_dir():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def clean_run_dir(run_dir: str | Path) -> list[Path]:
    """Remove what a dead supervisor left (``pipeline.json``, its sockets, a partial
    manifest in ``run_dir``; the rings it created in /dev/shm, see
    ``dead_supervisor_rings``) and return what was removed; nothing if there is no
    manifest. A live pipeline's are refused (``ControlError``); the directory stays."""
    run_dir = Path(run_dir).absolute()
    try:
        manifest = find_pipeline(run_dir)
    except NoPipelineError:
        pass  # none, stale or damaged: what is left may go
    else:
        raise ControlError(
            f"a pipeline is running in {run_dir} (supervisor pid {manifest.supervisor_pid}): "
            "stop it first (tradepipe stop)"
        )
    if not run_dir.is_dir():
        return []
    return _remove_leftovers(run_dir)


def _router(context: zmq.Context, endpoint: str) -> zmq.Socket:
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # sending to a missing peer raises
    socket.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted stage takes its name over
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as error:
        socket.close()
        raise ControlError(f"cannot bind the control socket {endpoint}: {error}") from None
    return socket


def _dealer(context: zmq.Context, endpoint: str, identity: bytes) -> zmq.Socket:
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.IDENTITY, identity)
    socket.connect(endpoint)
    return socket


def _request_id(frame: bytes) -> int | None:
    return int.from_bytes(frame, "little") if len(frame) == 8 else None


def _id_frame(request_id: int) -> bytes:
    return request_id.to_bytes(8, "little")


def _received(socket: zmq.Socket) -> Iterator[list[bytes]]:
    """Every message waiting on ``socket``, without waiting for more."""
    while True:
        try:
            yield socket.recv_multipart(flags=zmq.NOBLOCK)
        except zmq.Again:
            return


# --- the supervisor side ---------------------------------------------------------------------
class ControlServer:
    """The supervisor's end: stages register, heartbeat and answer here; verbs ask here.

    Single-threaded, like the supervisor: nothing happens between calls. ``poll(timeout)``
    handles whatever arrived (registrations, heartbeats, late replies, verbs' requests, which
    go to ``client_handler``); ``request`` and ``broadcast`` poll while they wait.
    ``clock`` (seconds) times heartbeats only, so a test can drive staleness; request
    timeouts are real time. ``rings``: the segment names of the rings the supervisor is
    about to create, written into the manifest so that ``clean_run_dir`` can remove them
    should it die. What a dead supervisor left in ``run_dir`` (its files and rings) is
    removed first, as ``clean_run_dir`` does.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        stale_after: float = 1.0,
        clock: Clock = time.monotonic,
        client_handler: Handler | None = None,
        context: zmq.Context | None = None,
        rings: Iterable[str] = (),
        gateway: Iterable[str] = (),
        market_data: Iterable[str] = (),
    ) -> None:
        self.run_dir = prepare_run_dir(run_dir)
        try:
            running = find_pipeline(self.run_dir)
        except NoPipelineError:
            self.removed = _remove_leftovers(self.run_dir)  # none, or a stale one's
        else:
            raise ControlError(
                f"a pipeline is already running in {self.run_dir} (supervisor pid "
                f"{running.supervisor_pid}): stop it (tradepipe stop) or use another run_dir"
            )
        self.stale_after = stale_after
        self.clock = clock
        self.client_handler = client_handler
        self.undecodable = 0  # messages that did not decode (each answered Refused)
        self.late_replies = 0  # replies whose request had timed out, or unknown ids
        self._pending: dict[int, str] = {}  # request id → stage, while a request waits
        self._replies: dict[int, m.Message] = {}  # request id → reply, until collected
        self._pids: dict[str, int] = {}
        self._last_seen: dict[str, float] = {}
        self._next_id = 1
        self._context = context or zmq.Context.instance()
        control, client = (ipc_endpoint(self.run_dir, n) for n in (CONTROL_SOCKET, CLIENT_SOCKET))
        self._control = _router(self._context, control)
        try:
            self._client = _router(self._context, client)
        except ControlError:
            self._control.close()
            raise
        self._poller = zmq.Poller()
        self._poller.register(self._control, zmq.POLLIN)
        self._poller.register(self._client, zmq.POLLIN)
        pid = os.getpid()
        self.manifest = PipelineManifest(
            pid,
            process_start_ms(pid),
            control,
            client,
            tuple(rings),
            tuple(gateway),
            tuple(market_data),
        )
        write_manifest(self.run_dir, self.manifest)

    # heartbeats and registration
    @property
    def stages(self) -> tuple[str, ...]:
        """The stages that have registered, in the order they did."""
        return tuple(self._pids)

    def pid(self, stage: str) -> int | None:
        return self._pids.get(stage)

    def last_seen(self, stage: str) -> float | None:
        """The clock reading when ``stage`` last sent anything, None if it never did."""
        return self._last_seen.get(stage)

    def stale(self) -> list[str]:
        """Registered stages silent for more than ``stale_after`` seconds of ``clock``."""
        now = self.clock()
        return [s for s in self._pids if now - self._last_seen[s] > self.stale_after]

    def forget(self, stage: str) -> None:
        """Drop ``stage``'s registration (it died): ``wait_registered`` then waits for the
        process that replaces it, whose socket takes the name over."""
        self._pids.pop(stage, None)
        self._last_seen.pop(stage, None)

    def send_heartbeats(self) -> None:
        """One ``Heartbeat`` to every registered stage (a stage that went away is skipped)."""
        for stage in self._pids:
            self._send(self._control, stage.encode(), NO_REPLY, m.Heartbeat(), missing_ok=True)

    def wait_registered(self, stages: Iterable[str], timeout: float) -> None:
        """Return once every stage of ``stages`` has registered; ``ControlTimeout`` naming
        the missing ones after ``timeout`` seconds."""
        wanted = list(stages)
        deadline = time.monotonic() + timeout
        while missing := [s for s in wanted if s not in self._pids]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ControlTimeout(
                    f"stage(s) {', '.join(missing)} did not register within {timeout} s"
                )
            self.poll(left)

    # requests
    def request(self, stage: str, message: m.Message, timeout: float) -> m.Message:
        """Send ``message`` to ``stage`` and return its reply (``StatusReply``, ``Ack``,
        ``Refused``); ``ControlTimeout`` if none comes within ``timeout`` seconds,
        ``ControlError`` if ``stage`` is not connected."""
        request_id = self._send_request(stage, message)
        replies = self._collect({stage: request_id}, timeout)
        if stage not in replies:
            raise ControlTimeout(
                f"stage {stage} did not answer {type(message).__name__} within {timeout} s"
            )
        return replies[stage]

    def broadcast(self, message: m.Message, timeout: float) -> dict[str, m.Message | None]:
        """Send ``message`` to every registered stage; each one's reply, None for a stage
        that did not answer within ``timeout`` seconds (or is no longer connected)."""
        pending: dict[str, int] = {}
        for stage in self._pids:
            with contextlib.suppress(ControlError):  # gone since it registered: None
                pending[stage] = self._send_request(stage, message)
        replies = self._collect(pending, timeout)
        return {stage: replies.get(stage) for stage in self._pids}

    def poll(self, timeout: float = 0.0) -> int:
        """Handle what arrived, waiting up to ``timeout`` seconds for the first message;
        the number of messages handled."""
        return self._poll(timeout)

    # internals
    def _send_request(self, stage: str, message: m.Message) -> int:
        request_id = self._next_id
        self._next_id += 1
        self._send(self._control, stage.encode(), request_id, message)
        self._pending[request_id] = stage
        return request_id

    def _send(
        self,
        socket: zmq.Socket,
        identity: bytes,
        request_id: int,
        message: m.Message,
        missing_ok: bool = False,
    ) -> None:
        try:
            socket.send_multipart(
                [identity, _id_frame(request_id), m.encode(message)], flags=zmq.NOBLOCK
            )
        except zmq.ZMQError as error:
            if missing_ok:
                return
            name = identity.decode(errors="replace")
            if error.errno == zmq.EHOSTUNREACH:
                raise ControlError(f"stage {name} is not connected to the control plane") from None
            if error.errno == zmq.EAGAIN:
                raise ControlError(
                    f"stage {name} is not reading its control socket (its queue is full)"
                ) from None
            raise

    def _collect(self, requests: dict[str, int], timeout: float) -> dict[str, m.Message]:
        """The replies to ``requests`` (stage → request id) that come within ``timeout``.
        Replies are kept by request id, so a client handler that makes requests of its own
        while this one waits takes nothing away from it."""
        deadline = time.monotonic() + timeout
        try:
            while any(i not in self._replies for i in requests.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._poll(left)
        finally:
            for request_id in requests.values():
                self._pending.pop(request_id, None)  # a reply after this is late
        return {s: self._replies.pop(i) for s, i in requests.items() if i in self._replies}

    def _poll(self, timeout: float) -> int:
        handled = 0
        ready = dict(self._poller.poll(timeout * 1000))
        while ready:
            if self._control in ready:
                for frames in _received(self._control):
                    handled += 1
                    self._on_stage_message(frames)
            if self._client in ready:
                for frames in _received(self._client):
                    handled += 1
                    self._on_client_message(frames)
            ready = dict(self._poller.poll(0))
        return handled

    def _on_stage_message(self, frames: list[bytes]) -> None:
        identity = frames[0]
        stage = identity.decode(errors="replace")
        self._last_seen[stage] = self.clock()
        request_id = _request_id(frames[1]) if len(frames) == 3 else None
        if request_id is None:
            self._refuse(self._control, identity, NO_REPLY, "expected 2 frames: id, message")
            return
        try:
            message = m.stage_message_decoder.decode(frames[2])
        except msgspec.DecodeError as error:
            self._refuse(self._control, identity, request_id, f"undecodable: {error}")
            return
        if isinstance(message, m.Register):
            if message.stage != stage:
                self._refuse(
                    self._control,
                    identity,
                    request_id,
                    f"registers as {message.stage!r} on a socket named {stage!r}",
                )
                return
            self._pids[stage] = message.pid
            # a heartbeat at once: the stage counts the supervisor's silence from its
            # registration on, so a supervisor that hangs right after starting it is noticed
            self._send(self._control, identity, NO_REPLY, m.Heartbeat(), missing_ok=True)
        elif isinstance(message, m.Heartbeat):
            pass
        elif self._pending.get(request_id) == stage:
            self._replies[request_id] = message
        else:
            self.late_replies += 1

    def _on_client_message(self, frames: list[bytes]) -> None:
        identity = frames[0]
        request_id = _request_id(frames[1]) if len(frames) == 3 else None
        if request_id is None:
            self._refuse(self._client, identity, NO_REPLY, "expected 2 frames: id, message")
            return
        try:
            message = m.request_decoder.decode(frames[2])
        except msgspec.DecodeError as error:
            self._refuse(self._client, identity, request_id, f"undecodable: {error}")
            return
        if self.client_handler is None:
            reply: m.Message = m.Refused("this supervisor takes no requests from clients")
        else:
            reply = self.client_handler(message)
        self._send(self._client, identity, request_id, reply, missing_ok=True)

    def _refuse(self, socket: zmq.Socket, identity: bytes, request_id: int, why: str) -> None:
        self.undecodable += 1
        self._send(socket, identity, request_id, m.Refused(why), missing_ok=True)

    def close(self) -> None:
        """Close both sockets and remove them and the manifest from the run directory."""
        self._control.close()
        self._client.close()
        for name in (MANIFEST, CONTROL_SOCKET, CLIENT_SOCKET):
            (self.run_dir / name).unlink(missing_ok=True)

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the stage side --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Request:
    """A request waiting for its answer (``StageControl`` without a handler)."""

    id: int
    message: m.Message

    @property
    def kind(self) -> str:
        return self.message.kind


class StageControl:
    """A stage's end: registers as ``stage``, answers requests, beats.

    With a ``handler``, ``handler(request)`` returns the reply (``StatusReply``, ``Ack`` or
    ``Refused``); it is called for every request but ``Heartbeat``, from inside ``poll``,
    and what it raises propagates (a stage's bug is not a peer's garbage). Without one,
    ``poll`` queues each request as a ``Request`` for ``take_requests()``, and
    ``answer(request, reply)`` answers it later. A request that does not decode is
    answered ``Refused`` without reaching either, and counted in ``undecodable``.
    """

    def __init__(
        self,
        endpoint: str,
        stage: str,
        handler: Handler | None = None,
        *,
        heartbeat_every: float = HEARTBEAT_EVERY,
        clock: Clock = time.monotonic,
        context: zmq.Context | None = None,
    ) -> None:
        check_endpoint(endpoint)
        self.endpoint = endpoint
        self.stage = stage
        self.handler = handler
        self.heartbeat_every = heartbeat_every
        self.clock = clock
        self.undecodable = 0
        self._requests: list[Request] = []
        self._context = context or zmq.Context.instance()
        self._socket = _dealer(self._context, endpoint, stage.encode())
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        now = clock()
        self.supervisor_last_seen = now  # the clock reading of the supervisor's last message
        # whether the supervisor has begun to beat (it answers the registration with a beat)
        self.supervisor_beating = False
        self._last_sent = now
        self._send(NO_REPLY, m.Register(stage, os.getpid()))

    def poll(self, timeout: float = 0.0) -> int:
        """Answer every waiting request and send a heartbeat if one is due; the number of
        messages handled. The run loop calls it between batches with ``timeout`` 0: when
        nothing waits that is one zero-timeout poll and a clock read."""
        handled = 0
        if self._poller.poll(timeout * 1000):
            while True:
                try:
                    frames = self._socket.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                handled += 1
                self._on_message(frames)
        if self.clock() - self._last_sent >= self.heartbeat_every:
            self._send(NO_REPLY, m.Heartbeat())
        return handled

    def supervisor_stale(self, stale_after: float) -> bool:
        """Whether the supervisor has been silent for more than ``stale_after`` seconds."""
        return self.clock() - self.supervisor_last_seen > stale_after

    def _on_message(self, frames: list[bytes]) -> None:
        self.supervisor_last_seen = self.clock()
        request_id = _request_id(frames[0]) if len(frames) == 2 else None
        if request_id is None:
            self.undecodable += 1
            self._send(NO_REPLY, m.Refused("expected 2 frames: id, message"))
            return
        try:
            message = m.request_decoder.decode(frames[1])
        except msgspec.DecodeError as error:
            self.undecodable += 1
            self._send(request_id, m.Refused(f"undecodable: {error}"))
            return
        if isinstance(message, m.Heartbeat):
            self.supervisor_beating = True
            return
        if self.handler is None:
            self._requests.append(Request(request_id, message))
        else:
            self._send(request_id, self.handler(message))

    def take_requests(self) -> list[Request]:
        """The requests ``poll`` queued (no handler), oldest first; each needs ``answer``."""
        requests, self._requests = self._requests, []
        return requests

    def answer(self, request: Request, reply: m.Message) -> None:
        """Send ``reply`` to the queued ``request``."""
        self._send(request.id, reply)

    def _send(self, request_id: int, message: m.Message) -> None:
        """Send without waiting: while the supervisor is gone, what exceeds the socket's
        queue is dropped (heartbeats and answers nobody is left to read)."""
        with contextlib.suppress(zmq.Again):
            self._socket.send_multipart(
                [_id_frame(request_id), m.encode(message)], flags=zmq.NOBLOCK
            )
        self._last_sent = self.clock()

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> StageControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the command-line side -------------------------------------------------------------------
class PipelineClient:
    """A verb's connection to the running pipeline, found through ``run_dir``'s manifest
    (``NoPipelineError`` if none runs there)."""

    def __init__(self, run_dir: str | Path, *, context: zmq.Context | None = None) -> None:
        self.manifest = find_pipeline(run_dir)
        self._context = context or zmq.Context.instance()
        identity = f"client.{os.getpid()}.{id(self)}".encode()
        self._socket = _dealer(self._context, self.manifest.client, identity)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._next_id = 1

    def request(self, message: m.Message, timeout: float) -> m.Message:
        """Ask the supervisor; its reply, or ``ControlTimeout`` after ``timeout`` seconds.
        A reply that does not decode comes back as ``Refused`` saying so."""
        request_id = self._next_id
        self._next_id += 1
        try:
            self._socket.send_multipart(
                [_id_frame(request_id), m.encode(message)], flags=zmq.NOBLOCK
            )
        except zmq.Again:
            raise ControlError(
                f"the pipeline (supervisor pid {self.manifest.supervisor_pid}) is not reading "
                "its control socket"
            ) from None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not self._poller.poll(left * 1000):
                continue
            frames = self._socket.recv_multipart()
            if len(frames) != 2 or _request_id(frames[0]) != request_id:
                continue  # an answer to an earlier request that timed out
            try:
                return m.reply_decoder.decode(frames[1])
            except msgspec.DecodeError as error:
                return m.Refused(f"the supervisor's reply does not decode: {error}")
        raise ControlTimeout(
            f"the pipeline (supervisor pid {self.manifest.supervisor_pid}) did not answer "
            f"{type(message).__name__} within {timeout} s"
        )

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> PipelineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the run loop's side ---------------------------------------------------------------------
class LoopChannel:
    """``stages.loop.ControlChannel`` over a ``StageControl``: what ``StageLoop`` takes as
    ``control``. ``poll()`` returns the requests that arrived (each has the ``kind`` the
    loop dispatches on: ``status``, ``stop``, ``snapshot``, ``halt``, ...), sending a
    heartbeat when one is due; ``reply(request, answer)`` turns the loop's answer dict into
    the reply message: for ``status`` a ``StatusReply`` (``state`` and ``rings`` from the
    dict, every other int as a counter, this process's pid, ``core`` and CPU %), a dict
    with an ``error`` into ``Refused``, anything else into ``Ack`` listing it.

    It also watches the supervisor, so that a stage never outlives it: ``poll()`` raises
    ``SupervisorGoneError`` when the supervisor process is gone, looked at every
    ``check_every`` seconds: the one ``pipeline.json`` next to the control socket names
    (its pid and start time, so a reused pid does not pass for it; read when the channel
    is made), and in any case when this process's parent changed (the supervisor, or the
    fork server it started, which exits with it, made the stage: a new parent means it
    died; a sure check where there is no manifest), or once the supervisor, having
    begun to beat, has been silent for more than ``silence`` seconds (alive but hung, or
    its sockets gone). Silence counts from the supervisor's first heartbeat, which answers
    the stage's registration; it beats every registered stage from then on, also while
    other stages are still starting (spawned children import and compile), so a supervisor
    that hangs at any point after a stage registered is noticed. The loop polls
    between batches and at least every ``stages.loop.IDLE_TIMEOUT`` while idle, so a stage
    notices within ``check_every`` + that, or ``silence`` + that.
    """

    def __init__(
        self,
        control: StageControl,
        *,
        core: int | None = None,
        silence: float = SUPERVISOR_SILENCE,
        check_every: float = SUPERVISOR_CHECK_EVERY,
    ) -> None:
        if control.handler is not None:
            raise ValueError("LoopChannel answers the requests itself: give a StageControl "
                             "without a handler")  # fmt: skip
        self.control = control
        self.core = core
        self.silence = silence
        self.check_every = check_every
        self.parent_pid = os.getppid()  # the supervisor, or the fork server it started
        self.supervisor = supervisor_of(control.endpoint)
        self._supervisor_process = (
            None
            if self.supervisor is None
            else Process(self.supervisor.supervisor_pid, self.supervisor.supervisor_start_ms)
        )
        self._next_check = control.clock() + check_every
        self._process = psutil.Process()
        self._process.cpu_percent()  # the first reading starts the interval

    def poll(self) -> list[Request]:
        control = self.control
        control.poll()
        now = control.clock()
        if now >= self._next_check:
            self._next_check = now + self.check_every
            self.check_supervisor()
        return control.take_requests()

    def check_supervisor(self) -> None:
        """Raise ``SupervisorGoneError`` if the supervisor died or went silent."""
        control = self.control
        supervisor = self.supervisor
        gone = os.getppid() != self.parent_pid
        if self._supervisor_process is not None and not gone:
            gone = self._supervisor_process.state() is not None  # /proc, not psutil, each time
        if gone:
            pid = self.parent_pid if supervisor is None else supervisor.supervisor_pid
            raise SupervisorGoneError(
                f"stage {control.stage}: its supervisor (pid {pid}) is gone; "
                "stopping (tradepipe clean removes the rings and run files it left)"
            )
        if control.supervisor_beating and control.supervisor_stale(self.silence):
            raise SupervisorGoneError(
                f"stage {control.stage}: its supervisor has been silent for more than "
                f"{self.silence:g} s; stopping"
            )

    def reply(self, request: Request, answer: dict[str, Any]) -> None:
        self.control.answer(request, self.reply_message(request, answer))

    def reply_message(self, request: Request, answer: dict[str, Any]) -> m.Message:
        if "error" in answer:
            return m.Refused(str(answer["error"]))
        if request.kind != "status":
            return m.Ack(", ".join(f"{key}={value}" for key, value in answer.items()))
        rings = answer.get("rings", {})
        return m.StatusReply(
            stage=self.control.stage,
            state=str(answer.get("state", "running")),
            pid=os.getpid(),
            core=self.core,
            cpu_pct=self._process.cpu_percent(),
            counters={
                key: int(value)
                for key, value in answer.items()
                if isinstance(value, int) and key not in ("state", "rings")
            },
            rings={str(k): int(v) for k, v in rings.items()} if isinstance(rings, dict) else {},
        )
