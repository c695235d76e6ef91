"""Run policies applied in the claim: a deployment's (or a schedule's) overlap policy and its
maximum lateness. claim_runs calls apply_run_policies inside its transaction, after it took the
pool lock, so every decision here is made by one claimer at a time and holds under racing workers.

Deployments and schedules store the policies (deployments.models); this module reads them
through the pool's `deployments` relation, as the deployment concurrency limit is read, because
workpools sits below deployments and does not import it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Q

from orchestrator.core.errors import StateConflict
from orchestrator.core.policies import OverlapPolicy
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import request_cancellation, set_state
from workpools.models import WorkPool

# At most this many due runs of policy-bound deployments are looked at per claim; a backlog
# larger than that is worked through by the following claims.
MAX_RUNS_PER_PASS = 1000


@dataclass(frozen=True)
class _Policy:
    overlap: str
    max_lateness_seconds: int | None


def apply_run_policies(pool: WorkPool, *, now: datetime, horizon: datetime) -> dict[Any, int]:
    """Apply the policies of `pool`'s deployments to their due runs (SCHEDULED, may start by
    `horizon`, in an unpaused queue). Returns {deployment id: how many more of its runs this
    claim may take}, which claim_runs spends like a concurrency limit.

    - max lateness: a due run whose start time is more than max_lateness_seconds before `now`
      is moved SCHEDULED -> CANCELLED with a message saying how late it was;
    - skip: while a run of the deployment is active (or one is about to start in this claim),
      a due run is cancelled with a message; the claim may take one run when none is active;
    - buffer_one: the same, except that one due run (the oldest) stays waiting;
    - cancel_running: the newest due run starts; older due runs are cancelled as superseded and
      active runs are asked to cancel (PENDING/RUNNING -> CANCELLING);
    - allow: nothing (runs overlap, within the concurrency limits).

    A schedule's own policy, when set, replaces the deployment's for the runs it made. The
    caps returned are for the deployment's own policy.

    Concurrency: must run inside claim_runs' transaction holding the pool row lock, so two
    workers never both decide that a deployment is idle. Runs are also locked (SKIP LOCKED) and
    moved by compare-and-swap; a run that moved meanwhile is left alone.
    """
    deployment_policies, schedule_policies = _policies(pool)
    if not deployment_policies and not schedule_policies:
        return {}
    deployment_ids = set(deployment_policies) | {dep for dep, _slug in schedule_policies}
    due = list(
        FlowRun.objects.filter(
            work_pool=pool,
            work_queue__paused=False,
            state_type=StateType.SCHEDULED,
            next_scheduled_start_at__lte=horizon,
            deployment_id__in=deployment_ids,
        )
        .order_by("next_scheduled_start_at", "id")
        .select_for_update(skip_locked=True, of=("self",))[:MAX_RUNS_PER_PASS]
    )

    def policy_of(run: FlowRun) -> _Policy:
        default = deployment_policies.get(run.deployment_id, _Policy(OverlapPolicy.ALLOW, None))
        override = schedule_policies.get((run.deployment_id, run.schedule_slug)) if run.schedule_slug else None
        if override is None:
            return default
        return _Policy(
            override.overlap or default.overlap,
            override.max_lateness_seconds
            if override.max_lateness_seconds is not None
            else default.max_lateness_seconds,
        )

    waiting: dict[Any, list[tuple[FlowRun, _Policy]]] = defaultdict(list)
    for run in due:
        policy = policy_of(run)
        if _cancel_if_too_late(run, policy, now):
            continue
        waiting[run.deployment_id].append((run, policy))

    active = dict(
        FlowRun.objects.active()
        .filter(deployment_id__in=list(waiting) + list(deployment_policies))
        .values("deployment_id")
        .annotate(n=Count("id"))
        .values_list("deployment_id", "n")
    )
    caps: dict[Any, int] = {}
    for dep, policy in deployment_policies.items():
        if policy.overlap == OverlapPolicy.SKIP or policy.overlap == OverlapPolicy.BUFFER_ONE:
            caps[dep] = 0 if active.get(dep) else 1
        elif policy.overlap == OverlapPolicy.CANCEL_RUNNING:
            caps[dep] = 1
    for dep, runs in waiting.items():
        _apply_overlap(dep, runs, busy=bool(active.get(dep)))
    return caps


def _policies(pool: WorkPool) -> tuple[dict[Any, _Policy], dict[tuple[Any, str], _Policy]]:
    """The pool's deployments and schedules with a policy other than the defaults."""
    deployments = {
        row[0]: _Policy(row[1], row[2])
        for row in pool.deployments.exclude(
            overlap_policy=OverlapPolicy.ALLOW, max_lateness_seconds__isnull=True
        ).values_list("id", "overlap_policy", "max_lateness_seconds")
    }
    schedules = {
        (row[0], row[1]): _Policy(row[2], row[3])
        for row in pool.deployments.filter(
            Q(schedules__overlap_policy__gt="") | Q(schedules__max_lateness_seconds__isnull=False)
        ).values_list("id", "schedules__slug", "schedules__overlap_policy", "schedules__max_lateness_seconds")
    }
    return deployments, schedules


def _cancel_if_too_late(run: FlowRun, policy: _Policy, now: datetime) -> bool:
    """Cancel `run` when it is later than its policy allows; True if it was cancelled."""
    if policy.max_lateness_seconds is None or run.next_scheduled_start_at is None:
        return False
    late = (now - run.next_scheduled_start_at).total_seconds()
    if late <= policy.max_lateness_seconds:
        return False
    return _cancel(
        run,
        f"Not started: {late:.0f} s late, more than the {policy.max_lateness_seconds} s its max lateness allows.",
    )


def _apply_overlap(dep: Any, runs: list[tuple[FlowRun, _Policy]], *, busy: bool) -> None:
    """Decide the due runs of one deployment (oldest first) by their overlap policies."""
    newest_replacing = next(
        (run for run, policy in reversed(runs) if policy.overlap == OverlapPolicy.CANCEL_RUNNING), None
    )
    if newest_replacing is not None:
        for run, policy in runs:
            if policy.overlap == OverlapPolicy.CANCEL_RUNNING and run is not newest_replacing:
                _cancel(run, f"Superseded by the newer run {newest_replacing.name} (overlap policy cancel_running).")
        for old in FlowRun.objects.active().filter(deployment_id=dep).select_for_update(skip_locked=True):
            try:
                request_cancellation(old, by=f"the newer run {newest_replacing.name} (overlap policy cancel_running)")
            except StateConflict:
                continue  # it finished meanwhile: nothing to cancel
        busy = True
        runs = [(run, policy) for run, policy in runs if policy.overlap != OverlapPolicy.CANCEL_RUNNING]

    kept_waiting = False
    for run, policy in runs:
        if policy.overlap == OverlapPolicy.ALLOW:
            continue
        if not busy:
            busy = True  # this one starts (the claim takes it); the next ones overlap it
            continue
        if policy.overlap == OverlapPolicy.BUFFER_ONE and not kept_waiting:
            kept_waiting = True
            continue
        reason = "one is already waiting" if policy.overlap == OverlapPolicy.BUFFER_ONE else "it would overlap"
        _cancel(
            run,
            f"Skipped: another run of this deployment is still active and {reason} (overlap policy {policy.overlap}).",
        )


def _cancel(run: FlowRun, message: str) -> bool:
    try:
        set_state(run, StateType.CANCELLED, expected=StateType.SCHEDULED, message=message)
    except StateConflict:
        return False  # moved meanwhile (cancelled by a person, say): leave it
    return True
