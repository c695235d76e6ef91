"""Run each flow run as a subprocess on the worker's machine (work pool type `process`)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from orchestrator.client.base import ClaimedRun
from workpools.infrastructure.base import Infrastructure, RunProcess, job_configuration
from workpools.infrastructure.launcher import SETTINGS_VARIABLES, Launcher, LauncherUnavailable, pump

log = logging.getLogger(__name__)


ENV_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean"]},
    "default": {},
    "title": "Environment variables",
    "description": "Set in the flow run's environment (merged key by key: pool < deployment < run).",
}

DEFAULT_TEMPLATE: dict[str, Any] = {
    "job_configuration": {
        "env": "{{ env }}",
        "working_dir": "{{ working_dir }}",
        "command": "{{ command }}",
        "stream_output": "{{ stream_output }}",
    },
    "variables": {
        "type": "object",
        "properties": {
            "env": ENV_SCHEMA,
            "working_dir": {
                "type": ["string", "null"],
                "default": None,
                "title": "Working directory",
                "description": "Where the flow process starts (default: the deployment's path when it exists here, "
                "else the worker's own directory).",
            },
            "command": {
                "type": ["array", "null"],
                "items": {"type": "string"},
                "default": None,
                "title": "Command",
                "description": "The command that runs the flow (default: python -m orchestrator.engine, with the run "
                "id in ORCHESTRATOR_RUN_ID).",
            },
            "stream_output": {
                "type": "boolean",
                "default": True,
                "title": "Stream output",
                "description": "Print the flow process's output on the worker's console, prefixed with the run name.",
            },
        },
    },
}


class ProcessInfrastructure(Infrastructure):
    """With `prewarm`, runs start as forks of a launcher that has Django and the engine loaded
    (milliseconds); otherwise, and whenever the launcher cannot serve a run (or its job sets a
    `command`), as a fresh `python -m orchestrator.engine RUN_ID` (an interpreter start)."""

    type = "process"
    default_base_job_template = DEFAULT_TEMPLATE

    def __init__(self, *, prewarm: bool = False, base_env: dict[str, str] | None = None) -> None:
        # The environment runs start from (default: the worker's own).
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.prewarm = prewarm
        self.launcher: Launcher | None = None

    def set_transport_env(self, env: dict[str, str]) -> None:
        super().set_transport_env(env)
        self.base_env.update(env)  # the launcher too: its settings follow the transport

    def prepare(self) -> None:
        """Start the launcher now, so that even the first run is a fork, not an interpreter
        start; a launcher that cannot start is tried again at the first run."""
        if self.prewarm:
            try:
                self._launcher().ensure_started()
            except LauncherUnavailable as error:
                log.warning("No pre-warmed launcher yet: %s", error)

    def _launcher(self) -> Launcher:
        if self.launcher is None:
            self.launcher = Launcher(env=self.base_env)
        return self.launcher

    def command(self, run: ClaimedRun) -> list[str]:
        return list(job_configuration(run).get("command") or [sys.executable, "-m", "orchestrator.engine", run.id])

    def environment(self, run: ClaimedRun, credentials: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(credentials or {})
        env.update({str(k): str(v) for k, v in (job_configuration(run).get("env") or {}).items()})
        env["ORCHESTRATOR_RUN_ID"] = run.id
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
        return env

    def working_dir(self, run: ClaimedRun) -> str | None:
        """The job variable `working_dir`, else the deployment's path when it exists here (code
        that is pulled from git by the engine needs no local path), else the worker's own."""
        deployment_path = run.deployment.path if run.deployment is not None else None
        for candidate in (job_configuration(run).get("working_dir"), deployment_path):
            if candidate and Path(candidate).is_dir():
                return str(candidate)
        return None

    def start(self, run: ClaimedRun, *, on_output: Any, credentials: dict[str, str] | None = None) -> RunProcess:
        config = job_configuration(run)
        cwd, env = self.working_dir(run), self.environment(run, credentials)
        overrides_settings = SETTINGS_VARIABLES & set(config.get("env") or {})
        if config.get("stream_output") is False:
            on_output = _discard
        if self.prewarm and not overrides_settings and not config.get("command"):
            launcher = self._launcher()
            try:
                pid, output = launcher.spawn(run.id, cwd=cwd, env=env)
            except LauncherUnavailable as error:
                log.warning("Starting flow run %s as a plain subprocess: %s", run.id, error)
            else:
                pump(output, on_output)
                return RunProcess(run_id=run.id, run_name=run.name, pid=pid, exit_code=lambda: launcher.exit_code(pid))
        # A session of its own: Ctrl-C at the worker's terminal reaches only the worker, and a
        # cancel can stop the whole process group the flow may have started.
        popen = subprocess.Popen(
            self.command(run),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        threading.Thread(target=_pump, args=(popen, on_output), daemon=True).start()
        return RunProcess(run_id=run.id, run_name=run.name, pid=popen.pid, popen=popen)

    def close(self) -> None:
        if self.launcher is not None:
            self.launcher.close()


def _discard(line: str) -> None:
    """stream_output false: the output is read (so the process never blocks on a full pipe)
    and dropped."""


def _pump(popen: subprocess.Popen, on_output: Any) -> None:
    assert popen.stdout is not None
    for line in popen.stdout:
        on_output(line.rstrip("\n"))
