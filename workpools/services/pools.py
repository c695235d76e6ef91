"""Work pools and work queues: create, find, pause, limits, delete, and routing a deployment's runs
to a queue."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, TypeVar

from django.db import IntegrityError, transaction

from accounts import audit
from orchestrator.core.errors import NotFound, OrchestratorError, ValidationError
from orchestrator.core.names import check_name, name_problem
from orchestrator.core.states import StateType
from runs import wakeups
from runs.models import FlowRun
from workpools.models import WorkPool, WorkPoolType, WorkQueue


def create_work_pool(
    name: str,
    *,
    type: str = WorkPoolType.PROCESS,
    concurrency_limit: int | None = None,
    paused: bool = False,
    description: str = "",
    base_job_template: dict[str, Any] | None = None,
    job_variables: dict[str, Any] | None = None,
) -> WorkPool:
    """Create a pool and its `default` queue together. Raises ValidationError for a taken or
    blank name, an unknown type, a negative limit, a broken base job template (default: the
    type's) or job variables that template refuses."""
    from workpools.infrastructure.registry import pool_types
    from workpools.infrastructure.templates import check_job_variables
    from workpools.services.configuring import initial_template

    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["A work pool needs a name."]
    elif name_problem(name):
        errors["name"] = [f"Invalid work pool name {name!r}: {name_problem(name)}."]
    if type not in pool_types():
        errors["type"] = [f"Unknown work pool type {type!r} (known: {', '.join(pool_types())})."]
    try:
        check_concurrency_limit(concurrency_limit)
    except ValidationError as error:
        errors.update(error.errors)
    if errors:
        raise ValidationError(next(iter(errors.values()))[0], errors)
    template = initial_template(type, base_job_template)
    check_job_variables(template, job_variables or {}, field="job_variables")
    try:
        with transaction.atomic():
            pool = WorkPool.objects.create(
                name=name,
                type=type,
                concurrency_limit=concurrency_limit,
                paused=paused,
                description=description,
                base_job_template=template,
                job_variables=job_variables or {},
            )
            WorkQueue.objects.create(pool=pool, name=WorkPool.DEFAULT_QUEUE_NAME, priority=1)
            audit.record("work_pool.create", pool, after={"type": type, "concurrency_limit": concurrency_limit})
    except IntegrityError:
        raise ValidationError(f"A work pool named {name!r} already exists.", {"name": ["Already taken."]}) from None
    return pool


_Pausable = TypeVar("_Pausable", WorkPool, WorkQueue)


def get_work_pool(name: str) -> WorkPool:
    try:
        return WorkPool.objects.get(name=name)
    except WorkPool.DoesNotExist:
        raise NotFound(f"No work pool named {name!r}.") from None


def set_work_pool_paused(pool: WorkPool, paused: bool) -> WorkPool:
    """Pause or resume a pool: workers claim nothing from a paused pool."""
    return _set_paused(pool, paused, action="work_pool", pool_id=pool.pk)


def set_work_queue_paused(queue: WorkQueue, paused: bool) -> WorkQueue:
    """Pause or resume one queue: workers claim nothing from a paused queue."""
    return _set_paused(queue, paused, action="work_queue", pool_id=queue.pool_id)


def _set_paused(obj: _Pausable, paused: bool, *, action: str, pool_id: Any) -> _Pausable:
    """Write `paused` with its audit row in one transaction; resuming wakes the pool's workers."""
    with transaction.atomic():
        type(obj).objects.filter(pk=obj.pk).update(paused=paused)
        audit.record(
            f"{action}.pause" if paused else f"{action}.resume",
            obj,
            before={"paused": obj.paused},
            after={"paused": paused},
        )
    obj.paused = paused
    if not paused:
        wakeups.notify_pools([pool_id])
    return obj


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
    queues = sorted((q for q in queues if q.pool_id == deployment.work_pool_id), key=lambda q: (q.priority, q.name))
    tags = deployment.tags or []
    for queue in queues:
        if queue.tags and queue.serves_tags(tags):
            return queue
    untagged = [q for q in queues if not q.tags]
    for queue in untagged:
        if queue.name == WorkPool.DEFAULT_QUEUE_NAME:
            return queue
    return untagged[0] if untagged else None


def check_concurrency_limit(limit: object, field: str = "concurrency_limit") -> None:
    """The one rule for every concurrency limit (worker, queue, pool, deployment): None for
    none, else a whole number, 0 or more. Raises ValidationError naming `field`."""
    if limit is None:
        return
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise ValidationError(
            f"A concurrency limit must be a whole number (got {limit!r}).",
            {field: ["Must be a whole number, 0 or more."]},
        )
    if limit < 0:
        raise ValidationError(
            f"A concurrency limit cannot be negative (got {limit}).",
            {field: ["A concurrency limit cannot be negative: 0 or more."]},
        )


def set_concurrency_limit(obj: WorkPool | WorkQueue, limit: int | None) -> WorkPool | WorkQueue:
    """Set (or with None clear) a pool's or queue's concurrency limit. Lowering it below the
    runs in flight stops new claims until enough of them finish; nothing is interrupted."""
    check_concurrency_limit(limit)
    with transaction.atomic():
        type(obj).objects.filter(pk=obj.pk).update(concurrency_limit=limit)
        audit.record(
            f"{obj._meta.model_name}.set_concurrency_limit",
            obj,
            before={"concurrency_limit": obj.concurrency_limit},
            after={"concurrency_limit": limit},
        )
    obj.concurrency_limit = limit
    wakeups.notify_pools([obj.pk if isinstance(obj, WorkPool) else obj.pool_id])
    return obj


def delete_work_pool(pool: WorkPool) -> None:
    """Delete a pool with its queues and workers. Refused while runs are in flight in it or
    deployments still point at it, so nothing is left half-running or orphaned."""
    with transaction.atomic():
        pool = WorkPool.objects.select_for_update().get(pk=pool.pk)
        active = FlowRun.objects.active().filter(work_pool=pool).count()
        if active:
            raise OrchestratorError(
                f"Work pool {pool.name!r} has {active} run{'s' if active != 1 else ''} in flight; "
                "cancel them or wait for them to finish first."
            )
        deployments = list(pool.deployments.select_related("flow")[:4])
        if deployments:
            names = ", ".join(d.full_name for d in deployments[:3]) + (", ..." if len(deployments) > 3 else "")
            raise OrchestratorError(
                f"Work pool {pool.name!r} is used by deployments ({names}); delete them or deploy them to another pool first."
            )
        FlowRun.objects.filter(work_pool=pool, state_type=StateType.SCHEDULED).update(work_queue=None)
        audit.record("work_pool.delete", pool)
        pool.delete()


def create_work_queue(
    pool: WorkPool,
    name: str,
    *,
    priority: int | None = None,
    concurrency_limit: int | None = None,
    tags: list[str] | None = None,
    description: str = "",
    paused: bool = False,
) -> WorkQueue:
    """Add a queue to a pool. Without a priority it goes after the pool's existing queues.
    A queue with tags serves only deployments that carry all of them."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("A work queue needs a name.", {"name": ["This field may not be blank."]})
    check_name(name, "work queue name")
    check_concurrency_limit(concurrency_limit)
    if priority is not None and priority < 1:
        raise ValidationError("A priority must be 1 or more (1 is served first).", {"priority": ["Must be 1 or more."]})
    if priority is None:
        last = pool.queues.order_by("-priority").values_list("priority", flat=True).first()
        priority = (last or 0) + 1
    clean_tags = list(dict.fromkeys(t.strip() for t in (tags or []) if t and t.strip()))
    try:
        with transaction.atomic():
            queue = WorkQueue.objects.create(
                pool=pool,
                name=name,
                priority=priority,
                concurrency_limit=concurrency_limit,
                tags=clean_tags,
                description=description,
                paused=paused,
            )
            audit.record("work_queue.create", queue, after={"priority": priority, "tags": clean_tags})
            return queue
    except IntegrityError:
        raise ValidationError(
            f"Work pool {pool.name!r} already has a queue named {name!r}.", {"name": ["Already taken."]}
        ) from None


def get_work_queue(pool: WorkPool, name_or_id: str) -> WorkQueue:
    """A queue of `pool` by name, or by id."""
    queue = pool.queues.filter(name=name_or_id).first()
    if queue is None:
        try:
            queue = pool.queues.filter(pk=uuid.UUID(str(name_or_id))).first()
        except ValueError:
            queue = None
    if queue is None:
        raise NotFound(f"Work pool {pool.name!r} has no queue {name_or_id!r}.")
    return queue


def get_work_queues(pool: WorkPool, names_or_ids: list[str]) -> list[WorkQueue]:
    """Queues of `pool` by name or id (NotFound names the first unknown one)."""
    return [get_work_queue(pool, name_or_id) for name_or_id in names_or_ids]


def delete_work_queue(queue: WorkQueue) -> int:
    """Delete a queue. Its scheduled runs move to the pool's default queue (returns how many);
    refused for the default queue itself and while runs are in flight in the queue."""
    if queue.name == WorkPool.DEFAULT_QUEUE_NAME:
        raise OrchestratorError(f"The {WorkPool.DEFAULT_QUEUE_NAME!r} queue of a pool cannot be deleted.")
    with transaction.atomic():
        active = FlowRun.objects.active().filter(work_queue=queue).count()
        if active:
            raise OrchestratorError(
                f"Queue {queue.name!r} has {active} run{'s' if active != 1 else ''} in flight; "
                "cancel them or wait for them to finish first."
            )
        default = queue.pool.queues.filter(name=WorkPool.DEFAULT_QUEUE_NAME).first()
        moved = FlowRun.objects.filter(work_queue=queue, state_type=StateType.SCHEDULED).update(work_queue=default)
        audit.record("work_queue.delete", queue)
        queue.delete()
    return moved
