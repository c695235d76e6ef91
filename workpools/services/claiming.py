"""Claiming: a worker takes due runs from its pool's queues, within every concurrency limit, in one
transaction (SCHEDULED -> PENDING through set_state); the bounded long poll behind the HTTP claim."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from orchestrator.core.errors import NotFound
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import set_state
from workpools.models import Worker, WorkPool, WorkQueue
from workpools.services.policies import apply_run_policies
from workpools.services.waiting import claims_waiting as claims_waiting  # re-exported (tests read it here)
from workpools.services.waiting import wait_for_due_runs

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
    the pool lock were bypassed. Deployments' overlap and lateness policies are applied under
    the same lock first (workpools.services.policies). Also records that the worker polled its
    queues.
    """
    now = timezone.now()
    horizon = now + timedelta(seconds=max(0.0, prefetch_seconds))
    # An idle poll stays a cheap indexed read: take the pool lock only when something is due.
    polled, due = _due_runs(worker, queue_ids, horizon)
    if not due.exists():
        queues = list(polled)
        _check_queues_exist(worker, queue_ids, queues)
        _record_poll(queues, now)
        return []
    with transaction.atomic():
        # Serialise claimers of this pool (PostgreSQL row lock; SQLite's IMMEDIATE
        # transactions already hold the database write lock from BEGIN).
        pool = WorkPool.objects.select_for_update().get(pk=worker.pool_id)
        queues = list(pool.queues.order_by("priority", "name"))
        if queue_ids is not None:
            wanted = {str(q) for q in queue_ids}
            queues = [q for q in queues if str(q.pk) in wanted]
            _check_queues_exist(worker, queue_ids, queues)
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

        limits: dict[Any, int] = {
            dep: limit
            for dep, limit in pool.deployments.filter(concurrency_limit__isnull=False).values_list(
                "id", "concurrency_limit"
            )
            if limit is not None
        }
        # Overlap and lateness policies cancel what must not run and cap what may start.
        caps = apply_run_policies(pool, now=now, horizon=horizon)
        in_use: dict[Any, int] = dict.fromkeys({*limits, *caps}, 0)
        for counted in active.filter(deployment_id__in=list(in_use)).values("deployment_id").annotate(n=Count("id")):
            in_use[counted["deployment_id"]] = counted["n"]
        for dep, more in caps.items():
            limits[dep] = min(limits.get(dep, INFINITE), in_use[dep] + more)
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
                    FlowRun.objects.due(horizon)
                    .filter(work_queue=queue)
                    .exclude(deployment_id__in=full)
                    .order_by("next_scheduled_start_at", "id")
                    .select_for_update(skip_locked=True, of=("self",))
                )[: take - taken_here]
                batch = list(candidates)
                for run in batch:
                    dep = run.deployment_id
                    set_state(
                        run,
                        StateType.PENDING,
                        worker=worker,
                        expected=StateType.SCHEDULED,
                        message=f"Claimed by worker {worker.name}",
                    )
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
    polled = WorkQueue.objects.filter(pool_id=worker.pool_id)
    if queue_ids is not None:
        polled = polled.filter(pk__in=queue_ids)
    due = FlowRun.objects.due(horizon).filter(work_queue__in=polled.filter(paused=False))
    return polled, due


def unstarted_runs(worker: Worker) -> list[Any]:
    """Runs `worker` claimed whose process it never recorded: PENDING, held by it, no pid.

    A claim whose answer was lost on the way (a network error between a remote worker and the
    orchestrator) leaves such runs behind; handing them out again means a worker never loses a
    run it claimed. The worker skips any it did start (it knows its own children)."""
    return list(
        FlowRun.objects.filter(worker=worker, state_type=StateType.PENDING, pid__isnull=True).order_by("state_at", "id")
    )


def runs_to_start(
    worker: Worker,
    *,
    queue_ids: list[Any] | None = None,
    prefetch_seconds: float = 0,
    wait_seconds: float = 0,
    max_runs: int | None = None,
) -> list[Any]:
    """What `worker` should start now, with pool and deployment loaded: its unstarted runs,
    then the runs claim_runs claims for it, at most `max_runs` in all (a worker asks for what
    it can start before the runs' lease runs out). When it has neither, it first waits up to
    `wait_seconds` for a run to become due (wait_for_due_runs), so an idle remote worker picks
    up a new run at once with one request instead of many."""
    runs = unstarted_runs(worker)
    if max_runs is not None:
        runs = runs[:max_runs]
    if not runs and wait_seconds > 0:
        wait_for_due_runs(worker, queue_ids=queue_ids, prefetch_seconds=prefetch_seconds, timeout=wait_seconds)
    room = None if max_runs is None else max_runs - len(runs)
    if room is None or room > 0:
        runs += claim_runs(worker, queue_ids=queue_ids, prefetch_seconds=prefetch_seconds, max_runs=room)
    loaded = FlowRun.objects.with_related().in_bulk([run.pk for run in runs])
    return [loaded[run.pk] for run in runs if run.pk in loaded]


def _check_queues_exist(worker: Worker, queue_ids: list[Any] | None, queues: list[WorkQueue]) -> None:
    """NotFound when a queue the worker was told to poll (--queue) was deleted since: it would
    otherwise poll nothing, silently, while showing ONLINE."""
    if queue_ids is None:
        return
    missing = sorted({str(q) for q in queue_ids} - {str(q.pk) for q in queues})
    if missing:
        raise NotFound(f"Work pool {worker.pool.name!r} has no queue with id {', '.join(missing)} any more (deleted?).")


def _room(limit: int | None, used: int) -> int:
    return INFINITE if limit is None else max(0, limit - used)


def _record_poll(queues: list[WorkQueue], now: datetime) -> None:
    stale = [q.pk for q in queues if q.last_polled_at is None or now - q.last_polled_at >= POLL_WRITE_INTERVAL]
    if stale:
        WorkQueue.objects.filter(pk__in=stale).update(last_polled_at=now)
