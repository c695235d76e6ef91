"""Workers: registering, heartbeats, stopping."""

from __future__ import annotations

import os
import socket

from django.utils import timezone

from orchestrator.core.errors import NotFound, ValidationError
from workpools.models import Worker, WorkPool
from workpools.services.pools import check_concurrency_limit, create_work_pool, get_work_pool


def register_worker(
    pool_name: str,
    *,
    name: str | None = None,
    limit: int | None = None,
    create_pool: bool = True,
    hostname: str | None = None,
    pid: int | None = None,
) -> tuple[Worker, bool]:
    """Register (or re-register, by name) a worker of `pool_name`. Returns (worker,
    pool_created). Creates a process pool when none exists unless create_pool is False,
    in which case NotFound names the pool. Raises ValidationError for a negative limit or a
    name with a slash (names go in URLs: /api/work-pools/POOL/workers/NAME/)."""
    check_concurrency_limit(limit, "limit")
    if name is not None and (not name.strip() or "/" in name):
        raise ValidationError(
            f"A worker name must not be blank or hold a '/' (got {name!r}).", {"name": ["No '/' allowed."]}
        )
    hostname = hostname or socket.gethostname()
    pid = pid or os.getpid()
    pool_created = False
    pool = WorkPool.objects.filter(name=pool_name).first()
    if pool is None:
        if not create_pool:
            raise NotFound(f"No work pool named {pool_name!r} (create it with: manage.py workpool create {pool_name}).")
        try:
            pool, pool_created = create_work_pool(pool_name), True
        except ValidationError:
            pool = get_work_pool(pool_name)  # another worker created it a moment ago
    name = name or f"{hostname}-{pid}"
    now = timezone.now()
    worker, _ = Worker.objects.update_or_create(
        pool=pool,
        name=name,
        defaults={"hostname": hostname, "pid": pid, "limit": limit, "last_heartbeat_at": now, "stopped_at": None},
    )
    return worker, pool_created


def record_worker_heartbeat(worker: Worker) -> None:
    now = timezone.now()
    Worker.objects.filter(pk=worker.pk).update(last_heartbeat_at=now, stopped_at=None)
    worker.last_heartbeat_at = now


def mark_worker_stopped(worker: Worker) -> None:
    """The worker says goodbye: it shows OFFLINE at once instead of after missed heartbeats."""
    now = timezone.now()
    Worker.objects.filter(pk=worker.pk).update(stopped_at=now)
    worker.stopped_at = now
