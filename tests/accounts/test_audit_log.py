"""The audit log: a row for each change, whichever surface made it (API with a key or a session,
dashboard, admin, command), who and what with before/after; read-only in the admin and the API;
kept by the retention setting."""

from __future__ import annotations

import getpass
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.audit import delete_old_entries, record
from accounts.models import AuditEntry
from deployments.models import Deployment
from runs.models import FlowRun
from tests.conftest import Api
from tests.deployments.test_dashboard_quick_run import button_keys

pytestmark = pytest.mark.django_db


def last() -> AuditEntry:
    return AuditEntry.objects.order_by("-id").first()  # type: ignore[return-value]


def test_an_api_key_change_is_recorded_with_the_key(writer: Api, deployment: Deployment) -> None:
    assert writer.post(f"/api/deployments/{deployment.pk}/pause/").status_code == 200
    entry = last()
    assert (entry.actor, entry.source, entry.action) == ("key:write-key-0", "api", "deployment.pause")
    assert (entry.object_type, entry.object_id) == ("deployments.Deployment", str(deployment.pk))
    assert (entry.before, entry.after) == ({"paused": False}, {"paused": True})


def test_an_api_edit_by_a_signed_in_person_has_before_and_after(admin_client: Any, deployment: Deployment) -> None:
    response = admin_client.patch(
        f"/api/deployments/{deployment.pk}/",
        data={"tags": ["prod"], "description": ""},
        content_type="application/json",
    )
    assert response.status_code == 200
    entry = last()
    assert (entry.actor, entry.source, entry.action) == ("user:alice", "api", "deployment.update")
    assert (entry.before, entry.after) == ({"tags": ["tutorial", "test"]}, {"tags": ["prod"]})


def test_dashboard_changes_are_recorded(admin_client: Any, deployment: Deployment) -> None:
    [key] = button_keys(admin_client.get(reverse("deployments:list")).content.decode())
    admin_client.post(reverse("deployments:quick_run", args=[deployment.pk]), {"idempotency_key": key})
    run = FlowRun.objects.get()
    entry = last()
    assert (entry.actor, entry.source, entry.action, entry.object_id) == (
        "user:alice",
        "dashboard",
        "flow_run.create",
        str(run.pk),
    )
    admin_client.post(reverse("runs:cancel", args=[run.pk]))
    entry = last()
    assert (entry.action, entry.before, entry.after) == (
        "flow_run.cancel",
        {"state": "SCHEDULED"},
        {"state": "CANCELLED"},
    )
    assert entry.source == "dashboard"


def test_admin_actions_and_forms_are_recorded(admin_client: Any, deployment: Deployment) -> None:
    url = reverse("admin:deployments_deployment_changelist")
    admin_client.post(url, {"action": "pause", "_selected_action": [str(deployment.pk)]})
    entry = last()
    assert (entry.actor, entry.source, entry.action) == ("user:alice", "admin", "deployment.pause")
    page = {
        "flow": deployment.flow_id,
        "name": deployment.name,
        "entrypoint": deployment.entrypoint,
        "work_pool": deployment.work_pool_id,
        "parameters": '{"name": "Leo"}',
        "parameter_schema": "{}",
        "enforce_parameter_schema": "on",
        "tags": '["tutorial", "test"]',
        "job_variables": "{}",
        "pull_steps": "[]",
        "overlap_policy": "skip",
        "description": "Nightly",
        "schedules-TOTAL_FORMS": "0",
        "schedules-INITIAL_FORMS": "0",
    }
    response = admin_client.post(reverse("admin:deployments_deployment_change", args=[deployment.pk]), page)
    assert response.status_code == 302, response.content.decode()[:2000]
    entry = last()
    assert (entry.action, entry.source) == ("deployment.update", "admin")
    assert entry.before == {"description": "", "overlap_policy": "allow"}
    assert entry.after == {"description": "Nightly", "overlap_policy": "skip"}


def test_a_command_is_recorded_as_the_login_that_ran_it(deployment: Deployment) -> None:
    call_command("deployment", "pause", deployment.full_name, stdout=StringIO())
    entry = last()
    assert (entry.actor, entry.source, entry.action) == (f"cli:{getpass.getuser()}", "cli", "deployment.pause")


def test_changes_nobody_asked_for_are_the_systems(deployment: Deployment) -> None:
    from workpools.services import set_work_pool_paused

    set_work_pool_paused(deployment.work_pool, True)
    assert (last().actor, last().source, last().action) == ("system", "", "work_pool.pause")


def test_the_log_is_read_only_in_the_admin_and_readable_in_the_api(
    admin_client: Any, writer: Api, deployment: Deployment
) -> None:
    writer.post(f"/api/deployments/{deployment.pk}/pause/")
    entry = last()
    listing = admin_client.get(reverse("admin:accounts_auditentry_changelist")).content.decode()
    assert "deployment.pause" in listing and "key:write-key-0" in listing
    detail = admin_client.get(reverse("admin:accounts_auditentry_change", args=[entry.pk])).content.decode()
    assert 'name="_save"' not in detail
    assert admin_client.post(reverse("admin:accounts_auditentry_delete", args=[entry.pk])).status_code == 403
    found = writer.get("/api/audit-log/", params={"object_id": str(deployment.pk)}).json()["results"]
    assert [(e["action"], e["actor"], e["after"]) for e in found] == [
        ("deployment.pause", "key:write-key-0", {"paused": True})
    ]
    assert writer.delete(f"/api/audit-log/{entry.pk}/").status_code == 405


def test_retention_deletes_old_entries(settings: Any) -> None:
    old, new = record("test.old"), record("test.new")
    AuditEntry.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=40))
    settings.RUN_RETENTION_DAYS = 0
    assert delete_old_entries() == 0
    settings.RUN_RETENTION_DAYS = 30
    assert delete_old_entries() == 1
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [new.pk]
