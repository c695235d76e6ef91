"""The work pools page: pools, queues with health in words, workers, pause and resume."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from runs.services import set_state
from tests.html import element
from workpools.models import Worker, WorkPool, WorkQueue

pytestmark = pytest.mark.django_db


def queue_row(html: str, name: str) -> str:
    return element(html, "tr", f'data-queue="{name}"')


def test_a_pool_shows_its_type_status_and_concurrency(admin_client: Any, make_pool: Any) -> None:
    make_pool("etl", concurrency_limit=5)
    html = admin_client.get(reverse("workpools:list")).content.decode()
    assert "<h2>etl</h2>" in html
    assert "Process" in html
    assert "0 running of 5" in html
    assert "no online worker" in html


def test_a_queue_nobody_polled_lately_says_so_in_words(admin_client: Any, pool: WorkPool, settings: Any) -> None:
    settings.QUEUE_READY_SECONDS = 60
    queue = pool.queues.get()
    html = admin_client.get(reverse("workpools:list")).content.decode()
    assert "no worker has polled it yet" in queue_row(html, "default")

    WorkQueue.objects.filter(pk=queue.pk).update(last_polled_at=timezone.now() - timedelta(minutes=5))
    row = queue_row(admin_client.get(reverse("workpools:list")).content.decode(), "default")
    assert 'data-status="NOT_READY"' in row
    assert "no worker has polled in the last 60 s" in row


def test_once_a_worker_polls_the_queue_and_pool_are_ready(admin_client: Any, pool: WorkPool) -> None:
    now = timezone.now()
    pool.queues.update(last_polled_at=now)
    Worker.objects.create(pool=pool, name="laptop-worker", last_heartbeat_at=now, hostname="laptop")
    html = admin_client.get(reverse("workpools:pools_fragment")).content.decode()
    assert 'data-status="READY"' in queue_row(html, "default")
    worker = re.search(r'<tr id="worker-[^"]+" data-worker="laptop-worker">.*?</tr>', html, re.S)
    assert worker and 'data-status="ONLINE"' in worker.group(0) and "last heartbeat 0 s ago" in worker.group(0)


def test_a_worker_that_stopped_heartbeating_is_offline(admin_client: Any, pool: WorkPool) -> None:
    Worker.objects.create(pool=pool, name="gone", last_heartbeat_at=timezone.now() - timedelta(minutes=10))
    html = admin_client.get(reverse("workpools:list")).content.decode()
    assert re.search(r'data-worker="gone">.*?data-status="OFFLINE".*?last heartbeat 10 min ago', html, re.S)


def test_queues_show_priority_limit_and_runs_holding_a_slot(admin_client: Any, pool: WorkPool, make_run: Any) -> None:
    WorkQueue.objects.create(pool=pool, name="critical", priority=7, concurrency_limit=3)
    run = make_run()
    set_state(run, "PENDING")
    html = admin_client.get(reverse("workpools:list")).content.decode()
    critical = queue_row(html, "critical")
    assert '<td class="num">7</td>' in critical and "0 / 3" in critical
    assert "1 <span" in queue_row(html, "default")


def test_the_pools_panel_polls_itself(admin_client: Any, pool: WorkPool) -> None:
    html = admin_client.get(reverse("workpools:list")).content.decode()
    fragment_url = reverse("workpools:pools_fragment")
    assert f'id="pools" hx-get="{fragment_url}" hx-trigger="every 2s" hx-swap="outerHTML"' in html
    fragment = admin_client.get(fragment_url).content.decode()
    assert fragment.lstrip().startswith('<div id="pools"') and "<html" not in fragment


def test_pausing_a_queue_with_htmx_returns_the_panel_showing_it_paused(admin_client: Any, pool: WorkPool) -> None:
    queue = pool.queues.get()
    response = admin_client.post(reverse("workpools:queue_pause", args=[queue.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    row = queue_row(response.content.decode(), "default")
    assert 'data-status="PAUSED"' in row and "the queue is paused" in row and ">Resume</button>" in row
    queue.refresh_from_db()
    assert queue.paused

    response = admin_client.post(reverse("workpools:queue_resume", args=[queue.pk]), HTTP_HX_REQUEST="true")
    assert ">Pause</button>" in queue_row(response.content.decode(), "default")
    queue.refresh_from_db()
    assert not queue.paused


def test_pausing_a_pool_without_javascript_goes_back_to_the_page(admin_client: Any, pool: WorkPool) -> None:
    response = admin_client.post(reverse("workpools:pool_pause", args=[pool.pk]), follow=True)
    html = response.content.decode()
    assert response.redirect_chain == [(reverse("workpools:list"), 302)]
    assert "Work pool my-process-pool paused." in html
    assert "its work pool is paused" in queue_row(html, "default")
    assert "Resume pool" in html


def test_pause_and_resume_are_posts_only(admin_client: Any, pool: WorkPool) -> None:
    queue = pool.queues.get()
    assert admin_client.get(reverse("workpools:queue_pause", args=[queue.pk])).status_code == 405
    assert admin_client.post(reverse("workpools:queue_pause", args=[pool.pk])).status_code == 404


def test_the_pools_page_costs_the_same_queries_for_many_pools(
    admin_client: Any, make_pool: Any, django_assert_max_num_queries: Any
) -> None:
    now = timezone.now()
    for i in range(8):
        pool = make_pool(f"pool-{i}")
        WorkQueue.objects.create(pool=pool, name="extra", priority=2)
        Worker.objects.create(pool=pool, name=f"w-{i}", last_heartbeat_at=now)
    with django_assert_max_num_queries(8):
        assert admin_client.get(reverse("workpools:list")).status_code == 200
