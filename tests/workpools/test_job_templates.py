"""Base job templates: what a pool's infrastructure is configured with, checked and rendered in
one module (workpools.infrastructure.templates), refused with field errors on every surface."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from deployments.models import Deployment
from runs.models import FlowRun
from tests.conftest import Api
from workpools.infrastructure.templates import (
    check_base_job_template,
    check_job_variables,
    default_base_job_template,
    render,
)
from workpools.models import WorkPool
from workpools.records import claimed_run
from workpools.services import create_work_pool

TEMPLATE = {
    "job_configuration": {"image": "{{ image }}", "ports": "{{ ports }}", "tag": "v{{ version }}-x", "fixed": 1},
    "variables": {
        "type": "object",
        "properties": {
            "image": {"type": "string", "default": "alpine"},
            "ports": {"type": "array", "items": {"type": "integer"}, "default": [80]},
            "version": {"type": "integer", "default": 3},
        },
    },
}


def cli(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- the module -------------------------------------------------------------------------------


def test_a_whole_placeholder_keeps_its_json_type_and_one_inside_text_becomes_text() -> None:
    rendered = render(TEMPLATE["job_configuration"], {"image": "busybox", "ports": [1, 2], "version": 7})
    assert rendered == {"image": "busybox", "ports": [1, 2], "tag": "v7-x", "fixed": 1}
    assert render({"a": "{{ missing }}", "b": "x{{ missing }}y"}, {}) == {"a": None, "b": "xy"}


def test_broken_templates_are_refused_saying_where() -> None:
    with pytest.raises(Exception, match="must be a JSON object"):
        check_base_job_template([])
    bad_schema = {"job_configuration": {}, "variables": {"type": "object", "properties": {"x": {"type": "nonsense"}}}}
    with pytest.raises(Exception, match="is not a valid JSON schema"):
        check_base_job_template(bad_schema)
    undeclared = {"job_configuration": {"a": "{{ nope }}"}, "variables": {"type": "object", "properties": {}}}
    with pytest.raises(Exception) as error:
        check_base_job_template(undeclared)
    assert error.value.errors == {  # type: ignore[attr-defined]
        "base_job_template.job_configuration": [
            "refers to undeclared variable(s) nope; declare them under variables.properties."
        ]
    }
    bad_default = {
        "job_configuration": {},
        "variables": {"type": "object", "properties": {"n": {"type": "integer", "default": "x"}}},
    }
    with pytest.raises(Exception) as error:
        check_base_job_template(bad_default)
    assert list(error.value.errors) == ["base_job_template.variables.properties.n.default"]  # type: ignore[attr-defined]
    assert check_base_job_template(TEMPLATE) is TEMPLATE


def test_variables_are_checked_one_field_error_each() -> None:
    with pytest.raises(Exception) as error:
        check_job_variables(TEMPLATE, {"image": 5, "ports": [80, "http"], "colour": "red"})
    assert error.value.errors == {  # type: ignore[attr-defined]
        "job_variables.colour": ["Unknown job variable 'colour' for this work pool (known: image, ports, version)."],
        "job_variables.image": ["5 is not of type 'string'."],
        "job_variables.ports[1]": ["'http' is not of type 'integer'."],
    }
    assert check_job_variables(TEMPLATE, {"version": 4}) == {"version": 4}


# --- precedence -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_template_defaults_then_pool_then_deployment_then_run(make_deployment: Any) -> None:
    pool = create_work_pool(
        "containers", type="docker", job_variables={"image": "pool:1", "env": {"A": "pool", "B": "pool"}, "cpus": 1}
    )
    dep = make_deployment(
        "layered", work_pool=pool, job_variables={"image": "deployment:2", "env": {"B": "deployment"}}
    )
    from deployments.services import create_flow_run

    plain, _ = create_flow_run(dep)
    special, _ = create_flow_run(dep, job_variables={"image": "run:3", "env": {"C": "run"}})
    configs = [claimed_run(FlowRun.objects.with_related().get(pk=r.pk)).job_configuration for r in (plain, special)]
    assert configs[0]["image"] == "deployment:2" and configs[1]["image"] == "run:3"
    assert configs[0]["env"] == {"A": "pool", "B": "deployment"}
    assert configs[1]["env"] == {"A": "pool", "B": "deployment", "C": "run"}
    assert configs[1]["cpus"] == 1  # from the pool
    assert configs[1]["network_mode"] == "host" and configs[1]["image_pull_policy"] == "IfNotPresent"  # defaults


@pytest.mark.django_db
def test_a_run_whose_pool_template_no_longer_renders_fails_with_the_reason(make_deployment: Any, settings: Any) -> None:
    pool = create_work_pool("p", type="process")
    dep = make_deployment("d", work_pool=pool)
    from deployments.services import create_flow_run

    run, _ = create_flow_run(dep)
    WorkPool.objects.filter(pk=pool.pk).update(base_job_template={"job_configuration": {"x": 1}})  # edited by hand
    claimed = claimed_run(FlowRun.objects.with_related().get(pk=run.pk))
    assert claimed.configuration_error.startswith("Its job configuration cannot be rendered")


# --- the CLI ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cli_prints_the_default_template_and_creates_and_updates_pools_with_templates(tmp_path: Path) -> None:
    default = json.loads(cli("workpool", "get-default-base-job-template", "--type", "docker"))
    assert default == default_base_job_template("docker")
    assert default["variables"]["properties"]["image_pull_policy"]["enum"] == ["Always", "IfNotPresent", "Never"]
    custom = tmp_path / "template.json"
    custom.write_text(json.dumps(TEMPLATE))
    cli("workpool", "create", "custom", "--type", "process", "--base-job-template", str(custom))
    assert WorkPool.objects.get(name="custom").base_job_template == TEMPLATE
    cli("workpool", "update", "custom", "--job-variables", '{"image": "busybox"}')
    assert WorkPool.objects.get(name="custom").job_variables == {"image": "busybox"}


@pytest.mark.django_db
def test_cli_refuses_bad_templates_and_variables_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(CommandError, match=r"--base-job-template .*broken.json: not valid JSON"):
        cli("workpool", "create", "x", "--base-job-template", str(broken))
    undeclared = tmp_path / "undeclared.json"
    undeclared.write_text(json.dumps({"job_configuration": {"a": "{{ b }}"}, "variables": {"properties": {}}}))
    with pytest.raises(CommandError, match="undeclared variable"):
        cli("workpool", "create", "x", "--base-job-template", str(undeclared))
    assert not WorkPool.objects.filter(name="x").exists()
    cli("workpool", "create", "d", "--type", "docker")
    with pytest.raises(CommandError) as error:
        cli("workpool", "update", "d", "--job-variables", '{"image_pull_policy": "Sometimes", "cpus": -1}')
    message = str(error.value)
    assert "\n" not in message
    assert "job_variables.image_pull_policy: 'Sometimes' is not one of ['Always', 'IfNotPresent', 'Never']." in message
    assert "job_variables.cpus" in message
    assert WorkPool.objects.get(name="d").job_variables == {}
    with pytest.raises(CommandError, match="Unknown work pool type 'nope'"):
        cli("workpool", "get-default-base-job-template", "--type", "nope")


# --- the API ----------------------------------------------------------------------------------------


def test_api_refuses_bad_templates_and_variables_with_field_errors(
    writer: Api, operator: Api, make_deployment: Any
) -> None:
    created = writer.post("/api/work-pools/", json={"name": "c", "type": "docker", "job_variables": {"image": 3}})
    assert created.status_code == 400
    assert created.json()["errors"] == {"job_variables.image": ["3 is not of type 'string'."]}
    assert not WorkPool.objects.filter(name="c").exists()
    created = writer.post("/api/work-pools/", json={"name": "c", "type": "docker"})
    assert created.status_code == 201
    assert created.json()["base_job_template"] == default_base_job_template("docker")
    bad = writer.patch(
        "/api/work-pools/c/", json={"base_job_template": {"job_configuration": {"a": "{{ b }}"}, "variables": {}}}
    )
    assert bad.status_code == 400 and "base_job_template.job_configuration" in bad.json()["errors"]
    ok = writer.patch("/api/work-pools/c/", json={"job_variables": {"image": "mine:1"}})
    assert ok.status_code == 200 and ok.json()["job_variables"] == {"image": "mine:1"}

    pool = WorkPool.objects.get(name="c")
    dep = make_deployment("in-c", work_pool=pool)
    refused = writer.patch(f"/api/deployments/{dep.pk}/", json={"job_variables": {"volumes": ["no-colon"]}})
    assert refused.status_code == 400
    assert list(refused.json()["errors"]) == ["job_variables"]
    assert refused.json()["errors"]["job_variables"][0].startswith("volumes[0]: 'no-colon' does not match")
    assert Deployment.objects.get(pk=dep.pk).job_variables == {}

    run = operator.post(f"/api/deployments/{dep.pk}/runs/", json={"job_variables": {"mem_limit": "lots"}})
    assert run.status_code == 400
    assert list(run.json()["errors"]) == ["job_variables.mem_limit"]
    assert not FlowRun.objects.filter(deployment=dep).exists()
    run = operator.post(f"/api/deployments/{dep.pk}/runs/", json={"job_variables": {"mem_limit": "256m"}})
    assert run.status_code == 201 and FlowRun.objects.get(deployment=dep).job_variables == {"mem_limit": "256m"}


# --- the admin -------------------------------------------------------------------------------------


def _pool_form(**fields: str) -> dict[str, str]:
    return {
        "name": "from-admin",
        "type": "docker",
        "description": "",
        "concurrency_limit": "",
        "base_job_template": "{}",
        "job_variables": "{}",
        "queues-TOTAL_FORMS": "0",
        "queues-INITIAL_FORMS": "0",
        **fields,
    }


@pytest.mark.django_db
def test_admin_refuses_bad_variables_and_templates_at_their_fields(admin_client: Any) -> None:
    response = admin_client.post(
        reverse("admin:workpools_workpool_add"), _pool_form(job_variables='{"image_pull_policy": "Often"}')
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["job_variables"] == ["image_pull_policy: 'Often' is not one of ['Always', 'IfNotPresent', 'Never']."]
    assert not WorkPool.objects.filter(name="from-admin").exists()
    response = admin_client.post(
        reverse("admin:workpools_workpool_add"),
        _pool_form(base_job_template='{"job_configuration": [], "variables": {}}'),
    )
    assert response.context["adminform"].form.errors["base_job_template"] == [
        "job_configuration: must be a JSON object."
    ]
    response = admin_client.post(
        reverse("admin:workpools_workpool_add"), _pool_form(job_variables='{"image": "mine:2"}')
    )
    assert response.status_code == 302
    pool = WorkPool.objects.get(name="from-admin")
    assert pool.job_variables == {"image": "mine:2"} and pool.base_job_template == default_base_job_template("docker")


@pytest.mark.django_db
def test_the_deployment_admin_form_checks_job_variables_against_the_pool(
    admin_user: Any, make_deployment: Any, rf: Any
) -> None:
    from django.contrib import admin
    from django.forms.models import model_to_dict

    pool = create_work_pool("docker-admin", type="docker")
    dep = make_deployment("admin-checked", work_pool=pool)
    request = rf.get("/")
    request.user = admin_user
    form_class = admin.site._registry[Deployment].get_form(request, dep)
    data = {k: v for k, v in model_to_dict(dep).items() if v is not None}
    data.update(job_variables='{"image": 7}', parameters="{}", parameter_schema="{}", pull_steps="[]", tags="[]")
    form = form_class(data=data, instance=dep)
    assert not form.is_valid()
    assert form.errors["job_variables"] == ["image: 7 is not of type 'string'."]
    good = form_class(data={**data, "job_variables": '{"image": "mine:3"}'}, instance=dep)
    good.is_valid()
    assert "job_variables" not in good.errors
