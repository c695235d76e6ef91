"""The engine: every way a run can fail ends it FAILED with a message saying which.

Most cases call the engine's `main()` in this process (the same code, a tenth of the time); the
ones about processes (exit codes as a worker sees them, output, cancelling a live run) start
`python -m orchestrator.engine RUN_ID` for real against the test database."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from deployments.services import create_flow_run
from orchestrator import engine
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import request_cancellation, set_state
from tests.orchestrator.conftest import HELLO_FLOW as HELLO
from tests.orchestrator.conftest import ROOT, run_engine

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)


def claimed_run(deployment: Any, **kwargs: Any) -> FlowRun:
    """A run as a worker hands it to the engine: PENDING."""
    run, _ = create_flow_run(deployment, **kwargs)
    return set_state(run, S.PENDING)


def engine_main(run: FlowRun | str) -> int:
    """The engine's command line, in this process: its exit code."""
    return engine.main([str(getattr(run, "pk", run))])


def test_the_engine_runs_a_claimed_run_to_completion(
    write_flow: Any, deploy: Any, subprocess_env: dict[str, str]
) -> None:
    write_flow("flows/hello.py", HELLO)
    run = claimed_run(deploy("flows/hello.py:leonardo_dicapriflow", parameters={"name": "Leo"}))

    result = run_engine(run, subprocess_env)

    assert result.returncode == 0, result.stderr
    assert f"orchestrator.engine - Executing flow run '{run.name}' for flow 'leonardo_dicapriflow'" in result.stderr
    assert "- Hello Leo!" in result.stderr
    run.refresh_from_db()
    assert (run.state_type, run.run_count, run.state_message) == (S.COMPLETED, 1, "All states completed.")
    assert [s.name for s in run.states.all()] == ["Scheduled", "Pending", "Running", "Completed"]
    assert run.task_runs.get().state_type == S.COMPLETED
    assert run.logs.filter(message="Hello Leo!").exists()


def test_a_scheduled_run_is_moved_to_pending_by_the_engine_itself(write_flow: Any, deploy: Any) -> None:
    write_flow("flows/hello.py", HELLO)
    run, _ = create_flow_run(deploy("flows/hello.py:leonardo_dicapriflow", parameters={"name": "Leo"}))
    assert engine_main(run) == 0
    run.refresh_from_db()
    assert [s.name for s in run.states.all()] == ["Scheduled", "Pending", "Running", "Completed"]


FAILURES = {
    "a syntax error": ("flows/f.py", "def oops(:\n", "flows/f.py:main", "Could not import flows/f.py: SyntaxError"),
    "an import that raises": (
        "flows/f.py",
        "import no_such_module_anywhere\n",
        "flows/f.py:main",
        "Could not import flows/f.py: ModuleNotFoundError: No module named 'no_such_module_anywhere'",
    ),
    "a missing file": (
        "flows/f.py",
        "",
        "flows/elsewhere.py:main",
        "Could not import flows/elsewhere.py: there is no such file",
    ),
    "a malformed entrypoint": (
        "flows/f.py",
        "",
        "flows/f.py",
        "Entrypoint 'flows/f.py' is not of the form path/to/file.py:function.",
    ),
    "a missing function": (
        "flows/f.py",
        "@flow\ndef main(): pass\n",
        "flows/f.py:mian",
        "flows/f.py has no function 'mian'.",
    ),
    "a function that is not a flow": (
        "flows/f.py",
        "def main(): pass\n",
        "flows/f.py:main",
        "'main' in flows/f.py is not a flow: decorate it with @flow.",
    ),
    "invalid parameters": (
        "flows/f.py",
        "@flow\ndef main(n: int): pass\n",
        "flows/f.py:main",
        "Invalid parameters: Invalid parameter 'n': Input should be a valid integer, unable to parse string as an integer",
    ),
    "an exception": (
        "flows/f.py",
        "@flow\ndef main():\n    raise ValueError('boom')\n",
        "flows/f.py:main",
        "ValueError: boom",
    ),
    "a timeout": (
        "flows/f.py",
        "@flow(timeout_seconds=0.5)\ndef main():\n    time.sleep(60)\n",
        "flows/f.py:main",
        "TimeoutError: Flow run exceeded its timeout of 0.5 seconds",
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_the_engine_ends_the_run_failed_saying_why(case: str, write_flow: Any, deploy: Any, capsys: Any) -> None:
    path, source, entrypoint, expected = FAILURES[case]
    write_flow(path, source)
    run = claimed_run(
        deploy(entrypoint, enforce_parameter_schema=False),
        parameters={"n": "five"} if case == "invalid parameters" else {},
    )

    assert engine_main(run) == 1

    run.refresh_from_db()
    assert run.state_type == S.FAILED
    assert run.state_message.startswith(expected), run.state_message
    assert run.logs.filter(message__contains=expected).exists()
    ran = case in ("an exception", "a timeout")
    assert run.run_count == (1 if ran else 0)  # failed before RUNNING unless the flow ran
    assert f"Finished in state Failed({run.state_message!r})" in capsys.readouterr().err


def test_as_a_process_the_engine_exits_1_for_a_failed_run_and_0_for_a_completed_one(
    write_flow: Any, deploy: Any, subprocess_env: dict[str, str]
) -> None:
    write_flow(
        "flows/f.py", "@flow\ndef ok():\n    pass\n\n@flow(timeout_seconds=0.5)\ndef slow():\n    time.sleep(60)\n"
    )
    runs = {name: claimed_run(deploy(f"flows/f.py:{name}")) for name in ("ok", "slow")}
    # Both at once: real processes, without waiting for each start-up in turn.
    engines = {
        name: subprocess.Popen(
            [sys.executable, "-m", "orchestrator.engine", str(run.pk)],
            cwd=ROOT,
            env=subprocess_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, run in runs.items()
    }
    errors = {name: engine.communicate(timeout=60)[1] for name, engine in engines.items()}
    assert engines["ok"].returncode == 0, errors["ok"]
    assert engines["slow"].returncode == 1, errors["slow"]
    slow = FlowRun.objects.get(pk=runs["slow"].pk)
    assert (slow.state_type, slow.state_message) == (
        S.FAILED,
        "TimeoutError: Flow run exceeded its timeout of 0.5 seconds",
    )
    assert "Finished in state Failed('TimeoutError: Flow run exceeded its timeout of 0.5 seconds')" in errors["slow"]


def test_an_import_error_puts_its_traceback_in_the_run_logs(write_flow: Any, deploy: Any) -> None:
    write_flow("flows/f.py", "raise RuntimeError('config missing')\n")
    run = claimed_run(deploy("flows/f.py:main"))
    assert engine_main(run) == 1
    log = FlowRun.objects.get(pk=run.pk).logs.get(level=40)
    assert "Traceback (most recent call last)" in log.message and "config missing" in log.message


def test_the_entrypoint_is_relative_to_the_deployment_path_and_may_import_its_neighbours(
    write_flow: Any, deploy: Any, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    # As a process: the worker's working directory is not the deployment's path.
    write_flow("project/flows/helpers.py", "GREETING = 'Ciao'\n", header=False)
    write_flow(
        "project/flows/hello.py",
        "from helpers import GREETING\n\n@flow\ndef main():\n    get_run_logger().info(GREETING)\n",
    )
    run = claimed_run(deploy("flows/hello.py:main", path=str(tmp_path / "project")))
    result = run_engine(run, subprocess_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert FlowRun.objects.get(pk=run.pk).logs.filter(message="Ciao").exists()


def test_a_pull_step_that_fails_fails_the_run(write_flow: Any, deploy: Any) -> None:
    write_flow("flows/hello.py", HELLO)
    dep = deploy("flows/hello.py:leonardo_dicapriflow", pull_steps=[{"git_clone_nothing": {}}])
    run = claimed_run(dep, parameters={"name": "Leo"})
    assert engine_main(run) == 1
    run.refresh_from_db()
    assert run.state_type == S.FAILED
    assert run.state_message.startswith("Pull step 1 'git_clone_nothing' is unknown")


def test_a_deployment_run_with_retries_left_is_left_awaiting_retry_for_a_worker(write_flow: Any, deploy: Any) -> None:
    write_flow("flows/f.py", "@flow(retries=2, retry_delay_seconds=30)\ndef main():\n    raise ValueError('flaky')\n")
    run = claimed_run(deploy("flows/f.py:main"))
    assert engine_main(run) == 1
    run.refresh_from_db()
    assert (run.state_type, run.state_name, run.retries, run.retry_delay_seconds) == (
        S.SCHEDULED,
        "AwaitingRetry",
        2,
        30,
    )
    assert run.state_message == "Retry 1 of 2 after: ValueError: flaky"


def test_a_run_cancelled_while_running_stops_the_engine_quietly_and_is_left_to_its_worker(
    write_flow: Any, deploy: Any, subprocess_env: dict[str, str], make_pool: Any
) -> None:
    from workpools.models import Worker

    write_flow("flows/f.py", "@flow\ndef main():\n    get_run_logger().info('started')\n    time.sleep(60)\n")
    run, _ = create_flow_run(deploy("flows/f.py:main"))
    worker = Worker.objects.create(pool=run.work_pool, name="w1")
    set_state(run, S.PENDING, worker=worker)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.engine", str(run.pk)],
        cwd=ROOT,
        env={**subprocess_env, "RUN_HEARTBEAT_SECONDS": "0.2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not FlowRun.objects.filter(pk=run.pk, state_type=S.RUNNING).exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the run never started"
            time.sleep(0.05)
        request_cancellation(FlowRun.objects.get(pk=run.pk), by="test")
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "Stopped: the flow run is now Cancelling('Cancellation requested by test')." in stderr
    assert FlowRun.objects.get(pk=run.pk).state_type == S.CANCELLING  # the worker finishes the cancel


def test_the_engine_heartbeats_the_run_while_it_runs(write_flow: Any, deploy: Any, settings: Any) -> None:
    settings.RUN_HEARTBEAT_SECONDS = 0.1
    write_flow("flows/f.py", "@flow\ndef main():\n    time.sleep(0.5)\n")
    run = claimed_run(deploy("flows/f.py:main"))
    claimed_at = run.heartbeat_at
    assert engine_main(run) == 0
    run.refresh_from_db()
    assert run.heartbeat_at > run.started_at > claimed_at


@pytest.mark.parametrize("state", [S.RUNNING, S.COMPLETED])
def test_a_run_that_is_not_pending_is_left_alone(state: StateType, write_flow: Any, deploy: Any, capsys: Any) -> None:
    write_flow("flows/hello.py", HELLO)
    run = claimed_run(deploy("flows/hello.py:leonardo_dicapriflow", parameters={"name": "Leo"}))
    set_state(run, S.RUNNING)
    if state == S.COMPLETED:
        set_state(run, S.COMPLETED)
    assert engine_main(run) == 2
    err = capsys.readouterr().err
    assert f"is {run.state_name} ({state}); the engine runs only a PENDING or SCHEDULED run" in err
    assert "Traceback" not in err
    assert FlowRun.objects.get(pk=run.pk).state_type == state


def test_an_unknown_run_or_no_run_id_is_a_usage_error(capsys: Any, monkeypatch: Any) -> None:
    assert engine_main("00000000-0000-0000-0000-000000000000") == 2
    assert capsys.readouterr().err.strip() == "Error: No flow run with id '00000000-0000-0000-0000-000000000000'."
    monkeypatch.delenv("ORCHESTRATOR_RUN_ID", raising=False)
    assert engine.main([]) == 2
    assert "usage: python -m orchestrator.engine RUN_ID" in capsys.readouterr().err
