"""Flow runs, their state history, task runs and logs.

A run's current state is denormalised onto its row (state_type, state_name, state_at,
state_message) so lists never join the history; `runs.services.set_state` keeps the two
in step and is the only writer of either.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, models
from django.db.models import Count, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncHour, TruncMinute
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from orchestrator.core.states import ACTIVE, TERMINAL, StateType


class FlowRunQuerySet(models.QuerySet["FlowRun"]):
    def with_related(self) -> FlowRunQuerySet:
        return self.select_related("flow", "deployment", "work_pool", "work_queue", "worker", "parent_flow_run")

    def for_list(self) -> FlowRunQuerySet:
        """What a row in a list of runs shows (one join fewer than with_related)."""
        return self.select_related("flow", "deployment", "work_pool", "work_queue")

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
        """SCHEDULED runs whose (next) start is at or before `until`: what a worker may claim."""
        return self.filter(state_type=StateType.SCHEDULED, next_scheduled_start_at__lte=until)

    def started_or_due(self, now: datetime, *, upcoming: bool = False) -> FlowRunQuerySet:
        """Runs that started or were due by `now` (what happened: `flowrun ls` by default); with
        `upcoming`, the complement: runs not started and meant to start after `now`."""
        happened = Q(expected_start_at__lte=now) | Q(started_at__isnull=False)
        return self.exclude(happened) if upcoming else self.filter(happened)

    def recent(self, since: datetime) -> FlowRunQuerySet:
        return self.filter(expected_start_at__gte=since)

    def between(self, since: datetime | None, until: datetime | None) -> FlowRunQuerySet:
        """Runs meant to start in [since, until); either end may be open."""
        qs = self
        if since is not None:
            qs = qs.filter(expected_start_at__gte=since)
        if until is not None:
            qs = qs.filter(expected_start_at__lt=until)
        return qs

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

    def matching(
        self,
        *,
        states: Iterable[str] = (),
        state_names: Iterable[str] = (),
        deployment: Any = None,
        pool: Any = None,
        queue: str = "",
        tag: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> FlowRunQuerySet:
        """The runs list's filters: the one query behind the dashboard's list, the API's
        /api/flow-runs/ and `flowrun ls`. `deployment` is a Deployment or its id, `pool` a
        WorkPool or its name, `queue` a queue name, `state_names` state names (Late, ...). Every filter has an index that leads with it and continues with
        expected_start_at, so a page of the newest matches reads only that page:
        flowrun_state_time, flowrun_deployment_time, flowrun_pool_time, flowrun_time (tags and
        queues are checked on the rows that index yields)."""
        qs = self
        states, names = list(states), list(state_names)
        if states and names:
            qs = qs.filter(Q(state_type__in=states) | Q(state_name__in=names))
        elif states:
            qs = qs.filter(state_type__in=states)
        elif names:
            qs = qs.filter(state_name__in=names)
        if deployment is not None:
            qs = qs.filter(deployment_id=getattr(deployment, "pk", deployment))
        if pool is not None:
            qs = qs.filter(work_pool=pool) if hasattr(pool, "pk") else qs.filter(work_pool__name=pool)
        if queue:
            qs = qs.filter(work_queue__name=queue)
        if tag:
            qs = qs.with_tag(tag)
        return qs.between(since, until)

    def late(self, now: datetime, *, after: timedelta) -> FlowRunQuerySet:
        """SCHEDULED runs whose start time passed more than `after` ago, renamed Late or not
        yet: the periodic marker may not have got to them (flowrun_scheduled_due)."""
        return self.filter(state_type=StateType.SCHEDULED, next_scheduled_start_at__lt=now - after)

    def failed_since(self, since: datetime) -> FlowRunQuerySet:
        return self.in_states(StateType.FAILED, StateType.CRASHED).recent(since)

    def next_scheduled(self) -> FlowRunQuerySet:
        """SCHEDULED runs, the soonest first (flowrun_deployment_next per deployment)."""
        return self.filter(state_type=StateType.SCHEDULED).order_by("next_scheduled_start_at", "id")

    def counts_by_hour_and_state(
        self, since: datetime, until: datetime, *, per_minute: bool = False
    ) -> list[tuple[datetime, str, int]]:
        """(hour, state_type, runs) for runs meant to start in [since, until): a bounded
        window read through flowrun_time, never a COUNT over the whole table. `per_minute`
        counts by minute instead (for the chart's finer scales over a few hours)."""
        rows = (
            self.between(since, until)
            .annotate(hour=TruncMinute("expected_start_at") if per_minute else TruncHour("expected_start_at"))
            .values_list("hour", "state_type")
            .annotate(n=Count("pk"))
            .order_by()
        )
        return [(hour, state, n) for hour, state, n in rows]

    def active_counts(self, field: str) -> dict[Any, int]:
        """Runs holding a slot per value of `field` (e.g. "work_pool_id"), for limits shown
        beside them; reads only active rows (flowrun_state_time)."""
        rows = self.active().order_by().values_list(field).annotate(n=Count("pk"))
        return {key: n for key, n in rows}

    # --- keyset pagination: newest first, by (expected_start_at, id) ------------------------

    def older_than(self, cursor: RunCursor) -> FlowRunQuerySet:
        return self.filter(expected_start_at__lte=cursor.at).exclude(expected_start_at=cursor.at, id__gte=cursor.id)

    def newer_than(self, cursor: RunCursor) -> FlowRunQuerySet:
        return self.filter(expected_start_at__gte=cursor.at).exclude(expected_start_at=cursor.at, id__lte=cursor.id)

    def keyset_page(
        self, *, after: RunCursor | None = None, before: RunCursor | None = None, size: int = 50
    ) -> RunPage:
        """One page of runs, newest first, without OFFSET or COUNT: `after` pages to older
        runs, `before` back to newer ones. Each page reads size + 1 rows through an index
        ordered by expected_start_at, so page 1 and page 10,000 cost the same."""
        if before is not None:
            rows = list(self.newer_than(before).order_by("expected_start_at", "id")[: size + 1])
            if len(rows) <= size:  # back at the newest runs: show a full first page
                return self.keyset_page(size=size)
            rows = rows[:size][::-1]
            return RunPage(rows, newer=RunCursor.of(rows[0]), older=RunCursor.of(rows[-1]))
        qs = self.older_than(after) if after is not None else self
        rows = list(qs.order_by("-expected_start_at", "-id")[: size + 1])
        has_older = len(rows) > size
        rows = rows[:size]
        return RunPage(
            rows,
            newer=RunCursor.of(rows[0]) if after is not None and rows else None,
            older=RunCursor.of(rows[-1]) if has_older else None,
        )


@dataclass(frozen=True)
class RunCursor:
    """A position in the runs list: the (expected_start_at, id) of a row, as an opaque token."""

    at: datetime
    id: uuid.UUID

    @classmethod
    def of(cls, run: FlowRun) -> RunCursor:
        return cls(run.expected_start_at, run.pk)

    def encode(self) -> str:
        raw = f"{self.at.isoformat()}|{self.id.hex}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> RunCursor:
        """Raises ValueError for anything that is not a token made by encode()."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            at_text, id_text = raw.split("|")
            at = parse_datetime(at_text)
            run_id = uuid.UUID(hex=id_text)
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"Not a page token: {token!r}") from error
        if at is None or at.tzinfo is None:
            raise ValueError(f"Not a page token: {token!r}")
        return cls(at, run_id)


@dataclass(frozen=True)
class RunPage:
    runs: list[FlowRun]
    newer: RunCursor | None
    older: RunCursor | None


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
    schedule_slug = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text="The slug of the deployment schedule that made this run; empty for runs made otherwise.",
    )
    # A subflow: the run whose flow called this one, and the task run standing for the call there.
    parent_flow_run = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="child_runs",
        help_text="The flow run that called this one as a subflow.",
    )
    parent_task_run = models.ForeignKey(
        "runs.TaskRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="child_flow_runs",
        help_text="The task run in the parent that stands for this subflow call.",
    )
    result_uri = models.CharField(
        max_length=1000, blank=True, help_text="Where the flow's persisted return value is (result storage)."
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
            models.CheckConstraint(condition=Q(state_type__in=StateType.values), name="flowrun_state_type_valid"),
            # One run per (deployment, schedule, fire time), whoever inserts it: two schedulers
            # at once insert-ignore against this. A constraint of its own rather than an
            # idempotency key built from slug and time: it cannot collide with a caller's key,
            # and its index serves "the future runs of this schedule" for deletion.
            # expected_start_at is the fire time and never changes after insert.
            models.UniqueConstraint(
                fields=["deployment", "schedule_slug", "expected_start_at"],
                condition=~Q(schedule_slug=""),
                name="flowrun_unique_schedule_slot",
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
            # A deployment's next run (the dashboard): its SCHEDULED runs by when they may start.
            models.Index(
                fields=["deployment", "next_scheduled_start_at"],
                condition=Q(state_type=StateType.SCHEDULED),
                name="flowrun_deployment_next",
            ),
            # Concurrency limits and the reaper look at active runs per pool/worker.
            models.Index(fields=["work_pool", "state_type"], name="flowrun_pool_state"),
            models.Index(fields=["worker", "state_type"], name="flowrun_worker_state"),
            # Runs waiting to start, by when they may: late marking (and due runs in general).
            models.Index(
                fields=["next_scheduled_start_at"],
                condition=Q(state_type=StateType.SCHEDULED),
                name="flowrun_scheduled_due",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("runs:detail", args=[self.pk])

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
    result_uri = models.CharField(
        max_length=1000, blank=True, help_text="Where the task's persisted return value is (result storage)."
    )
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


class ArtifactType(models.TextChoices):
    MARKDOWN = "markdown", "Markdown"
    TABLE = "table", "Table"
    LINK = "link", "Link"
    PROGRESS = "progress", "Progress"


class Artifact(models.Model):
    """Something a flow or task run published: a report (markdown), a table, a link, a progress
    bar (updated in place). Artifacts sharing a `key` are versions of one; the newest is its
    latest."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    flow_run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="artifacts")
    task_run = models.ForeignKey(TaskRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="artifacts")
    key = models.CharField(max_length=100, blank=True, help_text="Versions of one artifact share a key.")
    type = models.CharField(max_length=10, choices=ArtifactType.choices)
    data = models.JSONField(help_text="markdown: text; table: rows; link: {url, text}; progress: 0-100.")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["flow_run", "created_at"]
        indexes = [
            models.Index(fields=["flow_run", "created_at"], name="artifact_run"),
            models.Index(fields=["key", "-created_at"], name="artifact_key_latest"),
        ]

    def __str__(self) -> str:
        return self.key or f"{self.type} artifact"


class FlowRunInput(models.Model):
    """What a paused or suspended run waits for: one per pause of the run (`key`), with the JSON
    schema of the input it wants (a pydantic model's; none for a plain resume), until when it
    waits, and the input once someone gave it."""

    id = models.BigAutoField(primary_key=True)
    flow_run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="inputs")
    key = models.CharField(max_length=100)
    schema = models.JSONField(null=True, blank=True)
    description = models.TextField(blank=True)
    timeout_at = models.DateTimeField()
    value = models.JSONField(null=True, blank=True)
    provided_at = models.DateTimeField(null=True, blank=True)
    provided_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["flow_run", "id"]
        constraints = [models.UniqueConstraint(fields=["flow_run", "key"], name="flowruninput_unique_key")]
        indexes = [
            models.Index(fields=["timeout_at"], condition=Q(provided_at__isnull=True), name="flowruninput_waiting")
        ]

    def __str__(self) -> str:
        return f"{self.flow_run_id}:{self.key}"
