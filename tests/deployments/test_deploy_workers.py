"""Deploying the tutorial's flow for real: `manage.py deploy` run from a project in a git
repository, then a real `runworker` running the deployments (from the project's directory, or
from a git clone of it when the code is pulled from the remote)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deployments.models import Deployment
from deployments.services import create_flow_run
from orchestrator.core.states import StateType
from tests.deployments.deploy_helpers import (
    SPEC,
    commit_and_push,
    git,
    logged,
    make_project,
    manage,
    start_worker,
    stop,
    wait_until_finished,
)
from workpools.services import create_work_pool, create_work_queue

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)

GIT_SPEC = """\
pull:
  - git_clone:
      repository: {remote}
      branch: main
deployments:
  - name: leonardo-deployment
    entrypoint: flows/hello.py:leonardo_dicapriflow
    parameters: {{name: Leo}}
    work_pool: {{name: my-process-pool}}
"""


def test_deploy_with_flags_and_from_the_spec_file_then_a_worker_greets_leo_and_marvin(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    project, _ = make_project(tmp_path)
    pool = create_work_pool("my-process-pool")
    create_work_queue(pool, "dev-queue", tags=["dev"])
    (project / "deployments.yaml").write_text(SPEC)

    flags = manage(
        subprocess_env,
        project,
        "deploy",
        "flows/hello.py:leonardo_dicapriflow",
        "-n",
        "ci-deployment",
        "-p",
        "my-process-pool",
        "--param",
        "name=Leo",
        "--tag",
        "ci",
    )
    assert flags.returncode == 0, flags.stderr
    assert "Created deployment 'leonardo_dicapriflow/ci-deployment'" in flags.stdout
    spec = manage(subprocess_env, project, "deploy", "--all")
    assert spec.returncode == 0, spec.stderr
    assert "Deployed 2 deployment(s)." in spec.stdout

    ci, leo, marvin = (
        Deployment.objects.get(name=n) for n in ("ci-deployment", "leonardo-deployment", "marvin-deployment")
    )
    assert leo.flow_id == marvin.flow_id == ci.flow_id
    assert (leo.parameters, leo.tags, marvin.parameters, marvin.tags) == (
        {"name": "Leo"},
        ["tutorial", "test"],
        {"name": "Marvin"},
        ["tutorial", "dev"],
    )
    assert leo.path == str(project.resolve()) and leo.pull_steps == []
    assert leo.parameter_schema["properties"]["name"]["type"] == "string"
    assert marvin.schedules.get().describe() and marvin.version == "2"

    runs = {name: create_flow_run(dep)[0] for name, dep in (("ci", ci), ("leo", leo), ("marvin", marvin))}
    assert runs["marvin"].work_queue.name == "dev-queue"
    assert runs["leo"].work_queue.name == "default"
    worker, output = start_worker(subprocess_env, "my-process-pool", cwd=tmp_path)
    try:
        for run in runs.values():
            wait_until_finished(run)
    finally:
        stop(worker)
    for run in runs.values():
        assert run.state_type == S.COMPLETED, (run.state_message, "".join(output))
    assert logged(runs["ci"], "Hello Leo!")
    assert logged(runs["leo"], "Hello Leo!")
    assert logged(runs["marvin"], "Hello Marvin!")


def test_code_pulled_from_git_runs_where_the_code_is_not_and_a_new_commit_changes_the_next_run(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    project, remote = make_project(tmp_path)
    create_work_pool("my-process-pool")
    (project / "deployments.yaml").write_text(GIT_SPEC.format(remote=remote))
    result = manage(subprocess_env, project, "deploy", "--name", "leonardo-deployment")
    assert result.returncode == 0, result.stderr
    deployment = Deployment.objects.get(name="leonardo-deployment")
    assert deployment.path == ""
    assert deployment.pull_steps == [{"git_clone": {"repository": str(remote), "branch": "main"}}]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    worker, output = start_worker(subprocess_env, "my-process-pool", cwd=elsewhere)
    try:
        first, _ = create_flow_run(deployment)
        wait_until_finished(first)
        assert first.state_type == S.COMPLETED, (first.state_message, "".join(output))
        assert logged(first, "Hello Leo!")
        # Which code ran is in the run's logs: repository, branch and commit.
        assert logged(first, f"Pulled {remote} (branch main) at commit {git(project, 'rev-parse', 'HEAD')}")

        hello = project / "flows" / "hello.py"
        hello.write_text(hello.read_text().replace('return "Hello"', 'return "Howdy"'))
        commit_and_push(project, "Howdy")
        second, _ = create_flow_run(deployment)
        wait_until_finished(second)
        assert second.state_type == S.COMPLETED, (second.state_message, "".join(output))
        assert logged(second, "Howdy Leo!")
        assert logged(second, f"Pulled {remote} (branch main) at commit {git(project, 'rev-parse', 'HEAD')}")
    finally:
        stop(worker)


def test_a_pull_that_fails_ends_the_run_failed_with_the_git_error(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    project, remote = make_project(tmp_path)
    create_work_pool("my-process-pool")
    (project / "deployments.yaml").write_text(GIT_SPEC.format(remote=remote))
    assert manage(subprocess_env, project, "deploy", "--all").returncode == 0
    shutil.rmtree(remote)  # the remote is no longer a repository
    remote.mkdir()

    run, _ = create_flow_run(Deployment.objects.get(name="leonardo-deployment"))
    worker, output = start_worker(subprocess_env, "my-process-pool", cwd=tmp_path)
    try:
        wait_until_finished(run)
    finally:
        stop(worker)
    assert run.state_type == S.FAILED
    assert run.state_message.startswith(f"git_clone: git could not fetch {remote}: "), run.state_message
    assert "does not appear to be a git repository" in run.state_message
