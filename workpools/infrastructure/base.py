"""What a worker needs from the infrastructure that runs a flow: start it, watch it, stop it,
find it again. `Infrastructure` below is the whole interface a pool type implements (process,
docker; kubernetes next): see its docstring. Configuration comes from base job templates
(workpools.infrastructure.templates).
"""

from __future__ import annotations

import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from orchestrator.client.base import ClaimedRun, HeldRun, WorkerInfo


def job_variables_for(run: Any) -> dict[str, Any]:
    """The run's job variables: template defaults < pool < deployment < run (see templates)."""
    from workpools.infrastructure.templates import job_variables_for as resolve

    return resolve(run)


class RunHandle:
    """A started flow run as the worker watches it, whatever runs it (a process, a container,
    a Job). The worker calls only these; each type subclasses it."""

    what = "process"  # in messages: "the flow run's process/container/job ..."
    run_id: Any
    run_name: str
    pid: int | None = None  # recorded with the host so a restarted worker can find it
    term_sent_at: float | None = None
    kill_sent: bool = False
    stopped_by: str = ""  # why the worker stopped it: "cancel", "shutdown"
    recorded: bool = False  # the orchestrator knows where it runs
    lost_reason: str = ""  # set when it ended in a way its exit code does not say (evicted, removed)

    def poll(self) -> int | None:
        """The exit code once it has ended (the same on every later call), else None; -1 when
        it ended without one (lost). Never blocks."""
        raise NotImplementedError

    def terminate(self, *, reason: str) -> None:
        """Ask it to stop (SIGTERM or the type's equivalent); remember `reason`."""
        raise NotImplementedError

    def kill(self) -> None:
        """Stop it now (after terminate did not work within the worker's kill_after)."""
        raise NotImplementedError

    def release(self) -> None:
        """Its run's final state is recorded: remove what is left of it (a stopped container)."""

    def describe_exit(self, code: int) -> str:
        """How it ended, for messages: 'exited with code 3', 'was killed by SIGKILL'."""
        if self.lost_reason:
            return self.lost_reason
        return describe_exit(code)


def describe_exit(code: int) -> str:
    if code == -1:
        return "ended (exit code unknown)"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class RunProcess(RunHandle):
    """One flow run's process as the worker tracks it. `popen` is None for a process adopted
    after a worker restart (not our child: we can see it, not reap it)."""

    run_id: Any
    run_name: str
    pid: int  # type: ignore[assignment]  # a process always has one
    popen: Any = None
    exit_code: Any = None  # for a launcher's child: () -> exit code or None
    started_at: float = field(default_factory=time.monotonic)
    term_sent_at: float | None = None
    kill_sent: bool = False
    stopped_by: str = ""  # why the worker stopped it: "cancel", "shutdown"
    recorded: bool = False  # the orchestrator knows its pid and host
    returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code once the process has ended (the same on every later call), else None.
        Never blocks."""
        if self.returncode is None:
            self.returncode = self._poll()
        return self.returncode

    def _poll(self) -> int | None:
        if self.popen is not None:
            return self.popen.poll()
        if self.exit_code is not None:
            return self.exit_code()
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return -1  # gone; an adopted process's exit code cannot be known
        except PermissionError:
            return None
        return None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self, *, reason: str) -> None:
        if self.term_sent_at is None:
            self.stopped_by = reason
            self.term_sent_at = time.monotonic()
            self.signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self.kill_sent = True
        self.signal_group(signal.SIGKILL)

    lost_reason: str = ""


class Infrastructure(ABC):
    """One infrastructure type (the pool's `type`): how a worker runs, watches, stops and finds
    again the flow runs it claimed. A type is one module with a subclass of this, listed in
    workpools.infrastructure.registry. The contract:

    - `type` and `default_base_job_template` (see workpools.infrastructure.templates): the
      orchestrator renders the template for each run and hands the worker the result as
      `run.job_configuration` (ClaimedRun); the type reads only that.
    - `start(run, on_output=, credentials=)` starts the run's job and returns a RunHandle at once;
      `on_output(line)` gets the job's output lines (the worker prefixes the run name).
      `credentials`: environment variables for this run only (a run-scoped API token and the API
      URL), overriding the worker's own transport variables.
    - The handle's `poll()` says when it ended: exit code, or -1 with `lost_reason` in words when
      it was lost (container removed, pod evicted). The worker then crashes a run left unfinished;
      the engine inside records COMPLETED/FAILED itself.
    - `handle.terminate()`/`kill()` stop it on cancel; `handle.release()` cleans up after the
      final state is recorded.
    - `adopt(runs, hostname=, worker_name=, on_output_for=)` finds, after a worker restart, the
      jobs of the runs the worker held (by labels carrying the run id, or by pid for processes).
    - `runs_remotely`: its jobs cannot use the worker's database connection, so each run gets
      a run-scoped token over HTTP even from a worker that uses the database directly.
    """

    type: ClassVar[str] = ""
    default_base_job_template: ClassVar[dict[str, Any]] = {
        "job_configuration": {},
        "variables": {"type": "object", "properties": {}},
    }
    runs_remotely: ClassVar[bool] = False
    what: ClassVar[str] = "process"  # what one run's job is called in messages
    transport_env: dict[str, str] = {}
    worker: WorkerInfo | None = None

    def set_worker(self, worker: WorkerInfo) -> None:
        """The worker it serves (its name and pool go on the labels of the jobs it starts)."""
        self.worker = worker

    def set_transport_env(self, env: dict[str, str]) -> None:
        """Variables every run's process gets so it reaches the orchestrator the way the worker
        does (the client's environment(): a database, or an API URL and key). The worker sets
        them before it starts anything."""
        self.transport_env = dict(env)

    def prepare(self) -> None:
        """Get ready to start runs fast (the worker calls it once, when its loop starts)."""

    @abstractmethod
    def start(self, run: ClaimedRun, *, on_output: Any, credentials: dict[str, str] | None = None) -> RunHandle:
        """Start the run's flow. `on_output(line)` receives its output lines as they come."""

    def adopt(
        self, runs: list[HeldRun], *, hostname: str, worker_name: str, on_output_for: Callable[[str], Any]
    ) -> dict[str, RunHandle]:
        """Handles for those of `runs` (held by this worker before a restart) whose job still
        exists. By default: a process with the recorded pid alive on this host."""
        found: dict[str, RunHandle] = {}
        for run in runs:
            if run.pid and run.hostname == hostname and _pid_alive(run.pid):
                found[run.id] = RunProcess(run_id=run.id, run_name=run.name, pid=run.pid, recorded=True)
        return found

    def close(self) -> None:
        """Release what the infrastructure holds (the worker calls it when it stops)."""


def job_configuration(run: ClaimedRun) -> dict[str, Any]:
    """What the type reads: the rendered configuration (older callers: the bare variables)."""
    return dict(run.job_configuration or run.job_variables or {})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remote_run_environment(
    run: ClaimedRun,
    config: dict[str, Any],
    credentials: dict[str, str] | None,
    *,
    transport_env: dict[str, str],
    pool_type: str,
) -> dict[str, str]:
    """The environment of a run that executes away from the worker (a container, a pod): the
    template's `env`, then the way to the orchestrator: over HTTP (the job variable `api_url`,
    else the worker's own URL) with the run's own token, never the worker's key or database.
    ValueError when there is no URL or no token (the worker fails the run with it)."""
    from orchestrator.client.http import KEY_VARIABLE, URL_VARIABLE

    credentials = credentials or {}
    api_url = config.get("api_url") or credentials.get(URL_VARIABLE) or ""
    if not api_url:
        raise ValueError(
            f"A {pool_type} pool's runs reach the orchestrator over HTTP: set the pool's job variable api_url "
            "(e.g. http://127.0.0.1:8000/api/) or start the worker with --api-url."
        )
    if not credentials.get(KEY_VARIABLE):
        raise ValueError(f"No run token for the {pool_type} job: the worker must issue one (issue_run_token).")
    env = {str(key): str(value) for key, value in (config.get("env") or {}).items()}
    env.update(
        {
            URL_VARIABLE: api_url,
            KEY_VARIABLE: credentials[KEY_VARIABLE],
            "ORCHESTRATOR_RUN_ID": str(run.id),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")  # the engine reads settings
    if "RUN_HEARTBEAT_SECONDS" in transport_env:
        env["RUN_HEARTBEAT_SECONDS"] = transport_env["RUN_HEARTBEAT_SECONDS"]
    return env
