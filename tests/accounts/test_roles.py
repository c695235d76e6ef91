"""Roles (viewer, operator, admin): one policy for the API with a session, the dashboard and
the admin; `manage.py role`."""

from __future__ import annotations

import json
import re
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from accounts.roles import add_role
from deployments.models import Deployment
from runs.models import FlowRun
from workpools.models import WorkPool

pytestmark = pytest.mark.django_db
UNSAFE = ("post", "put", "patch", "delete")


@pytest.fixture
def as_role(django_user_model: Any):  # type: ignore[no-untyped-def]
    def make(role: str) -> Client:
        user = django_user_model.objects.create_user(f"{role}-person", password="correct-horse-battery")
        add_role(user.username, role)
        client = Client()
        client.force_login(user)
        return client

    return make


def unsafe_operations(client: Client) -> list[tuple[str, str]]:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    return [(method, path) for path, item in schema["paths"].items() for method in item if method in UNSAFE]


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), ids["id"]), path)


def snapshot() -> tuple[Any, ...]:
    return (
        FlowRun.objects.count(),
        list(FlowRun.objects.values_list("state_type", flat=True).order_by("pk")),
        list(Deployment.objects.values_list("paused", "tags", "concurrency_limit").order_by("pk")),
        list(WorkPool.objects.values_list("paused", "concurrency_limit").order_by("pk")),
    )


def test_the_migration_made_the_three_role_groups() -> None:
    groups = {g.name: g for g in Group.objects.filter(name__in=["viewer", "operator", "admin"])}
    assert set(groups) == {"viewer", "operator", "admin"}
    viewer_perms = set(groups["viewer"].permissions.values_list("codename", flat=True))
    assert "view_flowrun" in viewer_perms and not [p for p in viewer_perms if not p.startswith("view_")]
    assert groups["admin"].permissions.filter(codename="delete_deployment").exists()


def test_a_viewer_gets_403_on_every_change_in_the_api(
    as_role: Any, deployment: Deployment, run: FlowRun, pool: WorkPool
) -> None:
    viewer = as_role("viewer")
    operations = unsafe_operations(viewer)
    assert len(operations) > 15, operations
    ids = {
        "id": str(run.pk),
        "deployment_pk": str(deployment.pk),
        "pool_name": pool.name,
        "name": pool.name,
        "flow_run_pk": str(run.pk),
        "slug": "x",
        "flow_name": deployment.flow.name,
        "deployment_name": deployment.name,
    }
    before = snapshot()
    answers = {}
    for method, path in operations:
        url = fill(path, ids)
        if "{" in url:
            pytest.fail(f"no value for a parameter of {path}")
        response = getattr(viewer, method)(url, data=json.dumps({}), content_type="application/json")
        answers[f"{method.upper()} {path}"] = (response.status_code, response.json().get("detail", ""))
    refused = {op: a for op, a in answers.items() if a[0] == 403 and "Your role (viewer)" in a[1]}
    assert refused == answers, {op: a for op, a in answers.items() if op not in refused}
    assert snapshot() == before
    assert viewer.get("/api/flow-runs/").status_code == 200  # reading stays open


def test_an_operator_triggers_cancels_and_pauses_but_changes_nothing_else(as_role: Any, deployment: Deployment) -> None:
    operator = as_role("operator")
    made = operator.post(f"/api/deployments/{deployment.pk}/runs/", data={}, content_type="application/json")
    assert made.status_code == 201
    run_id = made.json()["id"]
    assert operator.post(f"/api/flow-runs/{run_id}/cancel/").status_code == 200
    assert operator.post(f"/api/deployments/{deployment.pk}/pause/").json()["paused"] is True
    edit = operator.patch(f"/api/deployments/{deployment.pk}/", data={"tags": ["x"]}, content_type="application/json")
    assert edit.status_code == 403 and edit.json()["detail"] == (
        "Your role (operator) does not allow you to create, edit and delete."
    )
    assert operator.delete(f"/api/deployments/{deployment.pk}/").status_code == 403
    assert Deployment.objects.get().tags == ["tutorial", "test"]


def test_the_dashboard_hides_and_refuses_controls_a_role_lacks(
    as_role: Any, deployment: Deployment, run: FlowRun
) -> None:
    viewer, operator = as_role("viewer"), as_role("operator")
    page = viewer.get(reverse("deployments:detail", args=[deployment.pk])).content.decode()
    assert "Quick Run" not in page and "Custom Run" not in page and 'role="switch"' not in page
    assert "Cancel run" not in viewer.get(run.get_absolute_url()).content.decode()
    assert "Pause pool" not in viewer.get(reverse("workpools:list")).content.decode()
    refused = viewer.post(reverse("deployments:quick_run", args=[deployment.pk]), {"idempotency_key": "k1"})
    assert (
        refused.status_code == 403
        and "Your role (viewer) does not allow you to trigger runs." in refused.content.decode()
    )
    assert viewer.post(reverse("runs:cancel", args=[run.pk])).status_code == 403
    assert viewer.get(reverse("deployments:custom_run", args=[deployment.pk])).status_code == 403
    assert FlowRun.objects.get().state_type == "SCHEDULED"

    page = operator.get(reverse("deployments:detail", args=[deployment.pk])).content.decode()
    assert "Quick Run" in page and 'role="switch"' in page
    assert "Cancel run" in operator.get(run.get_absolute_url()).content.decode()
    assert operator.post(reverse("runs:cancel", args=[run.pk])).status_code == 302
    assert FlowRun.objects.get().state_type == "CANCELLED"


def test_the_admin_offers_each_role_its_actions(as_role: Any, deployment: Deployment) -> None:
    viewer, operator = as_role("viewer"), as_role("operator")
    url = reverse("admin:deployments_deployment_changelist")
    listing = viewer.get(url)
    assert listing.status_code == 200 and 'value="quick_run"' not in listing.content.decode()
    viewer.post(url, {"action": "quick_run", "_selected_action": [str(deployment.pk)]})
    assert not FlowRun.objects.exists()
    change = viewer.post(reverse("admin:deployments_deployment_change", args=[deployment.pk]), {"name": "renamed"})
    assert change.status_code == 403

    page = operator.get(url).content.decode()
    assert 'value="quick_run"' in page and 'value="pause"' in page and 'value="backfill"' not in page
    operator.post(url, {"action": "quick_run", "_selected_action": [str(deployment.pk)]})
    assert FlowRun.objects.count() == 1


def test_role_add_and_ls(django_user_model: Any) -> None:
    django_user_model.objects.create_user("carol")
    out = StringIO()
    call_command("role", "add", "carol", "operator", stdout=out)
    assert "carol is now operator" in out.getvalue()
    call_command("role", "add", "carol", "viewer", stdout=out)
    carol = django_user_model.objects.get(username="carol")
    assert [g.name for g in carol.groups.all()] == ["viewer"] and carol.is_staff
    out = StringIO()
    call_command("role", "ls", stdout=out)
    assert re.search(r"carol\s+.*viewer", out.getvalue())
    with pytest.raises(CommandError, match=r"^Unknown role 'boss' \(use viewer, operator, admin\)\.$"):
        call_command("role", "add", "carol", "boss")
    with pytest.raises(CommandError, match=r"^No user named 'dave'\.$"):
        call_command("role", "add", "dave", "viewer")
