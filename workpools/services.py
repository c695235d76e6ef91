"""Business rules of work pools, queues and workers."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from runs.errors import NotFound, OrchestratorError, ValidationError
from runs.states import StateType
from workpools.models import WorkPool, WorkPoolType, WorkQueue, Worker


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
    from workpools.configuring import initial_template
    from workpools.infrastructure.registry import pool_types
    from workpools.infrastructure.templates import check_job_variables

    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["A work pool needs a name."]
    if type not in pool_types():
        errors["type"] = [f"Unknown work pool type {type!r} (known: {', '.join(pool_types())})."]
    if concurrency_limit is not None and concurrency_limit < 0:
        errors["concurrency_limit"] = ["A concurrency limit cannot be negative."]
    if errors:
        raise ValidationError(next(iter(errors.values()))[0], errors)
    template = initial_template(type, base_job_template)
    check_job_variables(template, job_variables or {}, field="job_variables")
    try:
        with transaction.atomic():
            pool = WorkPool.objects.create(
                name=name, type=type, concurrency_limit=concurrency_limit, paused=paused, description=description,
                base_job_template=template, job_variables=job_variables or {},
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


# --- pools and queues ---------------------------------------------------------------------------


def _check_limit(limit: int | None, field: str = "concurrency_limit") -> None:
    if limit is not None and limit < 0:
        raise ValidationError(f"A concurrency limit cannot be negative (got {limit}).", {field: ["Must be 0 or more."]})


def set_concurrency_limit(obj: WorkPool | WorkQueue, limit: int | None) -> WorkPool | WorkQueue:
    """Set (or with None clear) a pool's or queue's concurrency limit. Lowering it below the
    runs in flight stops new claims until enough of them finish; nothing is interrupted."""
    _check_limit(limit)
    type(obj).objects.filter(pk=obj.pk).update(concurrency_limit=limit)
    obj.concurrency_limit = limit
    return obj


def delete_work_pool(pool: WorkPool) -> None:
    """Delete a pool with its queues and workers. Refused while runs are in flight in it or
    deployments still point at it, so nothing is left half-running or orphaned."""
    from runs.models import FlowRun

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
    _check_limit(concurrency_limit)
    if priority is not None and priority < 1:
        raise ValidationError("A priority must be 1 or more (1 is served first).", {"priority": ["Must be 1 or more."]})
    if priority is None:
        last = pool.queues.order_by("-priority").values_list("priority", flat=True).first()
        priority = (last or 0) + 1
    clean_tags = list(dict.fromkeys(t.strip() for t in (tags or []) if t and t.strip()))
    try:
        with transaction.atomic():
            return WorkQueue.objects.create(
                pool=pool, name=name, priority=priority, concurrency_limit=concurrency_limit,
                tags=clean_tags, description=description, paused=paused,
            )
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
    from runs.models import FlowRun

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
        queue.delete()
    return moved


# --- workers ------------------------------------------------------------------------------------


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
    _check_limit(limit, "limit")
    if name is not None and (not name.strip() or "/" in name):
        raise ValidationError(f"A worker name must not be blank or hold a '/' (got {name!r}).", {"name": ["No '/' allowed."]})
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


# Polling timestamps are written at most this often per queue: a busy worker polling every
# second should not turn every poll into a write.
POLL_WRITE_INTERVAL = timedelta(seconds=5)


def claim_runs(
    worker: Worker,
    *,
    queue_ids: list[Any] | None = None,
    prefetch_seconds: float = 0,
    max_runs: int | None = None,
) -> list[Any]:
    """Claim due runs for `worker`: SCHEDULED -> PENDING with the worker recorded.

    One transaction. It locks the worker's pool row first, so claims in one pool are
    serialised and every concurrency limit (the worker's, each queue's, the pool's, each
    deployment's) is counted and spent inside the same lock: limits are hard, never
    overshot. Slots in use are counted from run states (PENDING, RUNNING, CANCELLING,
    PAUSED), so no path can leak one. Queues are served in priority order (paused ones
    skipped, nothing from a paused pool); within a queue, runs start in scheduled order;
    runs of a deployment at its limit are left out in the query itself, so they cannot fill
    the page and starve other deployments. Rows are also taken FOR UPDATE SKIP LOCKED and
    each move is a compare-and-swap on SCHEDULED, so a double claim is impossible even if
    the pool lock were bypassed. Also records that the worker polled its queues.
    """
    from deployments.models import Deployment
    from runs.models import FlowRun
    from runs.services import set_state

    now = timezone.now()
    horizon = now + timedelta(seconds=max(0.0, prefetch_seconds))
    # An idle poll stays a cheap indexed read: take the pool lock only when something is due.
    polled, due = _due_runs(worker, queue_ids, horizon)
    if not due.exists():
        _record_poll(list(polled), now)
        return []
    with transaction.atomic():
        # Serialise claimers of this pool (PostgreSQL row lock; SQLite's IMMEDIATE
        # transactions already hold the database write lock from BEGIN).
        pool = WorkPool.objects.select_for_update().get(pk=worker.pool_id)
        queues = list(pool.queues.order_by("priority", "name"))
        if queue_ids is not None:
            wanted = {str(q) for q in queue_ids}
            queues = [q for q in queues if str(q.pk) in wanted]
        _record_poll(queues, now)
        if pool.paused:
            return []

        active = FlowRun.objects.active()
        in_pool = list(active.filter(work_pool=pool).values("work_queue_id", "worker_id"))
        room = min(
            _room(pool.concurrency_limit, len(in_pool)),
            _room(worker.limit, active.filter(worker=worker).count()),
            max_runs if max_runs is not None else INFINITE,
        )
        if room <= 0:
            return []
        per_queue: dict[Any, int] = {}
        for row in in_pool:
            per_queue[row["work_queue_id"]] = per_queue.get(row["work_queue_id"], 0) + 1

        limits = dict(
            Deployment.objects.filter(work_pool=pool, concurrency_limit__isnull=False).values_list(
                "id", "concurrency_limit"
            )
        )
        in_use: dict[Any, int] = dict.fromkeys(limits, 0)
        for row in active.filter(deployment_id__in=list(limits)).values("deployment_id").annotate(n=Count("id")):
            in_use[row["deployment_id"]] = row["n"]
        full = {dep for dep, limit in limits.items() if in_use[dep] >= limit}

        claimed: list[Any] = []
        for queue in queues:
            if queue.paused:
                continue
            take = min(room - len(claimed), _room(queue.concurrency_limit, per_queue.get(queue.pk, 0)))
            if take <= 0:
                continue
            taken_here = 0
            while taken_here < take:
                # Re-read after a deployment fills up, so its remaining runs cannot crowd the
                # window and starve the runs behind them.
                filled_now = False
                candidates = (
                    FlowRun.objects.filter(
                        work_queue=queue, state_type=StateType.SCHEDULED, next_scheduled_start_at__lte=horizon
                    )
                    .exclude(deployment_id__in=full)
                    .order_by("next_scheduled_start_at", "id")
                    .select_for_update(skip_locked=True, of=("self",))
                )[: take - taken_here]
                batch = list(candidates)
                for run in batch:
                    dep = run.deployment_id
                    set_state(run, StateType.PENDING, worker=worker, expected=StateType.SCHEDULED,
                              message=f"Claimed by worker {worker.name}")
                    claimed.append(run)
                    taken_here += 1
                    if dep in limits:
                        in_use[dep] += 1
                        if in_use[dep] >= limits[dep]:
                            full.add(dep)
                            filled_now = True
                            break
                if not filled_now:
                    break  # the queue has nothing more that is due
            if len(claimed) >= room:
                break
    return claimed


INFINITE = 10**9


def _due_runs(worker: Worker, queue_ids: list[Any] | None, horizon: datetime) -> tuple[Any, Any]:
    """(the queues `worker` polls, its due runs in their unpaused queues), as querysets."""
    from runs.models import FlowRun

    polled = WorkQueue.objects.filter(pool_id=worker.pool_id)
    if queue_ids is not None:
        polled = polled.filter(pk__in=queue_ids)
    due = FlowRun.objects.filter(
        work_queue__in=polled.filter(paused=False), state_type=StateType.SCHEDULED, next_scheduled_start_at__lte=horizon
    )
    return polled, due


# Seconds between two looks at the due runs while a claim waits.
CLAIM_WAIT_STEP = 0.25
_waiting = 0
_waiting_lock = threading.Lock()


def wait_for_due_runs(
    worker: Worker, *, queue_ids: list[Any] | None = None, prefetch_seconds: float = 0, timeout: float
) -> bool:
    """Wait up to `timeout` seconds (at most CLAIM_MAX_WAIT_SECONDS) until a run is due for
    `worker`; True as soon as one is, False when the time is up.

    It repeats claim_runs' cheap indexed EXISTS every CLAIM_WAIT_STEP seconds and holds no
    transaction; between looks it lets go of the database connection the way Django does between
    requests (closed with the default DB_CONN_MAX_AGE=0). At most CLAIM_MAX_WAITERS calls wait
    at once in a process, so waiting workers cannot take every web thread: the others return at
    once (False) and their workers poll again after their own interval.
    """
    from django.conf import settings
    from django.db import close_old_connections, connection

    global _waiting
    timeout = min(max(0.0, timeout), settings.CLAIM_MAX_WAIT_SECONDS)
    deadline = time.monotonic() + timeout
    with _waiting_lock:
        if timeout <= 0 or _waiting >= settings.CLAIM_MAX_WAITERS:
            return False
        _waiting += 1
    try:
        while True:
            horizon = timezone.now() + timedelta(seconds=max(0.0, prefetch_seconds))
            if _due_runs(worker, queue_ids, horizon)[1].exists():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not connection.in_atomic_block:
                close_old_connections()
            time.sleep(min(CLAIM_WAIT_STEP, left))
    finally:
        with _waiting_lock:
            _waiting -= 1


def unstarted_runs(worker: Worker) -> list[Any]:
    """Runs `worker` claimed whose process it never recorded: PENDING, held by it, no pid.

    A claim whose answer was lost on the way (a network error between a remote worker and the
    orchestrator) leaves such runs behind; handing them out again means a worker never loses a
    run it claimed. The worker skips any it did start (it knows its own children)."""
    from runs.models import FlowRun

    return list(FlowRun.objects.filter(worker=worker, state_type=StateType.PENDING, pid__isnull=True).order_by("state_at", "id"))


def runs_to_start(
    worker: Worker, *, queue_ids: list[Any] | None = None, prefetch_seconds: float = 0, wait_seconds: float = 0
) -> list[Any]:
    """What `worker` should start now, with pool and deployment loaded: its unstarted runs,
    then the runs claim_runs claims for it. When it has neither, it first waits up to
    `wait_seconds` for a run to become due (wait_for_due_runs), so an idle remote worker picks
    up a new run at once with one request instead of many."""
    from runs.models import FlowRun

    runs = unstarted_runs(worker)
    if not runs and wait_seconds > 0:
        wait_for_due_runs(worker, queue_ids=queue_ids, prefetch_seconds=prefetch_seconds, timeout=wait_seconds)
    runs += claim_runs(worker, queue_ids=queue_ids, prefetch_seconds=prefetch_seconds)
    loaded = FlowRun.objects.with_related().in_bulk([run.pk for run in runs])
    return [loaded[run.pk] for run in runs if run.pk in loaded]


def _room(limit: int | None, used: int) -> int:
    return INFINITE if limit is None else max(0, limit - used)


def _record_poll(queues: list[WorkQueue], now: datetime) -> None:
    stale = [q.pk for q in queues if q.last_polled_at is None or now - q.last_polled_at >= POLL_WRITE_INTERVAL]
    if stale:
        WorkQueue.objects.filter(pk__in=stale).update(last_polled_at=now)


# --- recovery -----------------------------------------------------------------------------------


def reap_crashed_runs_and_offline_workers(*, now: datetime | None = None) -> dict[str, int]:
    """Recover from processes and workers that died without saying so.

    - PENDING/RUNNING runs whose heartbeat is older than RUN_HEARTBEAT_MISSES intervals become
      CRASHED (and AwaitingRetry when retries are left). The compare-and-swap also requires the
      heartbeat to still be stale, so a run that heartbeats meanwhile is left alone.
    - CANCELLING runs not confirmed within CANCELLING_TIMEOUT_SECONDS become CANCELLED, which
      releases their slots.
    - Workers past WORKER_HEARTBEAT_MISSES intervals are OFFLINE; that is derived from their
      heartbeat (workpools.health), so they are only counted here.
    Safe to run from several places at once: each change is a compare-and-swap, and a lost race
    is simply skipped. Returns counts for the log.
    """
    from django.conf import settings
    from django.db.models import Q

    from runs.errors import StateConflict
    from runs.models import FlowRun
    from runs.services import set_state
    from workpools.health import worker_offline_after

    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.RUN_HEARTBEAT_SECONDS * settings.RUN_HEARTBEAT_MISSES)
    crashed = cancelled = 0
    for run in FlowRun.objects.filter(state_type__in=[StateType.PENDING, StateType.RUNNING], heartbeat_at__lt=stale):
        try:
            set_state(
                run, StateType.CRASHED, expected=run.state_type, only_if=Q(heartbeat_at__lt=stale),
                message=f"The run's process stopped heartbeating (last heartbeat {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); presumed dead.",
            )
            crashed += 1
        except StateConflict:
            pass  # it heartbeat, finished or moved meanwhile

    timeout = settings.CANCELLING_TIMEOUT_SECONDS
    for run in FlowRun.objects.filter(state_type=StateType.CANCELLING, state_at__lt=now - timedelta(seconds=timeout)):
        try:
            set_state(
                run, StateType.CANCELLED, expected=StateType.CANCELLING,
                message=f"No worker confirmed the cancellation within {timeout:g} s; marked cancelled to release its slot.",
            )
            cancelled += 1
        except StateConflict:
            pass
    offline = Worker.objects.filter(stopped_at__isnull=True, last_heartbeat_at__lt=now - worker_offline_after()).count()
    return {"crashed": crashed, "cancelled": cancelled, "offline_workers": offline}


from workpools.configuring import update_work_pool as update_work_pool  # noqa: E402  (re-exported)
