"""The engine: runs one existing flow run of a deployment, here.

    python -m orchestrator.engine RUN_ID        (or ORCHESTRATOR_RUN_ID in the environment)

A worker claims a run (SCHEDULED -> PENDING) and starts this in a subprocess; `manage.py
deployment execute` calls `execute_flow_run` in-process. The engine runs the deployment's pull
steps, imports its entrypoint (path/to/file.py:function, relative to the deployment's path),
checks the parameters against the function, moves the run to RUNNING, calls the flow and records
how it ended. Anything that stops the flow from starting or finishing (import error, missing
function, not a flow, invalid parameters, exception, timeout) ends the run FAILED with a message
saying which.

Exit codes: 0 the run COMPLETED (or was taken away, cancelled say, and the engine stopped
quietly); 1 the engine recorded it FAILED (or AwaitingRetry, for a worker to claim again);
2 the engine could not run it at all (bad arguments, no such run, a run that is not PENDING,
or the engine's own crash), leaving its state alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from orchestrator.client import FlowRunInfo, OrchestratorClient, get_client
from orchestrator.core.errors import OrchestratorError, ValidationError
from orchestrator.core.parameters import validate_call_parameters
from orchestrator.core.paths import confined
from orchestrator.engine.steps import PullStepError, run_pull_steps
from orchestrator.sdk.execution import CANCELLING, PENDING, SCHEDULED, Outcome, RunSession, run_attempts
from orchestrator.sdk.flows import Flow

USAGE = "usage: python -m orchestrator.engine RUN_ID"


class EngineError(OrchestratorError):
    """The engine cannot run this run at all (it leaves the run alone)."""


class FlowLoadError(OrchestratorError):
    """The entrypoint cannot be loaded as a flow. `error`: the exception behind it, whose
    traceback goes to the run's logs (an import that raised)."""

    def __init__(self, message: str, error: BaseException | None = None) -> None:
        super().__init__(message)
        self.error = error


def load_flow(entrypoint: str, workdir: Path) -> Flow[..., Any]:
    """Import `path/to/file.py:function` relative to `workdir` and return the flow it names.
    The file's directory and `workdir` go on sys.path, so the file can import its neighbours."""
    path, sep, attribute = entrypoint.rpartition(":")
    if not sep or not path or not attribute:
        raise FlowLoadError(f"Entrypoint {entrypoint!r} is not of the form path/to/file.py:function.")
    target: Any = load_module(path, workdir)
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise FlowLoadError(f"{path} has no function {attribute!r}.")
        target = getattr(target, part)
    if not isinstance(target, Flow):
        raise FlowLoadError(f"{attribute!r} in {path} is not a flow: decorate it with @flow.")
    return target


def load_module(path: str, workdir: Path) -> Any:
    """Import the Python file `path` (relative to `workdir`) as a module of its own; FlowLoadError
    when it is missing or its import raises. Its directory and `workdir` go on sys.path."""
    try:
        # Symlinks and `..` resolved: the file must be inside the working directory (the
        # project or the pulled checkout), however the entrypoint was stored.
        file = confined(path, workdir, what=f"The entrypoint's file {path}")
    except ValidationError as outside:
        raise FlowLoadError(f"Could not import {path}: {outside}") from None
    if not file.is_file():
        raise FlowLoadError(f"Could not import {path}: there is no such file in {workdir}.")
    # A name of its own, so a file called flows.py or test.py shadows nothing importable.
    module_name = f"__orchestrator_flow_{hashlib.sha256(str(file).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise FlowLoadError(f"Could not import {path}: it is not a Python file.")
    module = importlib.util.module_from_spec(spec)
    for directory in (str(workdir), str(file.parent)):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:  # SystemExit and KeyboardInterrupt at import time count too
        sys.modules.pop(module_name, None)
        if isinstance(error, KeyboardInterrupt):
            raise
        raise FlowLoadError(f"Could not import {path}: {type(error).__name__}: {error}", error) from error
    return module


def execute_flow_run(
    run_id: str, *, client: OrchestratorClient | None = None, retry_in_process: bool = False, created: bool = False
) -> Outcome:
    """Run the deployment run `run_id` here (see the module docstring). The run must be PENDING
    (claimed by a worker) or SCHEDULED (`deployment execute`; moved to PENDING here). With
    `retry_in_process` a failure with retries left is retried here after its delay, else the run
    is left AwaitingRetry. `created`: this process just created the run (says so in the log).
    Raises EngineError (and NotFound) when it cannot run it at all; never leaves a run it
    started in PENDING or RUNNING."""
    client = client or get_client()
    run = client.read_flow_run(run_id)
    if run.deployment is None:
        raise EngineError(f"Flow run '{run.name}' has no deployment: only deployment runs are run by the engine.")
    if run.state_type not in (SCHEDULED, PENDING, CANCELLING):
        raise EngineError(
            f"Flow run '{run.name}' is {run.state_name} ({run.state_type}); the engine runs only a PENDING or SCHEDULED run."
        )
    session = RunSession(client, run, finish_cancel=run.worker_id is None)
    return session.run_guarded(lambda s: _execute(s, run, retry_in_process=retry_in_process, created=created))


def _execute(session: RunSession, run: FlowRunInfo, *, retry_in_process: bool, created: bool) -> Outcome:
    deployment = run.deployment
    assert deployment is not None
    verb = "Created" if created else "Executing"
    session.engine_logger.info("%s flow run '%s' for flow '%s'", verb, run.name, run.flow_name)
    if run.state_type == CANCELLING:
        return session.stopped()
    if run.state_type == SCHEDULED:
        session.set_state(PENDING, expected=SCHEDULED)

    saved_cwd, saved_path = os.getcwd(), list(sys.path)
    try:
        try:
            base = Path(deployment.path).expanduser() if deployment.path else Path.cwd()
            if not base.is_dir():
                raise FlowLoadError(f"The deployment's path {deployment.path!r} is not a directory.")
            workdir = run_pull_steps(deployment.pull_steps, cwd=base.resolve(), log=session.engine_logger.info)
            os.chdir(workdir)
            flow = load_flow(deployment.entrypoint, workdir)
        except PullStepError as error:
            return session.fail_before_start(str(error), error, show_traceback=error.__cause__ is not None)
        except FlowLoadError as error:
            return session.fail_before_start(str(error), error.error, show_traceback=error.error is not None)
        try:
            values = validate_call_parameters(flow.fn, run.parameters)
        except ValidationError as invalid:
            return session.fail_before_start(f"Invalid parameters: {invalid}", invalid)
        return run_attempts(session, flow, values, retry_in_process=retry_in_process)
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path


def main(argv: list[str] | None = None, *, client: OrchestratorClient | None = None) -> int:
    """The command line: returns the exit code (see the module docstring). `client`: one made
    already (the pre-warmed launcher's), else get_client()."""
    args = sys.argv[1:] if argv is None else argv
    run_id = args[0] if args else os.environ.get("ORCHESTRATOR_RUN_ID", "")
    if len(args) > 1 or not run_id or run_id.startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        return execute_flow_run(run_id, client=client).exit_code
    except OrchestratorError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        return 2
