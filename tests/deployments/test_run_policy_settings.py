"""Setting overlap and lateness policies: the API, a spec file, a schedule; bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from deployments.models import Deployment, DeploymentSchedule
from deployments.services import save_deployment_schedule
from orchestrator.core.errors import ValidationError
from tests.conftest import Api

POLICY_SPEC = """\
deployments:
  - name: nightly
    entrypoint: flows/hello.py:leonardo_dicapriflow
    work_pool: {name: my-process-pool}
    overlap_policy: skip
    max_lateness_seconds: 900
    schedules:
      - interval: 3600
        slug: hourly
        overlap_policy: cancel_running
        max_lateness_seconds: 60
"""


def test_the_api_sets_a_deployments_policies_and_refuses_unknown_ones(writer: Api, deployment: Deployment) -> None:
    url = f"/api/deployments/{deployment.pk}/"
    body = writer.patch(url, json={"overlap_policy": "buffer_one", "max_lateness_seconds": 300}).json()
    assert (body["overlap_policy"], body["max_lateness_seconds"]) == ("buffer_one", 300)
    bad = writer.patch(url, json={"overlap_policy": "sometimes", "max_lateness_seconds": -1})
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"overlap_policy", "max_lateness_seconds"}
    deployment.refresh_from_db()
    assert (deployment.overlap_policy, deployment.max_lateness_seconds) == ("buffer_one", 300)


def test_a_spec_file_sets_deployment_and_schedule_policies(project: Path) -> None:
    (project / "deployments.yaml").write_text(POLICY_SPEC)
    call_command("deploy", "--all")
    dep = Deployment.objects.get(name="nightly")
    assert (dep.overlap_policy, dep.max_lateness_seconds) == ("skip", 900)
    schedule = dep.schedules.get()
    assert (schedule.overlap_policy, schedule.max_lateness_seconds) == ("cancel_running", 60)

    # Changing only a policy keeps the runs the schedule made already.
    made = set(dep.runs.values_list("pk", flat=True))
    (project / "deployments.yaml").write_text(
        POLICY_SPEC.replace("max_lateness_seconds: 60", "max_lateness_seconds: 120")
    )
    call_command("deploy", "--all")
    assert DeploymentSchedule.objects.get(pk=schedule.pk).max_lateness_seconds == 120
    assert made <= set(dep.runs.values_list("pk", flat=True))


def test_a_spec_file_with_an_unknown_policy_is_refused_in_one_line(project: Path) -> None:
    (project / "deployments.yaml").write_text(POLICY_SPEC.replace("overlap_policy: skip", "overlap_policy: maybe"))
    with pytest.raises(CommandError) as error:
        call_command("deploy", "--all")
    assert "Unknown overlap policy 'maybe'" in str(error.value) and "\n" not in str(error.value)
    assert not Deployment.objects.exists()


@pytest.mark.django_db
def test_a_schedule_with_an_unknown_policy_is_refused(deployment: Deployment) -> None:
    schedule = DeploymentSchedule(
        deployment=deployment, slug="x", kind="interval", interval_seconds=60, overlap_policy="never"
    )
    with pytest.raises(ValidationError) as error:
        save_deployment_schedule(schedule)
    assert "overlap_policy" in error.value.errors
