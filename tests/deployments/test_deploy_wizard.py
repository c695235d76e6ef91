"""The deploy wizard, driven through a real pseudo-terminal (pexpect), and its static flow scan."""

from __future__ import annotations

import sys
from pathlib import Path

import pexpect
import pytest
import yaml

from deployments.models import Deployment
from deployments.services import create_flow_run
from deployments.wizard import discover_flows
from orchestrator.core.states import StateType
from tests.deployments.deploy_helpers import MANAGE, git, logged, make_project, start_worker, stop, wait_until_finished
from workpools.services import create_work_pool

pytestmark = [pytest.mark.subprocess]

DOWN = "\x1b[B"


def answer(wizard: pexpect.spawn, prompt: str, reply: str) -> None:
    wizard.expect_exact(prompt)
    wizard.sendline(reply)


def finish(wizard: pexpect.spawn) -> None:
    wizard.expect(pexpect.EOF)
    wizard.close()
    assert wizard.exitstatus == 0, wizard.before


def spawn_wizard(env: dict[str, str], cwd: Path) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable, [MANAGE, "deploy"], cwd=str(cwd), env=env, encoding="utf-8", timeout=60, dimensions=(40, 200)
    )


@pytest.mark.django_db(transaction=True)
def test_the_wizard_deploys_a_flow_pulled_from_git_and_a_worker_runs_it(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    project, remote = make_project(tmp_path)
    create_work_pool("a-pool")
    create_work_pool("my-process-pool")

    wizard = spawn_wizard(subprocess_env, project)
    wizard.expect_exact("Which flow would you like to deploy?")
    wizard.expect_exact("leonardo_dicapriflow  (flows/hello.py:leonardo_dicapriflow)")
    wizard.send("\r")
    answer(wizard, "Deployment name [default]: ", "wizard-deployment")
    answer(wizard, "Would you like to change the defaults of its parameters (name='world')? [y/N]: ", "")
    answer(wizard, "Would you like to schedule when this flow runs? [y/N]: ", "y")
    wizard.expect_exact("What kind of schedule?")
    wizard.send(DOWN)
    wizard.send("\r")
    answer(wizard, "Interval in seconds: ", "3600")
    answer(wizard, "Timezone [UTC]: ", "")
    wizard.expect_exact("Which work pool would you like to deploy this flow to?")
    wizard.send("2")  # by number
    wizard.send("\r")
    wizard.expect_exact("Selected: my-process-pool")
    answer(wizard, f"pull your flow code from its remote repository ({remote})? [Y/n]: ", "y")
    wizard.expect_exact("Created deployment 'leonardo_dicapriflow/wizard-deployment' (pool 'my-process-pool').")
    answer(wizard, "to deployments.yaml? [Y/n]: ", "y")
    finish(wizard)

    deployment = Deployment.objects.get(name="wizard-deployment")
    assert deployment.work_pool.name == "my-process-pool"
    assert deployment.pull_steps == [{"git_clone": {"repository": str(remote), "branch": "main"}}]
    assert deployment.schedules.get().interval_seconds == 3600
    saved = yaml.safe_load((project / "deployments.yaml").read_text())
    assert saved["pull"] == deployment.pull_steps
    assert saved["deployments"][0]["name"] == "wizard-deployment"

    run, _ = create_flow_run(deployment, parameters={"name": "Leo"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    worker, output = start_worker(subprocess_env, "my-process-pool", cwd=elsewhere)
    try:
        wait_until_finished(run)
    finally:
        stop(worker)
    assert run.state_type == StateType.COMPLETED, (run.state_message, "".join(output))
    assert logged(run, "Hello Leo!")


@pytest.mark.django_db(transaction=True)
def test_the_wizard_warns_about_unpushed_changes_and_a_subdirectory(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    project, _ = make_project(tmp_path)
    create_work_pool("my-process-pool")
    (project / "flows" / "new.py").write_text("from orchestrator import flow\n\n@flow\ndef fresh():\n    pass\n")

    wizard = spawn_wizard(subprocess_env, project / "flows")
    wizard.expect_exact("Which flow would you like to deploy?")
    wizard.send(DOWN + DOWN + "\r")  # round to the first again, in one keystroke burst
    wizard.expect_exact("Selected: leonardo_dicapriflow")
    wizard.sendline("sub")
    answer(wizard, "(name='world')? [y/N]: ", "n")
    answer(wizard, "[y/N]: ", "n")
    wizard.expect_exact("Which work pool")
    wizard.send("\r")
    wizard.expect_exact("Warning: You are not at the root of the repository")
    wizard.expect_exact("Warning: The working tree has changes that are not committed and pushed")
    answer(wizard, "[Y/n]: ", "y")
    answer(wizard, "[Y/n]: ", "n")
    finish(wizard)
    deployment = Deployment.objects.get(name="sub")
    assert deployment.entrypoint == "flows/hello.py:leonardo_dicapriflow"
    assert deployment.pull_steps == [{"git_clone": {"repository": str(tmp_path / "remote.git"), "branch": "main"}}]
    assert not (project / "flows" / "deployments.yaml").exists()


GREETER = """from orchestrator import flow


@flow
def greet(name: str, times: int, greeting: str = "Hello"):
    print(greeting, name, times)
"""


@pytest.mark.django_db(transaction=True)
def test_the_wizard_asks_for_required_parameters_and_offers_the_defaults(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "greet.py").write_text(GREETER)
    create_work_pool("my-process-pool")
    wizard = spawn_wizard(subprocess_env, tmp_path)
    wizard.expect_exact("Which flow would you like to deploy?")
    wizard.send("\r")
    answer(wizard, "Deployment name [default]: ", "greeter")
    answer(wizard, "Parameter 'name' (string, required): ", "")
    wizard.expect_exact("Please answer: the flow cannot run without it.")
    answer(wizard, "Parameter 'name' (string, required): ", "Leo")
    answer(wizard, "Parameter 'times' (integer, required): ", "many")
    wizard.expect_exact("Invalid parameter 'times'")
    answer(wizard, "Parameter 'times' (integer, required): ", "3")
    answer(wizard, "Would you like to change the defaults of its parameters (greeting='Hello')? [y/N]: ", "y")
    answer(wizard, "Parameter 'greeting' (string) [Hello]: ", "Ciao")
    answer(wizard, "[y/N]: ", "n")  # no schedule
    wizard.expect_exact("Which work pool")
    wizard.send("\r")
    answer(wizard, "[Y/n]: ", "n")  # do not save to deployments.yaml
    finish(wizard)
    deployment = Deployment.objects.get(name="greeter")
    assert deployment.parameters == {"name": "Leo", "times": 3, "greeting": "Ciao"}
    run, _ = create_flow_run(deployment)  # runnable as deployed: nothing required is missing
    assert run.parameters == {"name": "Leo", "times": 3, "greeting": "Ciao"}


def test_the_scan_finds_flows_without_importing_anything(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        "raise SystemExit('imported!')\nimport orchestrator\nfrom orchestrator import flow\n\n"
        "@flow\ndef plain():\n    pass\n\n@flow(name='named-flow', retries=2)\ndef configured():\n    pass\n\n"
        "@orchestrator.flow\nasync def dotted():\n    pass\n\ndef helper():\n    pass\n"
    )
    (tmp_path / "broken.py").write_text("def (:\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "hidden.py").write_text("from orchestrator import flow\n@flow\ndef hidden():\n    pass\n")
    found = [(f.entrypoint, f.name) for f in discover_flows(tmp_path)]
    assert found == [("a.py:plain", "plain"), ("a.py:configured", "named-flow"), ("a.py:dotted", "dotted")]


def test_git_helpers_see_the_project_remote(tmp_path: Path) -> None:
    from deployments.wizard import detect_git

    project, remote = make_project(tmp_path)
    source = detect_git(project)
    assert source is not None and (source.repository, source.branch, source.warnings) == (str(remote), "main", [])
    (project / "x.txt").write_text("x")
    git(project, "add", "x.txt")
    git(project, "commit", "-qm", "local only")
    assert detect_git(project).warnings == [
        "Branch 'main' has 1 commit(s) not pushed to 'origin': workers will not see them."
    ]


def test_the_wizard_stops_before_asking_when_there_is_no_flow_or_no_pool(tmp_path: Path, db: None) -> None:
    from io import StringIO

    from deployments.wizard import Wizard
    from orchestrator.core.errors import ValidationError

    wizard = Wizard(StringIO(), tmp_path, spec_file=tmp_path / "deployments.yaml")
    with pytest.raises(ValidationError, match="No flows found in"):
        wizard.run(lambda results: None)
    (tmp_path / "hello.py").write_text("from orchestrator import flow\n\n@flow\ndef hello():\n    pass\n")
    with pytest.raises(ValidationError, match="There is no work pool to deploy to: create one with"):
        wizard.run(lambda results: None)
