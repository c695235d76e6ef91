"""`manage.py deployment execute FLOW/DEPLOYMENT`: a deployment's flow run here, without a worker."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from orchestrator.core.parameters import parameter_schema
from orchestrator.core.states import StateType
from runs.models import FlowRun

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)

HELLO = """from orchestrator import flow, task, get_run_logger

@task
def log_message(name):
    get_run_logger().info(f"Hello {name}!")

@flow(retries=1)
def leonardo_dicapriflow(name: str, times: int = 1):
    for _ in range(times):
        log_message(name)
"""


def _schema(name: str, times: int = 1) -> None: ...


@pytest.fixture
def leo(make_deployment: Any, tmp_path: Path) -> Any:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.py").write_text(HELLO)
    return make_deployment(
        path=str(tmp_path), parameters={"name": "Leo"}, parameter_schema=parameter_schema(_schema), tags=["tutorial"]
    )


def test_it_creates_a_run_and_runs_it_here(leo: Any, capsys: Any) -> None:
    call_command("deployment", "execute", "leonardo_dicapriflow/leonardo-deployment")
    run = FlowRun.objects.get()
    assert (run.state_type, run.deployment, run.worker, run.created_by) == (S.COMPLETED, leo, None, "cli")
    assert [s.name for s in run.states.all()] == ["Scheduled", "Pending", "Running", "Completed"]
    assert run.logs.filter(message="Hello Leo!").exists()
    err = capsys.readouterr().err
    assert f"orchestrator.engine - Created flow run '{run.name}' for flow 'leonardo_dicapriflow'" in err
    assert f"Flow run '{run.name}' - Finished in state Completed('All states completed.')" in err


def test_params_on_the_command_line_override_the_deployment_and_are_coerced(leo: Any) -> None:
    call_command(
        "deployment",
        "execute",
        "leonardo_dicapriflow/leonardo-deployment",
        "--param",
        "name=Marvin",
        "--param",
        "times=2",
    )
    run = FlowRun.objects.get()
    assert run.parameters == {"name": "Marvin", "times": 2}
    assert run.logs.filter(message="Hello Marvin!").count() == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["nobody/nothing"], "No deployment named 'nobody/nothing'."),
        (["leonardo_dicapriflow"], "'leonardo_dicapriflow' is not a deployment name; use FLOW/DEPLOYMENT."),
        (["leonardo_dicapriflow/leonardo-deployment", "--param", "times"], "--param takes KEY=VALUE, not 'times'."),
        (
            ["leonardo_dicapriflow/leonardo-deployment", "--param", "times=lots"],
            "Invalid parameter 'times': Input should be a valid integer, unable to parse string as an integer; got 'lots'.",
        ),
    ],
)
def test_bad_input_is_a_one_line_error_and_creates_no_run(leo: Any, args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as excinfo:
        call_command("deployment", "execute", *args)
    assert str(excinfo.value) == message
    assert not FlowRun.objects.exists()


def test_a_failed_run_is_a_command_error_with_its_final_state(leo: Any, tmp_path: Path) -> None:
    (tmp_path / "flows" / "hello.py").write_text(
        HELLO.replace('get_run_logger().info(f"Hello {name}!")', "raise ValueError(name)")
    )
    with pytest.raises(CommandError) as excinfo:
        call_command("deployment", "execute", "leonardo_dicapriflow/leonardo-deployment", stdout=StringIO())
    run = FlowRun.objects.get()
    assert str(excinfo.value) == f"Flow run '{run.name}' ended Failed('ValueError: Leo')."
    # retries=1: it was retried here, right away, before failing for good.
    assert (run.state_type, run.run_count) == (S.FAILED, 2)
    assert [s.name for s in run.states.all()] == [
        "Scheduled",
        "Pending",
        "Running",
        "Failed",
        "AwaitingRetry",
        "Pending",
        "Retrying",
        "Failed",
    ]
