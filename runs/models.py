"""Flow runs, their state history, task runs and logs.

A run's current state is denormalised onto its row (state_type, state_name, state_at,
state_message) so lists never join the history; `runs.services.set_state` keeps the two
in step and is the only writer of either.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, models
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.urls import reverse

from runs.states import ACTIVE, TERMINAL, StateType


class FlowRunQuerySet(models.QuerySet["FlowRun"]):
    def with_related(self) -> FlowRunQuerySet:
        return self.select_related("flow", "deployment", "work_pool", "work_queue", "worker")

    def in_states(self, *types: StateType) -> FlowRunQuerySet:
        return self.filter(state_type__in=types)

    def unfinished(self) -> FlowRunQuerySet:
        return self.exclude(state_type__in=TERMINAL)

    def active(self) -> FlowRunQuerySet:
        """Runs holding a slot: claimed and not yet finished."""
        return self.filter(state_type__in=ACTIVE)

    def held_by(self, worker: Any) -> FlowRunQuerySet:
        """Runs `worker` claimed and has not finished (PENDING, RUNNING, CANCELLING, PAUSED)."""
        return self.filter(worker=worker, state_type__in=ACTIVE)

    def due(self, until: datetime) -> FlowRunQuerySet:
        return self.filter(state_type=StateType.SCHEDULED, next_scheduled_start_at__lte=until)

    def recent(self, since: datetime) -> FlowRunQuerySet:
        return self.filter(expected_start_at__gte=since)

    def with_tag(self, tag: str) -> FlowRunQuerySet:
        """Runs carrying `tag`. SQLite has no JSON containment lookup, so it asks json_each."""
        if connections[self.db].vendor == "postgresql":
            return self.filter(tags__contains=[tag])
        has_tag = RawSQL(
            f'EXISTS (SELECT 1 FROM json_each("{FlowRun._meta.db_table}"."tags") WHERE value = %s)',
            [tag],
            output_field=models.BooleanField(),
        )
        return self.alias(has_tag=has_tag).filter(has_tag=True)


class FlowRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    flow = models.ForeignKey("deployments.Flow", on_delete=models.CASCADE, related_name="runs")
    deployment = models.ForeignKey(
        "deployments.Deployment", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    work_pool = models.ForeignKey(
        "workpools.WorkPool", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    work_queue = models.ForeignKey(
        "workpools.WorkQueue", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    worker = models.ForeignKey(
        "workpools.Worker", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    parameters = models.JSONField(default=dict, blank=True)
    job_variables = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)

    # Current state (denormalised from the history; written only by set_state).
    state_type = models.CharField(max_length=12, choices=StateType.choices, default=StateType.SCHEDULED)
    state_name = models.CharField(max_length=40, default="Scheduled")
    state_at = models.DateTimeField()
    state_message = models.TextField(blank=True)

    expected_start_at = models.DateTimeField(help_text="When the run was first meant to start.")
    next_scheduled_start_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker may claim it (moves on a retry or a reschedule)."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    run_count = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0, help_text="Retries allowed after a failure or crash.")
    retry_delay_seconds = models.PositiveIntegerField(default=0)

    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    created_by = models.CharField(
        max_length=200, blank=True, help_text="What created it: schedule, ui:alice, api:key-name, script, ..."
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FlowRunQuerySet.as_manager()

    class Meta:
        ordering = ["-expected_start_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="flowrun_unique_idempotency_key_per_deployment",
            ),
            models.CheckConstraint(
                condition=Q(state_type__in=StateType.values), name="flowrun_state_type_valid"
            ),
        ]
        indexes = [
            # A worker's claim: due SCHEDULED runs of one queue, oldest first.
            models.Index(fields=["work_queue", "state_type", "next_scheduled_start_at"], name="flowrun_claim"),
            # Runs lists: by state and time, and by time alone.
            models.Index(fields=["state_type", "-expected_start_at"], name="flowrun_state_time"),
            models.Index(fields=["-expected_start_at"], name="flowrun_time"),
            models.Index(fields=["deployment", "-expected_start_at"], name="flowrun_deployment_time"),
            models.Index(fields=["work_pool", "-expected_start_at"], name="flowrun_pool_time"),
            models.Index(fields=["work_queue", "-expected_start_at"], name="flowrun_queue_time"),
            # Concurrency limits and the reaper look at active runs per pool/worker.
            models.Index(fields=["work_pool", "state_type"], name="flowrun_pool_state"),
            models.Index(fields=["worker", "state_type"], name="flowrun_worker_state"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("admin:runs_flowrun_change", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.state_type in TERMINAL

    @property
    def retries_left(self) -> bool:
        """Whether a failure now may be retried: a run runs at most retries + 1 times, and
        only a run that started counts (one that failed while PENDING, on an import error
        say, would fail the same way again)."""
        return 0 < self.run_count <= self.retries

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.ended_at or self.state_at) - self.started_at


class StateHistoryEntry(models.Model):
    """One entry of a state history. Append-only; ordered by id (insertion order), which
    stays right when two states are written in the same microsecond."""

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=12, choices=StateType.choices)
    name = models.CharField(max_length=40)
    timestamp = models.DateTimeField()
    message = models.TextField(blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.name} at {self.timestamp:%Y-%m-%d %H:%M:%S}"


class FlowRunState(StateHistoryEntry):
    """One entry of a flow run's state history."""

    flow_run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="states")

    class Meta:
        ordering = ["flow_run", "id"]
        indexes = [models.Index(fields=["flow_run", "id"], name="flowrunstate_run")]


class TaskRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    flow_run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="task_runs")
    name = models.CharField(max_length=200)
    task_key = models.CharField(max_length=200)
    dynamic_key = models.CharField(max_length=50, blank=True)
    cache_key = models.CharField(max_length=500, blank=True)
    cache_expires_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    state_type = models.CharField(max_length=12, choices=StateType.choices, default=StateType.PENDING)
    state_name = models.CharField(max_length=40, default="Pending")
    state_at = models.DateTimeField()
    state_message = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    run_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["flow_run", "created_at"]
        indexes = [
            models.Index(fields=["flow_run", "created_at"], name="taskrun_run"),
            models.Index(fields=["cache_key", "-ended_at"], name="taskrun_cache"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.ended_at or self.state_at) - self.started_at


class TaskRunState(StateHistoryEntry):
    """One entry of a task run's state history (Running, AwaitingRetry, Retrying, ...), so a
    retried or cached task shows what happened to it."""

    task_run = models.ForeignKey(TaskRun, on_delete=models.CASCADE, related_name="states")

    class Meta:
        ordering = ["task_run", "id"]
        indexes = [models.Index(fields=["task_run", "id"], name="taskrunstate_run")]


class Log(models.Model):
    id = models.BigAutoField(primary_key=True)
    flow_run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="logs")
    task_run = models.ForeignKey(TaskRun, on_delete=models.CASCADE, null=True, blank=True, related_name="logs")
    level = models.PositiveSmallIntegerField(default=20)
    logger = models.CharField(max_length=200, blank=True)
    message = models.TextField()
    timestamp = models.DateTimeField()

    class Meta:
        ordering = ["flow_run", "timestamp", "id"]
        indexes = [models.Index(fields=["flow_run", "timestamp", "id"], name="log_run_time")]

    def __str__(self) -> str:
        return self.message[:80]
