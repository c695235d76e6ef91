from __future__ import annotations

import threading

import pytest
from django.db import connection

from deployments.models import Deployment
from deployments.services import create_flow_run
from runs.models import FlowRun


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_double_click_racing_on_two_connections_makes_one_run(deployment: Deployment) -> None:
    barrier = threading.Barrier(4)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def click() -> None:
        try:
            barrier.wait(timeout=10)
            run, created = create_flow_run(deployment, idempotency_key="quick-run-button-7")
            results.append((str(run.pk), created))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert FlowRun.objects.filter(deployment=deployment).count() == 1
