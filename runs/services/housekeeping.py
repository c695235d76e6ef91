"""Periodic upkeep of flow runs: late marking and retention."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestrator.core.errors import StateConflict
from orchestrator.core.states import (
    TERMINAL,
)
from runs.models import FlowRun, Log
from runs.services.state import S, set_state


def mark_late_runs(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Rename runs still SCHEDULED more than LATE_RUN_SECONDS past their start time to Late,
    through set_state (SCHEDULED -> SCHEDULED, name Late). Returns how many were renamed.

    Runs waiting for a retry keep their AwaitingRetry name. Concurrency: each batch locks its
    runs (SKIP LOCKED), so two passes never rename one run twice and a run a worker is claiming
    right now is left to the worker; set_state's compare-and-swap settles the rest."""
    now = now or timezone.now()
    threshold = float(settings.LATE_RUN_SECONDS)
    cutoff = now - timedelta(seconds=threshold)
    marked = 0
    while True:
        with transaction.atomic():
            late = list(
                FlowRun.objects.filter(
                    state_type=S.SCHEDULED, state_name="Scheduled", next_scheduled_start_at__lt=cutoff
                )
                .order_by("next_scheduled_start_at")
                .select_for_update(skip_locked=True)[:batch_size]
            )
            for run in late:
                try:
                    set_state(
                        run,
                        S.SCHEDULED,
                        name="Late",
                        expected=S.SCHEDULED,
                        message=f"Not started {threshold:g} s after its scheduled time.",
                    )
                except StateConflict:
                    continue  # claimed meanwhile: it is not late any more
                marked += 1
        if len(late) < batch_size:
            return marked


def delete_old_runs(*, older_than: timedelta | None = None, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Delete finished runs that ended more than `older_than` ago (default: RUN_RETENTION_DAYS;
    0 keeps everything, the default), with their state history, task runs and logs. Returns
    how many runs were deleted.

    Works in batches, each its own short transaction, so a large backlog never holds long locks.
    Concurrency: a finished run changes state only by being retried as it fails, in the same
    transaction; candidates are locked (SKIP LOCKED) and re-read under the lock, so a run that
    left its finished state is never deleted."""
    if older_than is None:
        if not settings.RUN_RETENTION_DAYS:
            return 0
        older_than = timedelta(days=settings.RUN_RETENTION_DAYS)
    cutoff = (now or timezone.now()) - older_than
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                # expected_start_at narrows the scan through the (state, time) index: a run that
                # ended before the cutoff was due before it too (give or take a worker's prefetch).
                FlowRun.objects.filter(state_type__in=TERMINAL, ended_at__lt=cutoff, expected_start_at__lt=cutoff)
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:batch_size]
            )
            # Logs first, in one statement: the biggest table, with nothing hanging off it.
            Log.objects.filter(flow_run_id__in=ids).delete()
            FlowRun.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted
