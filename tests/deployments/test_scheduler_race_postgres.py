"""Several scheduler ticks at once, and an edit racing a tick, on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from deployments.models import Deployment
from deployments.services import schedule_deployments, set_deployment_paused, sync_schedules
from runs.models import FlowRun, FlowRunState

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(*actions: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(len(actions))
    results: list[Any] = []
    errors: list[BaseException] = []

    def go(action: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(action())
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=go, args=(a,)) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def test_four_ticks_at_once_make_each_run_once(make_deployment: Any) -> None:
    deployments = [make_deployment(f"d{i}") for i in range(40)]
    for d in deployments:
        sync_schedules(d, [{"slug": "often", "kind": "interval", "interval_seconds": 60}])

    # The clock stands still (in every thread), so a minute boundary passing mid-race cannot
    # move the window and change the expected counts.
    with time_machine.travel(timezone.now(), tick=False):
        # Small batches so the ticks interleave: each skips what another holds, none waits.
        results = race(*[lambda: schedule_deployments(batch_size=5)] * 4)

        assert sum(results) == 40 * 60
        assert FlowRun.objects.count() == 40 * 60
        assert FlowRunState.objects.count() == 40 * 60
        dupes = FlowRun.objects.values("deployment", "expected_start_at").annotate(n=Count("id")).filter(n__gt=1)
        assert not dupes.exists()
        # Whatever the interleaving, a tick afterwards finds nothing missing.
        assert schedule_deployments() == 0


def test_a_pause_racing_ticks_leaves_no_future_runs(make_deployment: Any) -> None:
    deployment: Deployment = make_deployment("racer")
    sync_schedules(deployment, [{"slug": "often", "kind": "interval", "interval_seconds": 60}])

    for _ in range(5):
        set_deployment_paused(deployment, False)
        race(
            lambda: schedule_deployments(deployment_ids=[deployment.pk]),
            lambda: set_deployment_paused(deployment, True),
            lambda: schedule_deployments(deployment_ids=[deployment.pk]),
        )
        assert not FlowRun.objects.filter(deployment=deployment, state_type="SCHEDULED").exists()
