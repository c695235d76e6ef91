"""Health of workers, queues and pools, computed in one place for the CLI, API and dashboard.

- Worker: ONLINE while its last heartbeat is within WORKER_HEARTBEAT_MISSES heartbeat
  intervals (and it has not said it stopped), else OFFLINE.
- Queue: PAUSED when it or its pool is paused; READY when a worker polled it within
  QUEUE_READY_SECONDS; else NOT_READY.
- Pool: PAUSED when paused; READY when it has an online worker; else NOT_READY.
Each verdict carries the reason in words, for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from workpools.models import Worker, WorkPool, WorkQueue

ONLINE, OFFLINE = "ONLINE", "OFFLINE"
READY, NOT_READY, PAUSED = "READY", "NOT_READY", "PAUSED"


@dataclass(frozen=True)
class Health:
    status: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.status in (READY, ONLINE)


def worker_offline_after() -> timedelta:
    return timedelta(seconds=settings.WORKER_HEARTBEAT_SECONDS * settings.WORKER_HEARTBEAT_MISSES)


def _ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def worker_health(worker: Worker, *, now: datetime | None = None) -> Health:
    now = now or timezone.now()
    if worker.stopped_at is not None:
        return Health(OFFLINE, f"stopped {_ago(worker.stopped_at, now)}")
    if worker.last_heartbeat_at is None:
        return Health(OFFLINE, "has never sent a heartbeat")
    if now - worker.last_heartbeat_at > worker_offline_after():
        return Health(OFFLINE, f"last heartbeat {_ago(worker.last_heartbeat_at, now)}")
    return Health(ONLINE, f"last heartbeat {_ago(worker.last_heartbeat_at, now)}")


def queue_health(queue: WorkQueue, *, now: datetime | None = None) -> Health:
    now = now or timezone.now()
    window = int(settings.QUEUE_READY_SECONDS)
    if queue.paused:
        return Health(PAUSED, "the queue is paused")
    if queue.pool.paused:
        return Health(PAUSED, "its work pool is paused")
    if queue.last_polled_at is None:
        return Health(NOT_READY, "no worker has polled it yet")
    if (now - queue.last_polled_at).total_seconds() > window:
        return Health(NOT_READY, f"no worker has polled in the last {window} s")
    return Health(READY, f"polled {_ago(queue.last_polled_at, now)}")


def online_worker_filter(now: datetime, prefix: str = "") -> Q:
    """The one definition of an online worker (not stopped, heartbeat within the window), for
    a Worker query (`prefix` "") or through a relation (`prefix` "workers__")."""
    return Q(**{f"{prefix}stopped_at__isnull": True, f"{prefix}last_heartbeat_at__gte": now - worker_offline_after()})


def online_workers(pool: WorkPool, *, now: datetime | None = None) -> QuerySet[Worker]:
    return pool.workers.filter(online_worker_filter(now or timezone.now()))


def with_online_workers(pools: QuerySet[WorkPool], *, now: datetime | None = None) -> QuerySet[WorkPool]:
    """Pools annotated with `online_workers` (the count pool_health takes), in one query."""
    now = now or timezone.now()
    return pools.annotate(online_workers=Count("workers", filter=online_worker_filter(now, "workers__")))


def pool_health(pool: WorkPool, *, now: datetime | None = None, online: int | None = None) -> Health:
    """`online` may pass a pre-counted number of online workers (lists annotate it once)."""
    now = now or timezone.now()
    if pool.paused:
        return Health(PAUSED, "the work pool is paused")
    count = online if online is not None else online_workers(pool, now=now).count()
    if count == 0:
        return Health(NOT_READY, "no online worker")
    return Health(READY, f"{count} online worker{'s' if count != 1 else ''}")
