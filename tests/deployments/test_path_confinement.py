"""An entrypoint or working directory outside the project (or the pulled checkout) is refused on
every surface, whether it is written with `..`, as an absolute path, or through a symlink:
deploy flags, spec files, flow.deploy, the admin, pull steps, and the engine at run time."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from deployments.models import Deployment, Flow
from orchestrator.core.errors import ValidationError
from orchestrator.core.paths import check_entrypoint, confined
from orchestrator.engine import FlowLoadError, load_flow
from orchestrator.engine.steps import PullStepError, run_pull_steps
from runs.models import FlowRun
from tests.deployments.deploy_helpers import MANAGE

EVIL = """from orchestrator import flow

@flow
def evil():
    open("PWNED", "w").write("ran outside the project")
"""


@pytest.fixture
def evil(project: Path) -> Path:
    """../other/evil.py beside the project, and flows/link.py, a symlink to it, inside."""
    other = project.parent / f"other-{project.name}"
    other.mkdir()
    (other / "evil.py").write_text(EVIL)
    (project / "flows" / "link.py").symlink_to(other / "evil.py")
    (project / "flows" / "outside").symlink_to(other, target_is_directory=True)
    return other / "evil.py"


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as error:
        call_command("deploy", *args, stdout=StringIO())
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "entrypoint", ["ENTRY_DOTDOT", "ENTRY_ABSOLUTE", "flows/link.py:evil", "flows/../../x/evil.py:evil"]
)
def test_deploy_refuses_an_entrypoint_outside_the_project(project: Path, evil: Path, entrypoint: str) -> None:
    entrypoint = {
        "ENTRY_DOTDOT": f"../{evil.parent.name}/evil.py:evil",
        "ENTRY_ABSOLUTE": f"{evil}:evil",
    }.get(entrypoint, entrypoint)
    message = refused(entrypoint, "-n", "evil", "-p", "my-process-pool")
    assert "is not inside the project directory" in message
    assert not Deployment.objects.exists()
    assert not (project / "PWNED").exists() and not Path("PWNED").exists()


def test_the_dotdot_entrypoint_is_a_one_line_error_from_the_real_command(project: Path, evil: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            MANAGE,
            "deploy",
            f"../{evil.parent.name}/evil.py:evil",
            "-n",
            "evil",
            "-p",
            "my-process-pool",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(MANAGE).parent)},
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not inside the project directory" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_spec_file_with_a_dotdot_entrypoint_is_refused(project: Path, evil: Path) -> None:
    (project / "deployments.yaml").write_text(
        f"deployments:\n  - name: evil\n    entrypoint: ../{evil.parent.name}/evil.py:evil\n"
        "    work_pool: {name: my-process-pool}\n"
    )
    assert "is not inside the project directory" in refused("--all")
    assert not Deployment.objects.exists()


def test_a_pull_step_directory_outside_the_project_is_refused(project: Path, evil: Path) -> None:
    (project / "deployments.yaml").write_text(
        "deployments:\n  - name: hello\n    entrypoint: hello.py:leonardo_dicapriflow\n"
        "    work_pool: {name: my-process-pool}\n"
        "    pull:\n      - set_working_directory: {directory: ../elsewhere}\n"
    )
    assert "must not leave the project directory" in refused("--all")
    assert not Deployment.objects.exists()


def test_flow_deploy_refuses_an_entrypoint_outside_the_project(project: Path, evil: Path) -> None:
    flow = load_flow("flows/hello.py:leonardo_dicapriflow", project)
    with pytest.raises(ValidationError, match="is not inside the project directory"):
        flow.deploy("leo", work_pool_name="my-process-pool", entrypoint=f"../{evil.parent.name}/evil.py:evil")
    assert not Deployment.objects.exists()


def test_the_admin_refuses_a_dotdot_or_absolute_entrypoint(admin_client: Any, make_deployment: Any) -> None:
    dep = make_deployment(entrypoint="flows/hello.py:leonardo_dicapriflow")
    page = admin_client.get(f"/admin/deployments/deployment/{dep.pk}/change/")
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and not isinstance(v, (list, dict))}
    for bad in ("../other/evil.py:evil", "/tmp/evil.py:evil", "flows/../../evil.py:evil"):
        response = admin_client.post(
            page.request["PATH_INFO"], {**data, "entrypoint": bad, "flow": dep.flow_id, "work_pool": dep.work_pool_id}
        )
        assert response.status_code == 200, response.status_code  # the form again, with the error
        assert "must not leave the project directory" in response.content.decode() or (
            "must be relative to the project directory" in response.content.decode()
        )
    dep.refresh_from_db()
    assert dep.entrypoint == "flows/hello.py:leonardo_dicapriflow"


def test_the_rule_for_stored_entrypoints() -> None:
    check_entrypoint("flows/hello.py:f")
    check_entrypoint("flows/./sub/../hello.py:f")
    for bad in ("../x.py:f", "/abs/x.py:f", "a/../../x.py:f", "~/x.py:f", "C:/x.py:f"):
        with pytest.raises(ValidationError) as error:
            check_entrypoint(bad)
        assert list(error.value.errors) == ["entrypoint"]


def test_the_engine_refuses_a_file_that_resolves_outside_its_working_directory(project: Path, evil: Path) -> None:
    for entrypoint in ("flows/link.py:evil", "flows/outside/evil.py:evil", f"../{evil.parent.name}/evil.py:evil"):
        with pytest.raises(FlowLoadError, match="outside"):
            load_flow(entrypoint, project)
    assert not (project / "PWNED").exists()
    with pytest.raises(PullStepError, match="outside"):
        run_pull_steps([{"set_working_directory": {"directory": "flows/outside"}}], cwd=project)
    assert confined("flows/hello.py", project, what="x") == (project / "flows" / "hello.py").resolve()


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_stored_entrypoint_escapes_fails_without_running_it(
    project: Path, evil: Path, subprocess_env: dict[str, str], pool: Any
) -> None:
    # Stored behind the services' back (an old row, a database edit): the engine still refuses.
    flow = Flow.objects.create(name="evil")
    dep = Deployment.objects.create(
        flow=flow,
        name="evil",
        work_pool=pool,
        path=str(project),
        entrypoint="flows/link.py:evil",
        enforce_parameter_schema=False,
    )
    done = subprocess.run(
        [sys.executable, MANAGE, "deployment", "execute", "evil/evil"],
        cwd=project,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    failed = FlowRun.objects.get(deployment=dep)
    assert failed.state_type == "FAILED" and "outside" in failed.state_message, done.stdout + done.stderr
    assert not (project / "PWNED").exists() and not evil.with_name("PWNED").exists()
