"""Run each flow run as a subprocess on the worker's machine (work pool type `process`)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from workpools.infrastructure.base import Infrastructure, RunProcess, job_variables_for
from workpools.infrastructure.launcher import SETTINGS_VARIABLES, Launcher, LauncherUnavailable, pump

log = logging.getLogger(__name__)


class ProcessInfrastructure(Infrastructure):
    """With `prewarm`, runs start as forks of a launcher that has Django and the engine loaded
    (milliseconds); otherwise, and whenever the launcher cannot serve a run, as a fresh
    `python -m orchestrator.engine RUN_ID` (an interpreter start)."""

    def __init__(self, *, prewarm: bool = False, base_env: dict[str, str] | None = None) -> None:
        # The environment runs start from (default: the worker's own).
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.launcher = Launcher(env=self.base_env) if prewarm else None
    def command(self, run: Any) -> list[str]:
        return [sys.executable, "-m", "orchestrator.engine", str(run.pk)]

    def environment(self, run: Any, job_variables: dict[str, Any]) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(job_variables.get("env", {}))
        env["ORCHESTRATOR_RUN_ID"] = str(run.pk)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
        # The child must reach the same orchestrator as this worker, whatever its cwd.
        from django.conf import settings

        env.setdefault("ORCHESTRATOR_HOME", str(settings.ORCHESTRATOR_HOME))
        return env

    def working_dir(self, run: Any, job_variables: dict[str, Any]) -> str | None:
        """The job variable `working_dir`, else the deployment's path when it exists here (code
        that is pulled from git by the engine needs no local path), else the worker's own."""
        for candidate in (job_variables.get("working_dir"), run.deployment.path if run.deployment_id else None):
            if candidate and Path(candidate).is_dir():
                return str(candidate)
        return None

    def start(self, run: Any, *, on_output: Any) -> RunProcess:
        job_variables = job_variables_for(run)
        cwd, env = self.working_dir(run, job_variables), self.environment(run, job_variables)
        overrides_settings = SETTINGS_VARIABLES & set(job_variables.get("env", {}))
        if self.launcher is not None and not overrides_settings:
            try:
                pid, output = self.launcher.spawn(str(run.pk), cwd=cwd, env=env)
            except LauncherUnavailable as error:
                log.warning("Starting flow run %s as a plain subprocess: %s", run.pk, error)
            else:
                pump(output, on_output)
                launcher = self.launcher
                return RunProcess(
                    run_id=run.pk, run_name=run.name, pid=pid, exit_code=lambda: launcher.exit_code(pid)
                )
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
        return RunProcess(run_id=run.pk, run_name=run.name, pid=popen.pid, popen=popen)

    def close(self) -> None:
        if self.launcher is not None:
            self.launcher.close()


def _pump(popen: subprocess.Popen, on_output: Any) -> None:
    assert popen.stdout is not None
    for line in popen.stdout:
        on_output(line.rstrip("\n"))
