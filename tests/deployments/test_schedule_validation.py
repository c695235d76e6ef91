"""A bad schedule is a clear error at its field, from the one validator every surface calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.urls import reverse

from deployments.models import DeploymentSchedule
from deployments.schedule_times import ScheduleSpec, validate_schedule
from orchestrator.core.errors import ValidationError
from runs.models import FlowRun


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        (ScheduleSpec(kind="cron", cron="61 * * * *"), "cron", "not a valid cron expression"),
        (ScheduleSpec(kind="cron", cron="0 9 * *"), "cron", "has 4 fields; use five"),
        (ScheduleSpec(kind="cron", cron="0 0 9 * * *"), "cron", "has 6 fields; use five"),
        (ScheduleSpec(kind="cron", cron=""), "cron", "needs an expression"),
        (ScheduleSpec(kind="cron", cron="0 0 30 2 *"), "cron", "never fires"),
        (ScheduleSpec(kind="interval", interval_seconds=0), "interval_seconds", "at least 1"),
        (ScheduleSpec(kind="interval"), "interval_seconds", "whole number of seconds"),
        (ScheduleSpec(kind="interval", interval_seconds=60, anchor_at=datetime(2026, 1, 1)), "anchor_at", "timezone"),
        (ScheduleSpec(kind="rrule", rrule="FREQ=SOMETIMES"), "rrule", "Not an RFC 5545 recurrence rule"),
        (ScheduleSpec(kind="rrule", rrule="DTSTART:20200101T000000\nRRULE:FREQ=DAILY;COUNT=2"), "rrule", "never fires"),
        (ScheduleSpec(kind="cron", cron="0 9 * * *", timezone="Europe/Atlantis"), "timezone", "not an IANA timezone"),
        (ScheduleSpec(kind="interval", interval_seconds=60, cron="* * * * *"), "cron", "Only cron schedules"),
        (ScheduleSpec(kind="weekly"), "kind", "Unknown schedule kind"),
    ],
)
def test_a_bad_definition_is_refused_with_a_message_at_its_field(spec: ScheduleSpec, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as error:
        validate_schedule(spec)
    assert words in " ".join(error.value.errors[field])
    assert words in str(error.value) or field in str(error.value)


@pytest.mark.parametrize(
    "spec",
    [
        ScheduleSpec(kind="cron", cron="*/15 9-17 * * mon-fri", timezone="America/New_York"),
        ScheduleSpec(kind="cron", cron="@daily"),
        ScheduleSpec(kind="interval", interval_seconds=2),
        ScheduleSpec(kind="rrule", rrule="RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=9", timezone="Europe/Berlin"),
    ],
)
def test_good_definitions_pass(spec: ScheduleSpec) -> None:
    validate_schedule(spec)


def schedule_form(deployment: Any, **overrides: Any) -> dict[str, Any]:
    data = {
        "deployment": deployment.pk,
        "slug": "nightly",
        "kind": "cron",
        "cron": "0 3 * * *",
        "interval_seconds": "",
        "anchor_at_0": "",
        "anchor_at_1": "",
        "rrule": "",
        "timezone": "Europe/Berlin",
        "active": "on",
        "parameters": "{}",
        "catchup": "skip",
        "catchup_max_runs": "10",
    }
    return {**data, **overrides}


@pytest.mark.django_db
def test_the_admin_form_shows_a_bad_cron_expression_at_its_field(admin_client: Any, deployment: Any) -> None:
    response = admin_client.post(
        reverse("admin:deployments_deploymentschedule_add"), schedule_form(deployment, cron="0 25 * * *")
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "not a valid cron expression" in errors["cron"][0]
    assert not DeploymentSchedule.objects.exists()


@pytest.mark.django_db
def test_the_admin_form_refuses_parameters_the_flow_does_not_take(admin_client: Any, make_deployment: Any) -> None:
    strict = make_deployment("strict", parameter_schema={"properties": {"name": {"type": "string"}}})
    response = admin_client.post(
        reverse("admin:deployments_deploymentschedule_add"), schedule_form(strict, parameters='{"colour": "red"}')
    )
    assert "The flow takes no parameter 'colour'" in response.context["adminform"].form.errors["parameters"][0]


@pytest.mark.django_db
def test_a_schedule_added_in_the_admin_is_shown_in_words_with_its_next_runs(
    admin_client: Any, deployment: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(reverse("admin:deployments_deploymentschedule_add"), schedule_form(deployment))
    assert response.status_code == 302
    schedule = DeploymentSchedule.objects.get()
    assert len(callbacks) == 1  # scheduled right after commit

    page = admin_client.get(reverse("admin:deployments_deploymentschedule_change", args=[schedule.pk])).content.decode()
    assert "At 03:00 (Europe/Berlin)" in page
    assert page.count(" 03:00:00 CE") == 5
    listing = admin_client.get(reverse("admin:deployments_deploymentschedule_changelist")).content.decode()
    assert "At 03:00 (Europe/Berlin)" in listing


@pytest.mark.django_db
def test_editing_a_schedule_inline_on_its_deployment_replaces_its_future_runs(
    admin_client: Any, deployment: Any
) -> None:
    from deployments.services import schedule_deployments, sync_schedules

    sync_schedules(deployment, [{"slug": "nightly", "kind": "cron", "cron": "0 3 * * *", "timezone": "Europe/Berlin"}])
    schedule_deployments()
    assert FlowRun.objects.filter(schedule_slug="nightly").count() == 3
    schedule = DeploymentSchedule.objects.get()
    inline = {
        "schedules-TOTAL_FORMS": "1",
        "schedules-INITIAL_FORMS": "1",
        **{f"schedules-0-{k}": v for k, v in schedule_form(deployment, cron="0 4 * * *").items() if k != "deployment"},
        "schedules-0-id": str(schedule.pk),
        "schedules-0-deployment": str(deployment.pk),
    }
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
        "overlap_policy": "allow",
    }
    response = admin_client.post(
        reverse("admin:deployments_deployment_change", args=[deployment.pk]), {**page, **inline}
    )

    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert DeploymentSchedule.objects.get().cron == "0 4 * * *"
    assert not FlowRun.objects.filter(schedule_slug="nightly").exists()
