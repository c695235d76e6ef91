"""Automations: when a run of deployment X (or any run tagged T) enters state S, run deployment
Y or POST a JSON notice to a URL. Each firing is recorded once per state-history row, which is
what makes an automation fire exactly once per matching transition."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from orchestrator.core.states import StateType


class ActionKind(models.TextChoices):
    RUN_DEPLOYMENT = "run_deployment", "Run a deployment"
    NOTIFY = "notify", "POST a JSON notice to a URL"


class AutomationQuerySet(models.QuerySet["Automation"]):
    def matching(self, run: object, state_type: str) -> list[Automation]:
        """Enabled automations watching `state_type` whose deployment and tag (each optional,
        at least one set) both match `run`."""
        candidates = (
            self.filter(enabled=True, state_type=state_type)
            .filter(Q(deployment__isnull=True) | Q(deployment_id=getattr(run, "deployment_id", None)))
            .select_related("target_deployment")
        )
        tags = set(getattr(run, "tags", None) or [])
        return [a for a in candidates if not a.tag or a.tag in tags]


class Automation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    # When: a run of this deployment and/or carrying this tag enters this state.
    deployment = models.ForeignKey(
        "deployments.Deployment",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="automations",
        help_text="Watch runs of this deployment.",
    )
    tag = models.CharField(max_length=100, blank=True, help_text="Watch runs carrying this tag.")
    state_type = models.CharField(max_length=12, choices=StateType.choices, help_text="...entering this state.")
    # Then:
    action = models.CharField(max_length=20, choices=ActionKind.choices)
    target_deployment = models.ForeignKey(
        "deployments.Deployment",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="run_deployment: the deployment to run.",
    )
    parameters = models.JSONField(
        default=dict,
        blank=True,
        help_text='run_deployment: parameter name -> "$.path" into the event (e.g. '
        '"$.flow_run.parameters.name", "$.flow_run.id") or a value used as it is.',
    )
    url = models.URLField(max_length=1000, blank=True, help_text="notify: where the JSON notice is POSTed.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AutomationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="automation_name_not_empty"),
            models.CheckConstraint(
                condition=Q(deployment__isnull=False) | ~Q(tag=""),
                name="automation_watches_deployment_or_tag",
                violation_error_message="Say which runs to watch: a deployment, a tag, or both.",
            ),
            models.CheckConstraint(
                condition=(Q(action=ActionKind.RUN_DEPLOYMENT, target_deployment__isnull=False, url=""))
                | (Q(action=ActionKind.NOTIFY, target_deployment__isnull=True) & ~Q(url="")),
                name="automation_action_has_its_target",
                violation_error_message="run_deployment needs target_deployment (and no url); notify needs url "
                "(and no target_deployment).",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from orchestrator.mapping import mapping_errors

        if errors := mapping_errors(self.parameters):
            raise ValidationError({"parameters": errors})


class FiringStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    DONE = "DONE", "Done"
    FAILED = "FAILED", "Failed"


class AutomationFiring(models.Model):
    """One automation fired for one state entered (unique together: a repeat of the same
    transition, from a second hook call or process, finds the row and does nothing)."""

    id = models.BigAutoField(primary_key=True)
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="firings")
    state = models.ForeignKey("runs.FlowRunState", on_delete=models.CASCADE, related_name="+")
    flow_run = models.ForeignKey("runs.FlowRun", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=FiringStatus.choices, default=FiringStatus.PENDING)
    created_run = models.ForeignKey("runs.FlowRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["automation", "state"], name="automationfiring_once_per_state"),
        ]
        indexes = [models.Index(fields=["automation", "-id"], name="automationfiring_recent")]

    def __str__(self) -> str:
        return f"{self.automation} on {self.state_id}"
