from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from workpools.health import NOT_READY, OFFLINE, ONLINE, PAUSED, READY, pool_health, queue_health, worker_health
from workpools.models import Worker, WorkPool

pytestmark = pytest.mark.django_db


def test_a_new_pool_is_not_ready_until_a_worker_heartbeats(pool: WorkPool, settings: Any) -> None:
    settings.WORKER_HEARTBEAT_SECONDS, settings.WORKER_HEARTBEAT_MISSES = 10, 3
    now = timezone.now()
    assert pool_health(pool, now=now).status == NOT_READY
    worker = Worker.objects.create(pool=pool, name="w1", last_heartbeat_at=now - timedelta(seconds=29))
    assert worker_health(worker, now=now).status == ONLINE
    assert pool_health(pool, now=now) == pool_health(pool, now=now, online=1)
    assert pool_health(pool, now=now).status == READY

    later = now + timedelta(seconds=2)  # 31 s since the heartbeat: 3 intervals missed
    assert worker_health(worker, now=later).status == OFFLINE
    assert pool_health(pool, now=later).reason == "no online worker"


def test_a_queue_is_ready_only_while_polled_recently(pool: WorkPool, settings: Any) -> None:
    settings.QUEUE_READY_SECONDS = 60
    queue = pool.queues.get()
    now = timezone.now()
    assert queue_health(queue, now=now).reason == "no worker has polled it yet"
    queue.last_polled_at = now - timedelta(seconds=5)
    assert queue_health(queue, now=now).status == READY
    assert queue_health(queue, now=now + timedelta(seconds=60)).status == NOT_READY
    assert queue_health(queue, now=now + timedelta(seconds=60)).reason == "no worker has polled in the last 60 s"


def test_pausing_shows_paused_whatever_the_polling(pool: WorkPool) -> None:
    queue = pool.queues.get()
    queue.last_polled_at = timezone.now()
    queue.paused = True
    assert queue_health(queue).status == PAUSED
    queue.paused = False
    pool.paused = True
    assert queue_health(queue).reason == "its work pool is paused"
    assert pool_health(pool).status == PAUSED


def test_a_stopped_worker_is_offline_at_once(pool: WorkPool) -> None:
    now = timezone.now()
    worker = Worker.objects.create(pool=pool, name="w1", last_heartbeat_at=now, stopped_at=now)
    assert worker_health(worker, now=now).status == OFFLINE
