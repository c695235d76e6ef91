"""The deployments page: where each deployment runs, its schedule in words and next run,
tags, and the paused toggle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments.models import Deployment, DeploymentSchedule
from runs.services import request_cancellation
from tests.html import element

pytestmark = pytest.mark.django_db


def row_of(html: str, deployment: Deployment) -> str:
    return element(html, "tr", f'id="deployment-{deployment.pk}"')


def test_each_deployment_shows_flow_pool_queue_schedule_tags(admin_client: Any, deployment: Deployment) -> None:
    DeploymentSchedule.objects.create(deployment=deployment, slug="daily", kind="cron", cron="0 9 * * *")
    row = row_of(admin_client.get(reverse("deployments:list")).content.decode(), deployment)
    assert "leonardo_dicapriflow /</span> leonardo-deployment" in row
    assert "my-process-pool" in row and "queue by tags" in row
    assert "At 09:00 (UTC)" in row
    assert '<span class="tag">tutorial</span><span class="tag">test</span>' in row


def test_the_next_run_is_the_soonest_scheduled_one(admin_client: Any, deployment: Deployment, make_run: Any) -> None:
    soon = timezone.now() + timedelta(hours=1)
    make_run(scheduled_at=soon + timedelta(hours=3))
    make_run(scheduled_at=soon)
    request_cancellation(make_run(scheduled_at=soon - timedelta(minutes=30)), by="test")
    row = row_of(admin_client.get(reverse("deployments:list")).content.decode(), deployment)
    assert f'<time datetime="{timezone.localtime(soon).isoformat()}"' in row
    assert "late" not in row


def test_a_next_run_already_past_is_marked_late(admin_client: Any, deployment: Deployment, make_run: Any) -> None:
    make_run(scheduled_at=timezone.now() - timedelta(minutes=5))
    row = row_of(admin_client.get(reverse("deployments:list")).content.decode(), deployment)
    assert '<span class="late">late</span>' in row


def test_the_paused_toggle_pauses_and_resumes_in_place(admin_client: Any, deployment: Deployment) -> None:
    response = admin_client.post(reverse("deployments:pause", args=[deployment.pk]), HTTP_HX_REQUEST="true")
    row = response.content.decode()
    assert row.lstrip().startswith(f'<tr id="deployment-{deployment.pk}"')
    assert 'aria-checked="true"' in row and reverse("deployments:resume", args=[deployment.pk]) in row
    deployment.refresh_from_db()
    assert deployment.paused

    response = admin_client.post(
        reverse("deployments:resume", args=[deployment.pk]), {"next": reverse("deployments:list")}
    )
    assert response.status_code == 302 and response["Location"] == reverse("deployments:list")
    deployment.refresh_from_db()
    assert not deployment.paused


def test_a_redirect_after_pausing_never_leaves_the_site(admin_client: Any, deployment: Deployment) -> None:
    response = admin_client.post(reverse("deployments:pause", args=[deployment.pk]), {"next": "https://evil.example/"})
    assert response["Location"] == reverse("deployments:detail", args=[deployment.pk])


def test_the_detail_page_shows_defaults_schedules_and_recent_runs(
    admin_client: Any, deployment: Deployment, make_run: Any
) -> None:
    run = make_run()
    html = admin_client.get(reverse("deployments:detail", args=[deployment.pk])).content.decode()
    assert "flows/hello.py:leonardo_dicapriflow" in html
    assert "&quot;name&quot;: &quot;Leo&quot;" in html
    assert run.name in html and "No schedule" in html


def test_the_list_costs_the_same_queries_for_many_deployments(
    admin_client: Any, make_deployment: Any, make_run: Any, django_assert_max_num_queries: Any
) -> None:
    for i in range(12):
        dep = make_deployment(f"dep-{i}", tags=["a"])
        DeploymentSchedule.objects.create(deployment=dep, slug="every", kind="interval", interval_seconds=600)
        make_run(dep, scheduled_at=timezone.now() + timedelta(hours=i))
    with django_assert_max_num_queries(6):
        assert admin_client.get(reverse("deployments:list")).status_code == 200


def test_an_unknown_deployment_is_a_404(admin_client: Any) -> None:
    assert admin_client.get("/deployments/00000000-0000-0000-0000-000000000000/").status_code == 404
