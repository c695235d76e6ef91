"""Flows, their deployments, and deployment schedules."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import OuterRef, Prefetch, Q, Subquery
from django.urls import reverse

from deployments.schedule_times import ScheduleSpec, describe_schedule, next_fire_times
from orchestrator.core.errors import ValidationError as ServiceValidationError
from orchestrator.core.paths import check_entrypoint
from orchestrator.core.policies import OverlapPolicy
from orchestrator.validation import NameValidator


class Flow(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DeploymentQuerySet(models.QuerySet["Deployment"]):
    def with_related(self) -> DeploymentQuerySet:
        return self.select_related("flow", "work_pool", "work_queue").prefetch_related(
            Prefetch("schedules", queryset=DeploymentSchedule.objects.order_by("slug"))
        )

    def with_next_run(self) -> DeploymentQuerySet:
        """Annotate next_run_at: when the soonest SCHEDULED run may start (one index probe of
        flowrun_deployment_next per deployment)."""
        from runs.models import FlowRun

        soonest = FlowRun.objects.next_scheduled().filter(deployment=OuterRef("pk"))
        return self.annotate(next_run_at=Subquery(soonest.values("next_scheduled_start_at")[:1]))


class Deployment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=200, validators=[NameValidator("deployment name")])
    description = models.TextField(blank=True)
    version = models.CharField(max_length=100, blank=True)
    entrypoint = models.CharField(
        max_length=500, help_text="path/to/file.py:function, relative to the working directory."
    )
    path = models.CharField(max_length=1000, blank=True, help_text="Working directory the entrypoint is relative to.")
    pull_steps = models.JSONField(default=list, blank=True)
    parameters = models.JSONField(default=dict, blank=True, help_text="Default parameters.")
    parameter_schema = models.JSONField(default=dict, blank=True)
    enforce_parameter_schema = models.BooleanField(default=True)
    tags = models.JSONField(default=list, blank=True)
    work_pool = models.ForeignKey(
        "workpools.WorkPool", on_delete=models.PROTECT, null=True, blank=True, related_name="deployments"
    )
    work_queue = models.ForeignKey(
        "workpools.WorkQueue",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deployments",
        help_text="Empty: routed to the first queue of the pool whose tags match.",
    )
    job_variables = models.JSONField(default=dict, blank=True)
    paused = models.BooleanField(default=False)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    overlap_policy = models.CharField(
        max_length=16,
        choices=OverlapPolicy.choices,
        default=OverlapPolicy.ALLOW,
        help_text="What happens to a due run while another run of this deployment is still active.",
    )
    max_lateness_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="A run not started this many seconds after its scheduled time is cancelled instead "
        "(empty: runs however late).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["flow__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "name"], name="deployment_unique_name_per_flow"),
            models.CheckConstraint(condition=~Q(name=""), name="deployment_name_not_empty"),
            models.CheckConstraint(
                condition=Q(overlap_policy__in=OverlapPolicy.values), name="deployment_overlap_policy_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flow.name}/{self.name}"

    @property
    def full_name(self) -> str:
        return f"{self.flow.name}/{self.name}"

    def get_absolute_url(self) -> str:
        return reverse("deployments:detail", args=[self.pk])

    def clean(self) -> None:
        """What the admin and the API check through full_clean (deploy and the engine check the
        same through the same functions): an entrypoint stays inside its directory (no absolute
        path, no `..` out of it), and the job variables suit the work pool's base job template."""
        from workpools.infrastructure.templates import check_for_pool, field_messages

        errors: dict[str, list[str]] = {}
        try:
            check_entrypoint(self.entrypoint)
        except ServiceValidationError as error:
            errors.update(error.errors or {"entrypoint": [str(error)]})
        if self.work_pool_id:
            try:
                check_for_pool(self.work_pool, self.job_variables)
            except ServiceValidationError as error:
                errors["job_variables"] = field_messages(error, "job_variables")
        if errors:
            raise DjangoValidationError(errors)


class ScheduleKind(models.TextChoices):
    CRON = "cron", "Cron"
    INTERVAL = "interval", "Interval"
    RRULE = "rrule", "RRule"


class CatchUp(models.TextChoices):
    """What the scheduler does with fire times it missed while it was not running (it keeps
    runs ahead, so only a downtime longer than that lookahead misses any)."""

    SKIP = "skip", "Skip missed runs"
    ONCE = "once", "Run once for all missed runs"
    ALL = "all", "Run every missed run, up to a cap"


class DeploymentSchedule(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="schedules")
    slug = models.SlugField(
        max_length=100,
        help_text="Stable identity across redeploys; part of every scheduled run's key.",
    )
    kind = models.CharField(max_length=10, choices=ScheduleKind.choices)
    cron = models.CharField(max_length=200, blank=True)
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    anchor_at = models.DateTimeField(null=True, blank=True)
    rrule = models.TextField(blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    active = models.BooleanField(default=True)
    parameters = models.JSONField(default=dict, blank=True, help_text="Overrides for this schedule's runs.")
    catchup = models.CharField(
        max_length=4,
        choices=CatchUp.choices,
        default=CatchUp.SKIP,
        help_text="Runs missed while the scheduler was down: skip them, run once, or run each (up to the cap).",
    )
    catchup_max_runs = models.PositiveIntegerField(
        default=10, help_text="With 'run every missed run': at most this many, the latest ones."
    )
    overlap_policy = models.CharField(
        max_length=16,
        choices=OverlapPolicy.choices,
        blank=True,
        default="",
        help_text="For this schedule's runs; empty: the deployment's policy.",
    )
    max_lateness_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="For this schedule's runs; empty: the deployment's.",
    )
    scheduled_through_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="The scheduler has made runs for every fire time up to here (empty: start from now).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deployment", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "slug"], name="schedule_unique_slug_per_deployment"),
            models.CheckConstraint(
                condition=(Q(kind=ScheduleKind.CRON, interval_seconds__isnull=True, rrule="") & ~Q(cron=""))
                | (Q(kind=ScheduleKind.INTERVAL, interval_seconds__gt=0, cron="", rrule=""))
                | (Q(kind=ScheduleKind.RRULE, cron="", interval_seconds__isnull=True) & ~Q(rrule="")),
                name="schedule_kind_matches_fields",
            ),
            models.CheckConstraint(condition=Q(catchup__in=CatchUp.values), name="schedule_catchup_valid"),
            models.CheckConstraint(condition=Q(catchup_max_runs__gte=1), name="schedule_catchup_max_runs_positive"),
            models.CheckConstraint(
                condition=Q(overlap_policy="") | Q(overlap_policy__in=OverlapPolicy.values),
                name="schedule_overlap_policy_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.deployment} [{self.describe_definition()}]"

    def describe_definition(self) -> str:
        if self.kind == ScheduleKind.CRON:
            return f"cron {self.cron} ({self.timezone})"
        if self.kind == ScheduleKind.INTERVAL:
            return f"every {self.interval_seconds}s"
        return f"rrule {self.rrule}"

    @property
    def spec(self) -> ScheduleSpec:
        return ScheduleSpec.of(self)

    def describe(self) -> str:
        """In words, e.g. 'At 09:00, Monday through Friday (Europe/Berlin)'."""
        return describe_schedule(self.spec)

    def next_fire_times(self, count: int = 5, *, after: datetime | None = None) -> list[datetime]:
        """The next `count` fire times in the schedule's timezone."""
        return next_fire_times(self.spec, count, after=after)


def new_webhook_slug() -> str:
    return secrets.token_urlsafe(24)


class Webhook(models.Model):
    """A secret URL (/hooks/<slug>/) that creates a run of its deployment on each POST, its
    parameters taken from the JSON body through `parameter_mapping`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="webhooks")
    slug = models.CharField(
        max_length=64,
        unique=True,
        default=new_webhook_slug,
        editable=False,
        help_text="The secret part of the URL: whoever knows it can start runs.",
    )
    parameter_mapping = models.JSONField(
        default=dict,
        blank=True,
        help_text='Parameter name -> "$.path.in.body" (a value from the JSON body; "$" is the whole body) '
        "or any other value, used as it is.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=~Q(name=""), name="webhook_name_not_empty")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("webhook", args=[self.slug])

    def clean(self) -> None:
        from orchestrator.mapping import mapping_errors

        if errors := mapping_errors(self.parameter_mapping):
            raise DjangoValidationError({"parameter_mapping": errors})


class SchedulerPass(models.Model):
    """The last full scheduler pass, one row per service name (for /metrics): written once per
    pass, read by the metrics collector in any web process."""

    name = models.CharField(max_length=50, primary_key=True)
    finished_at = models.DateTimeField()
    duration_seconds = models.FloatField()
    runs_created = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} at {self.finished_at:%Y-%m-%d %H:%M:%S}: {self.duration_seconds:.3f} s"
