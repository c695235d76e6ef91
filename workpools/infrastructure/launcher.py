"""A pre-warmed launcher: flow runs start in milliseconds instead of an interpreter start.

The worker starts one launcher process (`serve_fd(FD)` of this module in a fresh interpreter),
which imports Django and the engine once and then waits on a Unix socket. For each run the
worker sends a request with the write end of a fresh pipe (SCM_RIGHTS); the launcher forks a
child that starts its own session, points stdout/stderr at that pipe, takes the run's working
directory and environment, and runs the engine. The launcher reports each child's pid and, when
it ends, its exit code.

The launcher is single-threaded (forking a process with threads is unsafe), never touches the
database (its connections are closed before any fork; a remote worker's launcher has
ORCHESTRATOR_API_URL in its environment, so its settings have no database at all), and exits
when the worker's end of the socket closes. Children live in sessions of their own and outlive
it, like plain subprocesses. Settings are read once, in the launcher: a run whose environment
changes them (SETTINGS_VARIABLES) is started as a plain subprocess instead.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import uuid
from typing import Any

# Environment variables that decide the settings: a run that changes them needs a fresh interpreter.
SETTINGS_VARIABLES = frozenset(
    {"DATABASE_URL", "ORCHESTRATOR_HOME", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "ORCHESTRATOR_API_URL"}
)
MESSAGE_SIZE = 1 << 16
LAUNCHER_MAIN = "import sys; from workpools.infrastructure.launcher import serve_fd; serve_fd(int(sys.argv[1]))"


# --- the worker's side --------------------------------------------------------------------------


class LauncherUnavailable(Exception):
    """The launcher could not start or has died; the caller falls back to a plain subprocess."""


class Launcher:
    """The worker's handle on its launcher process. Not thread-safe: the worker loop alone uses it."""

    def __init__(self, *, env: dict[str, str] | None = None) -> None:
        self.env = env
        self.sock: socket.socket | None = None
        self.process: subprocess.Popen | None = None
        self.exit_codes: dict[int, int] = {}

    def ensure_started(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                # Not `-m` this module: its package imports it first, which runpy warns about.
                [sys.executable, "-c", LAUNCHER_MAIN, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=self.env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            ours.close()
            raise LauncherUnavailable(f"could not start the launcher: {error}") from error
        finally:
            theirs.close()
        self.sock = ours
        reply = self._receive(timeout=60)
        if reply.get("ready") is not True:
            self.close()
            raise LauncherUnavailable(f"the launcher did not start: {reply}")

    def spawn(self, run_id: str, *, cwd: str | None, env: dict[str, str]) -> tuple[int, int]:
        """Start the engine for `run_id` in a forked child. Returns (pid, fd to read its output)."""
        self.ensure_started()
        assert self.sock is not None
        read_end, write_end = os.pipe()
        try:
            request = json.dumps({"run_id": run_id, "cwd": cwd, "env": env}).encode()
            try:
                socket.send_fds(self.sock, [request], [write_end])
            except OSError as error:
                self.close()
                raise LauncherUnavailable(f"the launcher is gone: {error}") from error
        finally:
            os.close(write_end)
        while True:
            reply = self._receive(timeout=30)
            if "exited" in reply:
                self.exit_codes[reply["exited"]] = reply["code"]
            elif reply.get("started") == run_id:
                return reply["pid"], read_end
            elif "error" in reply:
                os.close(read_end)
                raise LauncherUnavailable(reply["error"])

    def exit_code(self, pid: int) -> int | None:
        """The child's exit code once it ended (negative: killed by that signal), else None."""
        self._drain()
        if pid in self.exit_codes:
            return self.exit_codes.pop(pid)
        if self.process is not None and self.process.poll() is not None:
            # The launcher died, so nobody reaps its children for us: watch the pid instead.
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return -1
        return None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def _drain(self) -> None:
        if self.sock is None:
            return
        while True:
            try:
                data = self.sock.recv(MESSAGE_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                return
            if not data:
                return
            reply = json.loads(data)
            if "exited" in reply:
                self.exit_codes[reply["exited"]] = reply["code"]

    def _receive(self, *, timeout: float) -> dict[str, Any]:
        assert self.sock is not None
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(MESSAGE_SIZE)
        except (OSError, TimeoutError) as error:
            self.close()
            raise LauncherUnavailable(f"no answer from the launcher: {error}") from error
        finally:
            if self.sock is not None:
                self.sock.settimeout(None)
        if not data:
            self.close()
            raise LauncherUnavailable("the launcher exited")
        return json.loads(data)


def pump(fd: int, on_output: Any) -> None:
    """Read a child's output from `fd` line by line until it closes (in a daemon thread)."""

    def run() -> None:
        with os.fdopen(fd, "r", errors="replace") as stream:
            for line in stream:
                on_output(line.rstrip("\n"))

    threading.Thread(target=run, daemon=True).start()


# --- the launcher's side ------------------------------------------------------------------------


def serve(sock: socket.socket) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    django.setup()
    from django.db import connections

    import orchestrator.engine  # noqa: F401  (imported once here; every child inherits it)

    _prewarm()
    connections.close_all()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the worker; it tells us via EOF
    sock.send(json.dumps({"ready": True}).encode())
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    children: set[int] = set()
    while True:
        for _ in selector.select(timeout=0.05):
            try:
                data, fds, _flags, _addr = socket.recv_fds(sock, MESSAGE_SIZE, 1)
            except ConnectionError:
                data, fds = b"", []
            if not data:
                return  # the worker is gone
            request = json.loads(data)
            try:
                pid = _fork_child(request, fds[0], sock)
            except OSError as error:
                sock.send(json.dumps({"error": f"fork failed: {error}"}).encode())
            else:
                children.add(pid)
                sock.send(json.dumps({"started": request["run_id"], "pid": pid}).encode())
            finally:
                for fd in fds:
                    os.close(fd)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                try:
                    sock.send(json.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}).encode())
                except OSError:
                    return


def _prewarm() -> None:
    """Import here, once, what every child would otherwise import again after its fork: the
    transport it will use (the direct one pulls in the services and models) and the pydantic
    submodules that building a flow's parameter model loads lazily."""
    import importlib

    from orchestrator.core.parameters import validate_call_parameters

    def sample(
        name: str,
        count: int = 1,
        ratio: float = 0.5,
        flag: bool = False,
        items: list[str] | None = None,
        mapping: dict[str, Any] | None = None,
    ) -> None:
        """A flow signature using the common annotations."""

    validate_call_parameters(sample, {"name": "warm-up", "items": ["a"], "mapping": {"k": 1}})
    if os.environ.get("ORCHESTRATOR_API_URL"):
        importlib.import_module("orchestrator.client.http")
        return
    global _client
    from orchestrator.core.errors import OrchestratorError

    # By name, as get_client() loads it: the direct transport is the server side. Made once here
    # (it checks the database has its tables), shared by every child; it holds no connection.
    try:
        _client = importlib.import_module("orchestrator.direct").DirectClient()
    except Exception:
        return  # each child makes its own, and reports what is wrong with the database
    # The child's first queries compile their SQL through Django's per-process caches (lookups,
    # related selections): run them once here, on a run that does not exist, so children
    # inherit warm caches. Nothing is written: each finds no row.
    missing = str(uuid.uuid4())
    for call in (
        lambda: _client.read_flow_run(missing),
        lambda: _client.heartbeat_flow_run(missing),
        lambda: _client.set_flow_run_state(missing, "RUNNING", expected="PENDING"),
    ):
        try:
            call()
        except OrchestratorError:
            pass


# The direct client the launcher made for its children (None: each child makes its own).
_client: Any = None


def _fork_child(request: dict[str, Any], output_fd: int, sock: socket.socket) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    # The child: never return into the launcher's loop, whatever happens.
    code = 2
    try:
        forget_inherited_connections()
        sock.close()
        os.setsid()
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if request.get("cwd"):
            os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.stdout.reconfigure(line_buffering=True)
        code = _run_engine(request["run_id"], os.environ.get("ORCHESTRATOR_PROFILE_DIR", ""))
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


# Connections a forked child inherited, kept referenced so they are never finalised in the child.
_inherited: list[Any] = []


def forget_inherited_connections() -> None:
    """In a freshly forked child: let go of every database connection inherited from the parent
    without closing it, so the child's first query opens a connection of its own.

    Closing (or letting the garbage collector finalise) an inherited connection would end the
    parent's session: libpq sends its Terminate message on the shared socket. So the old objects
    are only parked here; the child ends with os._exit, which finalises nothing. The launcher
    holds no connection when it forks; this makes the guarantee independent of that."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited.append(conn.connection)
            conn.connection = None
            conn.in_atomic_block = False
            conn.savepoint_ids = []
            conn.needs_rollback = False
            conn.run_on_commit = []


def _run_engine(run_id: str, profile_dir: str) -> int:
    """The engine for `run_id`; with ORCHESTRATOR_PROFILE_DIR set (benchmarks), under cProfile,
    its stats written to that directory as <run id>.prof."""
    from orchestrator import engine

    # The launcher's client only while the child reaches the database its settings name.
    client = _client if not os.environ.get("ORCHESTRATOR_API_URL") else None
    if not profile_dir:
        return engine.main([run_id], client=client)
    import cProfile

    profile = cProfile.Profile()
    try:
        return profile.runcall(engine.main, [run_id], client=client)
    finally:
        profile.dump_stats(os.path.join(profile_dir, f"{run_id}.prof"))


def serve_fd(fd: int) -> None:
    serve(socket.socket(fileno=fd))
