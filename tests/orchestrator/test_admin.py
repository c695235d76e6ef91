"""The admin is wired to the services: lists render, actions go through them, state is read-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from deployments.models import Deployment
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import set_state
from workpools.models import WorkPool, WorkQueue

pytestmark = pytest.mark.django_db

OUR_MODELS = [m for m in apps.get_models() if m._meta.app_label in {"runs", "workpools", "deployments"}]


@pytest.mark.parametrize("model", OUR_MODELS, ids=[m.__name__ for m in OUR_MODELS])
def test_every_model_has_an_admin_list_that_renders(admin_client: Any, run: FlowRun, model: Any) -> None:
    assert admin.site.is_registered(model)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    response = admin_client.get(url)
    assert response.status_code == 200


def test_a_run_page_shows_its_history_and_ignores_a_posted_state(admin_client: Any, run: FlowRun) -> None:
    set_state(run, StateType.PENDING, message="claimed")
    url = reverse("admin:runs_flowrun_change", args=[run.pk])
    page = admin_client.get(url).content.decode()
    assert "State history" in page and "claimed" in page

    management = {f"{prefix}-{k}": "0" for prefix in ("states", "task_runs") for k in ("TOTAL_FORMS", "INITIAL_FORMS")}
    response = admin_client.post(url, {"name": "renamed", "tags": '["x"]', "state_type": "COMPLETED", **management})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.name == "renamed"
    assert run.state_type == StateType.PENDING  # the form cannot write state


def test_runs_cannot_be_added_by_hand(admin_client: Any) -> None:
    assert admin_client.get(reverse("admin:runs_flowrun_add")).status_code == 403


def test_cancel_action_cancels_what_it_can_and_names_what_it_cannot(admin_client: Any, make_run: Any) -> None:
    scheduled = make_run()
    finished = make_run()
    set_state(finished, StateType.CANCELLED)
    response = admin_client.post(
        reverse("admin:runs_flowrun_changelist"),
        {"action": "cancel", "_selected_action": [scheduled.pk, finished.pk]},
        follow=True,
    )
    text = response.content.decode()
    assert "Cancelled 1 flow run." in text
    # The admin capitalises the first letter of each message.
    assert f"{finished.name.capitalize()}: A flow run cannot move from CANCELLED to CANCELLING" in text
    scheduled.refresh_from_db()
    assert scheduled.state_type == StateType.CANCELLED
    assert scheduled.states.last().message == "Cancelled by admin:alice"


def test_pause_and_resume_pools_queues_and_deployments(
    admin_client: Any, pool: WorkPool, deployment: Deployment
) -> None:
    queue = pool.queues.get()
    for model, obj in (
        ("workpools_workpool", pool),
        ("workpools_workqueue", queue),
        ("deployments_deployment", deployment),
    ):
        url = reverse(f"admin:{model}_changelist")
        admin_client.post(url, {"action": "pause", "_selected_action": [obj.pk]})
        obj.refresh_from_db()
        assert obj.paused, model
        admin_client.post(url, {"action": "resume", "_selected_action": [obj.pk]})
        obj.refresh_from_db()
        assert not obj.paused, model


def test_quick_run_action_creates_a_run_with_default_parameters(admin_client: Any, deployment: Deployment) -> None:
    admin_client.post(
        reverse("admin:deployments_deployment_changelist"), {"action": "quick_run", "_selected_action": [deployment.pk]}
    )
    run = FlowRun.objects.get(deployment=deployment)
    assert run.parameters == {"name": "Leo"}
    assert run.created_by == "admin:alice"


def test_adding_a_pool_in_the_admin_gives_it_a_default_queue(admin_client: Any) -> None:
    response = admin_client.post(
        reverse("admin:workpools_workpool_add"),
        {
            "name": "from-admin",
            "type": "process",
            "description": "",
            "concurrency_limit": "",
            "base_job_template": "{}",
            "job_variables": "{}",
            "queues-TOTAL_FORMS": "0",
            "queues-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    pool = WorkPool.objects.get(name="from-admin")
    assert list(WorkQueue.objects.filter(pool=pool).values_list("name", flat=True)) == ["default"]


def test_the_home_page_needs_a_login(client: Any, admin_client: Any) -> None:
    from django.test import Client

    assert Client().get("/").status_code == 302
    assert admin_client.get("/").status_code == 200
