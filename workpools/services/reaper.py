"""Recovery from processes and workers that died without saying so."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from orchestrator.core.errors import StateConflict
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import set_state
from workpools.health import online_worker_filter
from workpools.models import Worker


def recover_lost_runs(*, now: datetime | None = None) -> dict[str, int]:
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

    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.RUN_HEARTBEAT_SECONDS * settings.RUN_HEARTBEAT_MISSES)
    crashed = cancelled = 0
    for run in FlowRun.objects.filter(state_type__in=[StateType.PENDING, StateType.RUNNING], heartbeat_at__lt=stale):
        try:
            set_state(
                run,
                StateType.CRASHED,
                expected=run.state_type,
                only_if=Q(heartbeat_at__lt=stale),
                message=f"The run's process stopped heartbeating (last heartbeat {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); presumed dead.",
            )
            crashed += 1
        except StateConflict:
            pass  # it heartbeat, finished or moved meanwhile

    timeout = settings.CANCELLING_TIMEOUT_SECONDS
    for run in FlowRun.objects.filter(state_type=StateType.CANCELLING, state_at__lt=now - timedelta(seconds=timeout)):
        try:
            set_state(
                run,
                StateType.CANCELLED,
                expected=StateType.CANCELLING,
                message=f"No worker confirmed the cancellation within {timeout:g} s; marked cancelled to release its slot.",
            )
            cancelled += 1
        except StateConflict:
            pass
    offline = Worker.objects.filter(stopped_at__isnull=True).exclude(online_worker_filter(now)).count()
    return {"crashed": crashed, "cancelled": cancelled, "offline_workers": offline}
