"""One naming rule for pools, queues and deployments, on every surface: the API, the CLI, the
admin and deploy refuse a name that could not be typed in a URL or a command line, and the
API's 404s are JSON even when no route matches."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deployments.models import Deployment
from tests.conftest import Api
from workpools.models import WorkPool, WorkQueue

BAD = "bad name/with slash"


def test_the_api_refuses_a_pool_or_queue_name_with_a_slash_or_space(writer: Api, pool: WorkPool) -> None:
    response = writer.post("/api/work-pools/", json={"name": BAD})
    assert response.status_code == 400
    message = response.json()["errors"]["name"][0]
    assert message.startswith("Invalid work pool name 'bad name/with slash': use 1 to 100 letters, digits")
    queue = writer.post("/api/work-pools/my-process-pool/queues/", json={"name": "two words"})
    assert queue.status_code == 400 and "Invalid work queue name 'two words'" in queue.json()["errors"]["name"][0]
    assert list(WorkPool.objects.values_list("name", flat=True)) == ["my-process-pool"]
    assert list(WorkQueue.objects.values_list("name", flat=True)) == ["default"]
    ok = writer.post("/api/work-pools/", json={"name": "Team_2.pool-a"})
    assert ok.status_code == 201


def test_an_api_404_is_json_even_when_no_route_matches(writer: Api) -> None:
    for path in ("/api/work-pools/bad name/with slash/", "/api/no-such-thing/", "/api/work-pools/x/y/z/w/"):
        response = writer.get(path)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"].startswith("application/json"), path
        assert response.json()["detail"]


@pytest.mark.django_db
def test_the_cli_refuses_bad_pool_and_queue_names_in_one_line(make_pool: Any) -> None:
    make_pool("default")
    for args in (("workpool", "create", "my pool"), ("workqueue", "create", "a/b")):
        with pytest.raises(CommandError) as error:
            call_command(*args, stdout=io.StringIO())
        assert "\n" not in str(error.value) and str(error.value).startswith("Invalid work")
    assert WorkPool.objects.count() == 1 and WorkQueue.objects.count() == 1


def test_the_admin_refuses_bad_names_at_the_field(admin_client: Any, pool: WorkPool, deployment: Deployment) -> None:
    page = admin_client.post("/admin/workpools/workpool/add/", {"name": "a b", "type": "process"})
    assert page.status_code == 200 and "Invalid work pool name" in page.content.decode()
    page = admin_client.post(
        "/admin/workpools/workqueue/add/", {"name": "x/y", "pool": pool.pk, "priority": 5, "tags": "[]"}
    )
    assert page.status_code == 200 and "Invalid work queue name" in page.content.decode()
    assert WorkPool.objects.count() == 1 and WorkQueue.objects.count() == 1
