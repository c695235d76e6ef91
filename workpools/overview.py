"""Pools with their queues, workers and health, gathered for people to read (the dashboard's
home and work pools pages). A fixed handful of queries whatever the number of pools; every
verdict comes from workpools.health."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from runs.models import FlowRun
from workpools.health import ONLINE, Health, pool_health, queue_health, worker_health
from workpools.models import Worker, WorkPool, WorkQueue

# Workers not heard from for this long drop off the page (they stay in the admin).
WORKERS_SHOWN_FOR = timedelta(days=1)


@dataclass
class QueueOverview:
    queue: WorkQueue
    health: Health
    active_runs: int


@dataclass
class WorkerOverview:
    worker: Worker
    health: Health


@dataclass
class PoolOverview:
    pool: WorkPool
    health: Health
    active_runs: int
    queues: list[QueueOverview] = field(default_factory=list)
    workers: list[WorkerOverview] = field(default_factory=list)

    @property
    def online_workers(self) -> int:
        return sum(1 for w in self.workers if w.health.status == ONLINE)

    @property
    def ready_queues(self) -> int:
        return sum(1 for q in self.queues if q.health.ok)


def pool_overview(*, now: datetime | None = None) -> list[PoolOverview]:
    """Every pool, by name, with its queues (by priority) and its recently seen workers
    (online first). Five queries in all."""
    now = now or timezone.now()
    pools = list(WorkPool.objects.order_by("name"))
    queues = WorkQueue.objects.select_related("pool").order_by("priority", "name")
    seen_since = now - WORKERS_SHOWN_FOR
    workers = Worker.objects.filter(Q(last_heartbeat_at__gte=seen_since) | Q(started_at__gte=seen_since)).order_by(
        "name"
    )
    pool_runs = FlowRun.objects.active_counts("work_pool_id")
    queue_runs = FlowRun.objects.active_counts("work_queue_id")

    queues_by_pool: dict[object, list[QueueOverview]] = defaultdict(list)
    for queue in queues:
        queues_by_pool[queue.pool_id].append(
            QueueOverview(queue, queue_health(queue, now=now), queue_runs.get(queue.pk, 0))
        )
    workers_by_pool: dict[object, list[WorkerOverview]] = defaultdict(list)
    for worker in workers:
        workers_by_pool[worker.pool_id].append(WorkerOverview(worker, worker_health(worker, now=now)))

    overview = []
    for pool in pools:
        pool_workers = sorted(workers_by_pool[pool.pk], key=lambda w: w.health.status != ONLINE)
        online = sum(1 for w in pool_workers if w.health.status == ONLINE)
        overview.append(
            PoolOverview(
                pool=pool,
                health=pool_health(pool, now=now, online=online),
                active_runs=pool_runs.get(pool.pk, 0),
                queues=queues_by_pool[pool.pk],
                workers=pool_workers,
            )
        )
    return overview
