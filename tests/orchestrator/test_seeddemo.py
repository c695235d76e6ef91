"""`manage.py seeddemo`: a demo data set whose runs look like set_state made them."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from deployments.models import Deployment
from orchestrator.core.states import TERMINAL
from runs.models import FlowRun, FlowRunState, Log
from workpools.models import WorkPool

pytestmark = pytest.mark.django_db


def test_seeddemo_adds_pools_deployments_and_runs_with_matching_histories() -> None:
    out = StringIO()
    call_command("seeddemo", runs=400, detailed=20, stdout=out)

    assert "Added 400 runs" in out.getvalue()
    assert WorkPool.objects.count() == 3 and Deployment.objects.count() == 10
    assert FlowRun.objects.count() == 400
    now = timezone.now()
    for run in FlowRun.objects.annotate(n=Count("states")):
        last = FlowRunState.objects.filter(flow_run=run).order_by("-id").first()
        assert last is not None and (last.type, last.name) == (run.state_type, run.state_name), run
        assert (run.ended_at is not None) == (run.state_type in TERMINAL), run
        if run.expected_start_at > now:
            assert run.state_type == "SCHEDULED"
    assert FlowRun.objects.filter(state_name="Late").count() == 5
    assert Log.objects.exists()


def test_seeding_twice_reuses_the_pools_and_deployments() -> None:
    call_command("seeddemo", runs=50, detailed=0, stdout=StringIO())
    call_command("seeddemo", runs=50, detailed=0, stdout=StringIO())
    assert WorkPool.objects.count() == 3 and Deployment.objects.count() == 10
    assert FlowRun.objects.count() == 100
