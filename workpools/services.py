"""Business rules of work pools, queues and workers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction

from runs.errors import NotFound, ValidationError
from workpools.models import WorkPool, WorkPoolType, WorkQueue


def create_work_pool(
    name: str,
    *,
    type: str = WorkPoolType.PROCESS,
    concurrency_limit: int | None = None,
    paused: bool = False,
    description: str = "",
) -> WorkPool:
    """Create a pool and its `default` queue together. Raises ValidationError for a taken or
    blank name, an unknown type or a negative limit."""
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["A work pool needs a name."]
    if type not in WorkPoolType.values:
        errors["type"] = [f"Unknown work pool type {type!r} (known: {', '.join(WorkPoolType.values)})."]
    if concurrency_limit is not None and concurrency_limit < 0:
        errors["concurrency_limit"] = ["A concurrency limit cannot be negative."]
    if errors:
        raise ValidationError(next(iter(errors.values()))[0], errors)
    try:
        with transaction.atomic():
            pool = WorkPool.objects.create(
                name=name, type=type, concurrency_limit=concurrency_limit, paused=paused, description=description
            )
            WorkQueue.objects.create(pool=pool, name=WorkPool.DEFAULT_QUEUE_NAME, priority=1)
    except IntegrityError:
        raise ValidationError(f"A work pool named {name!r} already exists.", {"name": ["Already taken."]}) from None
    return pool


def get_work_pool(name: str) -> WorkPool:
    try:
        return WorkPool.objects.get(name=name)
    except WorkPool.DoesNotExist:
        raise NotFound(f"No work pool named {name!r}.") from None


def set_work_pool_paused(pool: WorkPool, paused: bool) -> WorkPool:
    """Pause or resume a pool: workers claim nothing from a paused pool."""
    WorkPool.objects.filter(pk=pool.pk).update(paused=paused)
    pool.paused = paused
    return pool


def set_work_queue_paused(queue: WorkQueue, paused: bool) -> WorkQueue:
    """Pause or resume one queue: workers claim nothing from a paused queue."""
    WorkQueue.objects.filter(pk=queue.pk).update(paused=paused)
    queue.paused = paused
    return queue


def route_to_queue(deployment: Any, *, queues: Iterable[WorkQueue] | None = None) -> WorkQueue | None:
    """The queue a new run of `deployment` goes to.

    The deployment's own queue when set; else, in its pool, the first queue by priority whose
    (non-empty) tag filter the deployment's tags satisfy, so a `tutorial` queue takes the
    deployment tagged `tutorial`; else the pool's default queue; else its first untagged queue.
    None when the pool has no queue that may serve it. `queues` may pass queues loaded already
    (any pools; the scheduler loads them once for many deployments) to save the query.
    """
    if deployment.work_queue_id:
        return deployment.work_queue
    if queues is None:
        queues = WorkQueue.objects.filter(pool_id=deployment.work_pool_id)
    queues = sorted(
        (q for q in queues if q.pool_id == deployment.work_pool_id), key=lambda q: (q.priority, q.name)
    )
    tags = deployment.tags or []
    for queue in queues:
        if queue.tags and queue.serves_tags(tags):
            return queue
    untagged = [q for q in queues if not q.tags]
    for queue in untagged:
        if queue.name == WorkPool.DEFAULT_QUEUE_NAME:
            return queue
    return untagged[0] if untagged else None
