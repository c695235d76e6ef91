"""What a worker needs from the infrastructure that runs a flow: start it, stop it, see it end.

The process infrastructure is the only one today; others (containers, Kubernetes jobs)
implement the same few methods.
"""

from __future__ import annotations

import os
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from orchestrator.client.base import ClaimedRun


def job_variables_for(run: Any) -> dict[str, Any]:
    """The run's job variables: pool defaults < deployment < run. `env` is merged key by key
    so a deployment can add one variable without repeating the pool's."""
    layers = [
        run.work_pool.job_variables if run.work_pool_id else {},
        run.deployment.job_variables if run.deployment_id else {},
        run.job_variables or {},
    ]
    merged: dict[str, Any] = {}
    env: dict[str, str] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key == "env" and isinstance(value, dict):
                env.update({str(k): str(v) for k, v in value.items()})
            else:
                merged[key] = value
    if env:
        merged["env"] = env
    return merged


@dataclass
class RunProcess:
    """One flow run's process as the worker tracks it. `popen` is None for a process adopted
    after a worker restart (not our child: we can see it, not reap it)."""

    run_id: Any
    run_name: str
    pid: int
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


class Infrastructure(ABC):
    transport_env: dict[str, str] = {}

    def set_transport_env(self, env: dict[str, str]) -> None:
        """Variables every run's process gets so it reaches the orchestrator the way the worker
        does (the client's environment(): a database, or an API URL and key). The worker sets
        them before it starts anything."""
        self.transport_env = dict(env)

    def prepare(self) -> None:
        """Get ready to start runs fast (the worker calls it once, when its loop starts)."""

    @abstractmethod
    def start(self, run: ClaimedRun, *, on_output: Any) -> RunProcess:
        """Start the run's flow. `on_output(line)` receives its output lines as they come."""

    def close(self) -> None:
        """Release what the infrastructure holds (the worker calls it when it stops)."""
