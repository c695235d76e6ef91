"""Waiting for work without polling: an idle worker (direct transport) or a long-poll claim (the
server side of the HTTP transport) sleeps until a wake-up says a run became claimable in its pool
(runs.wakeups) or until the next scheduled run is due, whichever comes first.

Correctness does not rest on the wake-ups alone: every wait is bounded, so a missed signal costs
at most one bounded wait, never a run.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Min, OuterRef, Subquery
from django.utils import timezone

from orchestrator.core.states import StateType
from runs import wakeups
from runs.models import FlowRun
from workpools.models import Worker, WorkQueue

# A wait re-checks the database at least this often even without a wake-up (a deployment's
# limit raised, or anything else that frees a run without notifying).
SAFETY_RECHECK_SECONDS = 5.0


def next_due_at(
    worker: Worker, queue_ids: list[Any] | None = None, *, after: datetime | None = None
) -> datetime | None:
    """When the earliest SCHEDULED run `worker` could claim is due (maybe already past), or None
    when its unpaused queues of an unpaused pool hold none; with `after`, the earliest due later
    than that. One query: per queue, the first run in the claim index (work_queue, state_type,
    next_scheduled_start_at)."""
    queues = WorkQueue.objects.filter(pool_id=worker.pool_id, paused=False, pool__paused=False)
    if queue_ids is not None:
        queues = queues.filter(pk__in=queue_ids)
    runs = FlowRun.objects.filter(work_queue=OuterRef("pk"), state_type=StateType.SCHEDULED)
    if after is not None:
        runs = runs.filter(next_scheduled_start_at__gt=after)
    first = runs.order_by("next_scheduled_start_at").values("next_scheduled_start_at")[:1]
    result: datetime | None = queues.annotate(first=Subquery(first)).aggregate(at=Min("first"))["at"]
    return result


class RunWaiter:
    """One worker's wait for work on the direct transport. `listen()` before the first claim;
    `claimed(horizon)` at every claim; `wait(timeout)` when the worker has nothing to do. True
    from wait() means: claim now."""

    def __init__(self, worker: Worker, *, queue_ids: list[Any] | None = None) -> None:
        self.worker = worker
        self.queue_ids = queue_ids
        self.listener: wakeups.Listener | None = None
        self.last_horizon: datetime | None = None
        self.due: datetime | None = None  # next_due_at after the last claim's horizon
        self.due_known = False

    @property
    def mechanism(self) -> str:
        return self.listener.mechanism if self.listener is not None else "poll"

    def listen(self) -> None:
        if self.listener is None:
            self.listener = wakeups.listener_for([self.worker.pool_id])

    def claimed(self, horizon: datetime) -> None:
        """The worker claimed everything due up to `horizon` (what was due and is still
        SCHEDULED after that is blocked by a limit or pause, not waiting for a claim)."""
        self.last_horizon = horizon
        self.due_known = False

    def wait(self, timeout: float, *, prefetch_seconds: float = 0.0) -> bool:
        """Sleep up to `timeout` seconds until a wake-up or until the next run the last claim
        could not see yet is due; True when the worker should claim now."""
        self.listen()
        assert self.listener is not None
        # Runs due by the last claim's horizon and still SCHEDULED are held back by a limit or
        # a pause: a wake-up (a slot freed, a resume) says when to look again.
        # Looked up once per claim: anything created since then comes with a wake-up.
        if not self.due_known:
            self.due = next_due_at(self.worker, self.queue_ids, after=self.last_horizon)
            self.due_known = True
        due = self.due
        if due is not None:
            until = (due - timedelta(seconds=max(0.0, prefetch_seconds)) - timezone.now()).total_seconds()
            if until <= 0:
                return True
            if until <= timeout:
                timeout = until
                due_in_time = True
            else:
                due_in_time = False
        else:
            due_in_time = False
        if not connection.in_atomic_block:
            close_old_connections()
        return self.listener.wait(timeout) or due_in_time

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None


_waiting = 0
_waiting_lock = threading.Lock()


def claims_waiting() -> int:
    """How many claims are waiting in this process's long poll right now."""
    return _waiting


def wait_for_due_runs(
    worker: Worker, *, queue_ids: list[Any] | None = None, prefetch_seconds: float = 0, timeout: float
) -> bool:
    """Wait up to `timeout` seconds (at most CLAIM_MAX_WAIT_SECONDS) until a run is due for
    `worker`; True as soon as one is, False when the time is up.

    It listens for the pool's wake-ups first, then looks (so a run created in between is not
    missed), then sleeps until a wake-up, the next run's due time or the deadline; it re-checks
    at least every SAFETY_RECHECK_SECONDS. It holds no transaction; between looks it lets go of
    the database connection the way Django does between requests. At most CLAIM_MAX_WAITERS calls
    wait at once in a process, so waiting workers cannot take every web thread: the others return
    at once (False) and their workers poll again after their own interval.
    """
    global _waiting
    timeout = min(max(0.0, timeout), settings.CLAIM_MAX_WAIT_SECONDS)
    deadline = time.monotonic() + timeout
    with _waiting_lock:
        if timeout <= 0 or _waiting >= settings.CLAIM_MAX_WAITERS:
            return False
        _waiting += 1
    try:
        with wakeups.listener_for([worker.pool_id]) as listener:
            while True:
                horizon = timezone.now() + timedelta(seconds=max(0.0, prefetch_seconds))
                due = next_due_at(worker, queue_ids)
                if due is not None and due <= horizon:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                pause = min(left, SAFETY_RECHECK_SECONDS)
                if due is not None:
                    pause = min(pause, (due - horizon).total_seconds())
                if not connection.in_atomic_block:
                    close_old_connections()
                listener.wait(pause)
    finally:
        with _waiting_lock:
            _waiting -= 1
