"""`manage.py deploy` from flags and from a spec file: what is saved, what a redeploy changes,
and the mistakes that are refused in one line with nothing saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from deployments.models import Deployment, DeploymentSchedule, Flow
from deployments.services.deploying import deploy_definitions
from deployments.specs import DeploymentDefinition
from orchestrator.core.errors import ValidationError
from orchestrator.engine.steps import check_repository_url
from tests.deployments.deploy_helpers import SPEC, manage

ENTRY = "flows/hello.py:leonardo_dicapriflow"


def deploy(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("deploy", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as error:
        deploy(*args)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_deploying_with_flags_stores_the_flows_schema_defaults_tags_and_schedule(project: Path) -> None:
    out = deploy(
        ENTRY,
        "-n",
        "leo",
        "-p",
        "my-process-pool",
        "--param",
        "name=Leo",
        "--tag",
        "tutorial",
        "--tag",
        "test",
        "--cron",
        "0 9 * * 1-5",
        "--timezone",
        "Europe/Berlin",
        "--description",
        "Greets",
        "--version",
        "1.2",
    )
    assert "Created deployment 'leonardo_dicapriflow/leo'" in out
    d = Deployment.objects.get(name="leo")
    assert (d.entrypoint, d.path, d.parameters, d.tags, d.description, d.version) == (
        ENTRY,
        str(project.resolve()),
        {"name": "Leo"},
        ["tutorial", "test"],
        "Greets",
        "1.2",
    )
    assert d.parameter_schema["properties"]["name"]["type"] == "string"
    assert d.parameter_schema["properties"]["name"]["default"] == "world"
    schedule = d.schedules.get()
    assert (schedule.kind, schedule.cron, schedule.timezone) == ("cron", "0 9 * * 1-5", "Europe/Berlin")


def test_deploying_again_updates_the_deployment_in_place(project: Path) -> None:
    deploy(ENTRY, "-n", "leo", "-p", "my-process-pool", "--param", "name=Leo", "--interval", "600")
    first = Deployment.objects.get(name="leo")
    out = deploy(ENTRY, "-n", "leo", "-p", "my-process-pool", "--param", "name=Leonardo", "--interval", "900")
    assert "Updated deployment 'leonardo_dicapriflow/leo'" in out
    again = Deployment.objects.get(name="leo")
    assert again.pk == first.pk and again.parameters == {"name": "Leonardo"}
    assert list(again.schedules.values_list("interval_seconds", flat=True)) == [900]


def test_the_spec_file_deploys_leonardo_and_marvin_side_by_side(project: Path) -> None:
    (project / "deployments.yaml").write_text(SPEC)
    assert "Deployed 2 deployment(s)." in deploy("--all")
    leo, marvin = Deployment.objects.get(name="leonardo-deployment"), Deployment.objects.get(name="marvin-deployment")
    assert leo.flow == marvin.flow and Flow.objects.count() == 1
    assert (leo.parameters, marvin.parameters) == ({"name": "Leo"}, {"name": "Marvin"})
    assert marvin.schedules.get().interval_seconds == 3600


def test_deploy_name_picks_deployments_from_the_spec_file(project: Path) -> None:
    (project / "deployments.yaml").write_text(SPEC)
    deploy("--name", "marvin-deployment")
    assert list(Deployment.objects.values_list("name", flat=True)) == ["marvin-deployment"]
    assert refused("--name", "zaphod") == (
        "deployments.yaml has no deployment named 'zaphod' (it has: leonardo-deployment, marvin-deployment)."
    )


def test_another_spec_file_is_read_with_file(project: Path) -> None:
    (project / "other.yaml").write_text(SPEC)
    deploy("--all", "--file", "other.yaml")
    assert Deployment.objects.count() == 2


def test_invalid_yaml_is_refused_with_its_line_number(project: Path) -> None:
    (project / "deployments.yaml").write_text(SPEC.replace("parameters: {name: Marvin}", "parameters: {name: Marvin"))
    message = refused("--all")
    assert message.startswith("deployments.yaml, line 12, column"), message
    assert Deployment.objects.count() == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            (
                "entrypoint: flows/hello.py:leonardo_dicapriflow\n    description",
                "entrypoint: flows/nope.py:leonardo_dicapriflow\n    description",
            ),
            "Deployment 'marvin-deployment': Could not import flows/nope.py: there is no such file in",
        ),
        (
            (
                "entrypoint: flows/hello.py:leonardo_dicapriflow\n    description",
                "entrypoint: flows/hello.py:not_a_flow\n    description",
            ),
            "Deployment 'marvin-deployment': 'not_a_flow' in flows/hello.py is not a flow: decorate it with @flow.",
        ),
        (
            ("name: my-process-pool}\n    schedules", "name: ghost}\n    schedules"),
            "Deployment 'marvin-deployment': No work pool named 'ghost'.",
        ),
        (
            ("interval: 3600", "cron: '61 * * * *'"),
            "Deployment 'marvin-deployment': schedule 1: Invalid schedule (cron): '61 * * * *' is not a valid cron",
        ),
        (
            ("tags: [tutorial, dev]", "tags: tutorial"),
            "deployments.yaml: deployment 'marvin-deployment', field 'tags': must be a list of strings.",
        ),
        (
            ('version: "2"', "colour: blue"),
            "deployments.yaml: deployment 'marvin-deployment', field 'colour': unknown field",
        ),
        (
            ("parameters: {name: Marvin}", "parameters: {nom: Marvin}"),
            "Deployment 'marvin-deployment': Invalid parameter 'nom': The flow takes no parameter 'nom'.",
        ),
    ],
)
def test_a_mistake_in_one_deployment_saves_none_of_them(project: Path, change: tuple[str, str], expected: str) -> None:
    assert change[0] in SPEC
    (project / "deployments.yaml").write_text(SPEC.replace(change[0], change[1]))
    assert refused("--all").startswith(expected)
    assert Deployment.objects.count() == 0 and DeploymentSchedule.objects.count() == 0


def test_an_unsafe_repository_is_refused_and_nothing_is_saved(project: Path) -> None:
    spec = "pull:\n  - git_clone: {repository: 'ext::sh -c touch% /tmp/pwned', branch: main}\n" + SPEC
    (project / "deployments.yaml").write_text(spec)
    message = refused("--all")
    assert message.startswith("Deployment 'leonardo-deployment': Unsafe or unsupported repository 'ext::sh -c")
    assert Deployment.objects.count() == 0


def test_a_token_is_never_written_in_a_step(project: Path) -> None:
    spec = "pull:\n  - git_clone: {repository: 'https://example.com/a.git', access_token: s3cret}\n" + SPEC
    (project / "deployments.yaml").write_text(spec)
    message = refused("--all")
    assert "unexpected keyword argument 'access_token'" in message and "s3cret" not in message


@pytest.mark.parametrize(
    "url", ["https://github.com/org/flows.git", "ssh://git@github.com/org/flows.git", "git@github.com:org/flows.git"]
)
def test_https_ssh_and_scp_like_repositories_are_accepted(url: str) -> None:
    check_repository_url(url)


def test_existing_local_repositories_are_accepted(tmp_path: Path) -> None:
    check_repository_url(str(tmp_path))
    check_repository_url(f"file://{tmp_path}")


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c 'touch /tmp/pwned'",
        "--upload-pack=touch /tmp/pwned",
        "-u",
        "http://example.com/a.git",
        "fd::17",
        "git://example.com/a.git",
        "relative/path",
        "/no/such/repository",
        "file:///no/such/dir",
        "git@host:--upload-pack=x",
        "https:///nohost",
        "",
        " https://example.com/a.git",
    ],
)
def test_unsafe_or_unsupported_repositories_are_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="Unsafe or unsupported repository"):
        check_repository_url(url)


def test_missing_flags_say_which_without_prompting(project: Path) -> None:
    assert refused(ENTRY, "-p", "my-process-pool") == "Missing --name (-n): the deployment's name."
    assert refused(ENTRY, "-n", "leo") == "Missing --pool (-p): the work pool to deploy to."


def test_the_service_deploys_several_definitions_or_none(project: Path) -> None:
    good = DeploymentDefinition(name="a", entrypoint=ENTRY, work_pool="my-process-pool")
    bad = DeploymentDefinition(name="b", entrypoint=ENTRY, work_pool="my-process-pool", work_queue="nope")
    with pytest.raises(ValidationError, match="Deployment 'b': Work pool 'my-process-pool' has no queue 'nope'."):
        deploy_definitions([good, bad], project_dir=project)
    assert Deployment.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_without_a_terminal_deploy_fails_in_one_line_with_exit_1(subprocess_env: dict[str, str], project: Path) -> None:
    result = manage(subprocess_env, project, "deploy")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("CommandError: Missing ENTRYPOINT (path/to/file.py:function) with -n NAME")
    assert len(result.stderr.strip().splitlines()) == 1


def test_answers_saved_to_the_spec_file_load_back_with_their_own_pull_steps(tmp_path: Path) -> None:
    from deployments.specs import load_spec_file, save_to_spec_file

    spec_file = tmp_path / "deployments.yaml"
    git_steps = [{"git_clone": {"repository": str(tmp_path), "branch": "main"}}]
    pulled = DeploymentDefinition(
        name="pulled",
        entrypoint=ENTRY,
        work_pool="my-process-pool",
        tags=["a"],
        schedules=[{"kind": "interval", "interval_seconds": 60, "timezone": "UTC"}],
    )
    local = DeploymentDefinition(
        name="local", entrypoint=ENTRY, work_pool="my-process-pool", parameters={"name": "Leo"}
    )
    save_to_spec_file(spec_file, pulled, git_steps)
    save_to_spec_file(spec_file, local, [])
    save_to_spec_file(spec_file, local, [])  # saving again replaces it
    loaded = {d.name: d for d in load_spec_file(spec_file).deployments}
    assert list(loaded) == ["pulled", "local"]
    assert loaded["pulled"].pull_steps == git_steps and loaded["local"].pull_steps == []
    assert loaded["pulled"].schedules == [{"kind": "interval", "interval_seconds": 60, "timezone": "UTC"}]
    assert loaded["local"].parameters == {"name": "Leo"}


def test_flags_given_with_a_spec_file_override_its_values_for_that_deployment(project: Path, make_pool: Any) -> None:
    make_pool("other-pool")
    (project / "deployments.yaml").write_text(SPEC)
    out = deploy(
        "-n", "marvin-deployment", "-p", "other-pool", "--param", "name=Zaphod", "--tag", "adhoc", "--cron", "0 8 * * *"
    )
    assert "Created deployment 'leonardo_dicapriflow/marvin-deployment' (pool 'other-pool')." in out
    d = Deployment.objects.get(name="marvin-deployment")
    assert (d.work_pool.name, d.parameters, d.tags) == ("other-pool", {"name": "Zaphod"}, ["adhoc"])
    assert list(d.schedules.values_list("kind", "cron")) == [("cron", "0 8 * * *")]


def test_a_flag_naming_a_missing_pool_with_a_spec_file_is_refused_and_saves_nothing(project: Path) -> None:
    (project / "deployments.yaml").write_text(SPEC)
    assert refused("-n", "leonardo-deployment", "-p", "my-pool") == (
        "Deployment 'leonardo-deployment': No work pool named 'my-pool'."
    )
    assert refused("-n", "leonardo-deployment", "--param", "nom=Leo").startswith(
        "Deployment 'leonardo-deployment': Invalid parameter 'nom'"
    )
    assert not Deployment.objects.exists()


def test_deploy_refuses_a_deployment_name_outside_the_naming_rule(project: Path) -> None:
    assert refused(ENTRY, "-n", "my deployment", "-p", "my-process-pool").startswith(
        "Invalid deployment name 'my deployment': use 1 to 100 letters"
    )
    assert not Deployment.objects.exists()
