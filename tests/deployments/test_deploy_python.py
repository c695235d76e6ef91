"""Deployments written in Python: `my_flow.deploy(...)`, and a .py spec file of
`my_flow.to_deployment(...)` objects deployed with `manage.py deploy --file deployments.py`."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from deployments.models import Deployment
from orchestrator.core.errors import ValidationError
from orchestrator.engine import load_flow

PY_SPEC = """\
from flows.hello import leonardo_dicapriflow

leonardo = leonardo_dicapriflow.to_deployment(
    "leonardo-deployment", work_pool_name="my-process-pool", parameters={"name": "Leo"}, tags=["tutorial", "test"]
)
marvin = leonardo_dicapriflow.to_deployment(
    "marvin-deployment", work_pool_name="my-process-pool", parameters={"name": "Marvin"}, tags=["tutorial", "dev"],
    interval=3600,
)
"""


def test_a_flow_deploys_itself(project: Path) -> None:
    flow = load_flow("flows/hello.py:leonardo_dicapriflow", project)
    deployment = flow.deploy(
        "leo",
        work_pool_name="my-process-pool",
        parameters={"name": "Leo"},
        tags=["tutorial"],
        cron="0 9 * * *",
        timezone="Europe/Berlin",
    )
    assert isinstance(deployment, Deployment)
    assert (deployment.entrypoint, deployment.path, deployment.parameters) == (
        "flows/hello.py:leonardo_dicapriflow",
        str(project.resolve()),
        {"name": "Leo"},
    )
    assert deployment.schedules.get().cron == "0 9 * * *"
    again = flow.deploy("leo", work_pool_name="my-process-pool", parameters={"name": "Leonardo"})
    assert again.pk == deployment.pk and not again.schedules.exists()


def test_a_flow_deploy_is_refused_like_the_command(project: Path) -> None:
    flow = load_flow("flows/hello.py:leonardo_dicapriflow", project)
    with pytest.raises(ValidationError, match="Deployment .leo.: No work pool named 'ghost'."):
        flow.deploy("leo", work_pool_name="ghost")
    with pytest.raises(ValidationError, match="is not inside the project directory"):
        flow.deploy("leo", work_pool_name="my-process-pool", project_dir=str(project / "flows" / "elsewhere"))
    assert not Deployment.objects.exists()


def test_a_python_spec_file_deploys_its_deployment_objects(project: Path) -> None:
    (project / "deployments.py").write_text(PY_SPEC)
    out = StringIO()
    call_command("deploy", "--all", "--file", "deployments.py", stdout=out)
    assert "Deployed 2 deployment(s)." in out.getvalue()
    leo, marvin = Deployment.objects.get(name="leonardo-deployment"), Deployment.objects.get(name="marvin-deployment")
    assert leo.entrypoint == marvin.entrypoint == "flows/hello.py:leonardo_dicapriflow"
    assert (leo.parameters, marvin.parameters) == ({"name": "Leo"}, {"name": "Marvin"})
    assert marvin.schedules.get().interval_seconds == 3600


def test_a_python_spec_file_that_fails_to_import_is_one_line(project: Path) -> None:
    (project / "deployments.py").write_text("import nowhere\n")
    with pytest.raises(CommandError) as error:
        call_command("deploy", "--all", "--file", "deployments.py")
    assert (
        str(error.value)
        == "deployments.py: Could not import deployments.py: ModuleNotFoundError: No module named 'nowhere'"
    )
