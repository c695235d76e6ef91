"""Quick Run: one POST with the button's own idempotency key, default parameters."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from deployments.models import Deployment
from runs.models import FlowRun

pytestmark = pytest.mark.django_db


def button_keys(html: str) -> list[str]:
    return re.findall(r'name="idempotency_key" value="([^"]+)"', html)


def test_quick_run_runs_with_the_default_parameters_and_opens_the_run(
    admin_client: Any, deployment: Deployment
) -> None:
    [key] = button_keys(admin_client.get(reverse("deployments:list")).content.decode())
    response = admin_client.post(reverse("deployments:quick_run", args=[deployment.pk]), {"idempotency_key": key})
    run = FlowRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("runs:detail", args=[run.pk])
    assert run.parameters == {"name": "Leo"}
    assert run.created_by == "ui:alice" and run.idempotency_key == key
    assert run.state_name == "Scheduled"


def test_a_double_click_makes_one_run(admin_client: Any, deployment: Deployment) -> None:
    [key] = button_keys(admin_client.get(reverse("deployments:list")).content.decode())
    url = reverse("deployments:quick_run", args=[deployment.pk])
    first = admin_client.post(url, {"idempotency_key": key})
    second = admin_client.post(url, {"idempotency_key": key})
    assert FlowRun.objects.count() == 1
    assert first["Location"] == second["Location"]


def test_every_rendered_button_has_its_own_key(admin_client: Any, deployment: Deployment) -> None:
    keys = button_keys(admin_client.get(reverse("deployments:list")).content.decode())
    keys += button_keys(admin_client.get(reverse("deployments:list")).content.decode())
    keys += button_keys(admin_client.get(reverse("deployments:detail", args=[deployment.pk])).content.decode())
    assert len(keys) == len(set(keys)) == 3
    url = reverse("deployments:quick_run", args=[deployment.pk])
    for key in keys[:2]:
        admin_client.post(url, {"idempotency_key": key})
    assert FlowRun.objects.count() == 2


def test_quick_run_is_protected_from_cross_site_requests(admin_user: Any, deployment: Deployment) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("deployments:quick_run", args=[deployment.pk]), {"idempotency_key": "ui-12345678"})
    assert response.status_code == 403
    assert not FlowRun.objects.exists()


def test_quick_run_is_a_post(admin_client: Any, deployment: Deployment) -> None:
    assert admin_client.get(reverse("deployments:quick_run", args=[deployment.pk])).status_code == 405
    assert not FlowRun.objects.exists()


def test_a_post_without_a_key_makes_no_run(admin_client: Any, deployment: Deployment) -> None:
    response = admin_client.post(reverse("deployments:quick_run", args=[deployment.pk]), follow=True)
    assert "That Quick Run button is out of date" in response.content.decode()
    assert not FlowRun.objects.exists()


def test_a_deployment_that_needs_parameters_sends_you_to_the_custom_run_form(
    admin_client: Any, make_deployment: Any
) -> None:
    dep = make_deployment(
        "needs-name",
        parameter_schema={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    )
    response = admin_client.post(reverse("deployments:quick_run", args=[dep.pk]), {"idempotency_key": "ui-12345678"})
    assert response["Location"] == reverse("deployments:custom_run", args=[dep.pk])
    page = admin_client.get(response["Location"]).content.decode()
    assert "needs more: Invalid parameter &#x27;name&#x27;: This parameter is required." in page
    assert not FlowRun.objects.exists()
