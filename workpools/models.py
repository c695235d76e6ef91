"""Work pools, their queues, and the workers that poll them."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from orchestrator.validation import NameValidator


class WorkPoolType(models.TextChoices):
    """The built-in types; workpools.infrastructure.registry is the full list."""

    PROCESS = "process", "Process"
    DOCKER = "docker", "Docker"
    KUBERNETES = "kubernetes", "Kubernetes"


def pool_type_choices() -> list[tuple[str, str]]:
    from workpools.infrastructure.registry import pool_type_choices as choices

    return choices()


class WorkPool(models.Model):
    DEFAULT_QUEUE_NAME = "default"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True, validators=[NameValidator("work pool name")])
    type = models.CharField(max_length=30, choices=pool_type_choices, default=WorkPoolType.PROCESS)
    description = models.TextField(blank=True)
    concurrency_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many runs at once in the whole pool; empty means no limit."
    )
    paused = models.BooleanField(default=False)
    base_job_template = models.JSONField(
        default=dict,
        blank=True,
        help_text="JSON-schema `variables` and a `job_configuration` with {{ name }} placeholders; "
        "empty: the type's default (manage.py workpool get-default-base-job-template --type T).",
    )
    job_variables = models.JSONField(
        default=dict, blank=True, help_text='Defaults for every run in the pool (e.g. {"env": {...}}).'
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="workpool_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """A usable base job template (empty: the type's default), and job variables it accepts."""
        from django.core.exceptions import ValidationError as DjangoValidationError

        from orchestrator.core.errors import ValidationError
        from workpools.infrastructure.templates import (
            check_base_job_template,
            check_job_variables,
            default_base_job_template,
            field_messages,
        )

        try:
            template = (
                check_base_job_template(self.base_job_template)
                if self.base_job_template
                else (default_base_job_template(self.type))
            )
        except ValidationError as error:
            raise DjangoValidationError({"base_job_template": field_messages(error, "base_job_template")}) from None
        try:
            check_job_variables(template, self.job_variables)
        except ValidationError as error:
            raise DjangoValidationError({"job_variables": field_messages(error, "job_variables")}) from None


class WorkQueue(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pool = models.ForeignKey(WorkPool, on_delete=models.CASCADE, related_name="queues")
    name = models.CharField(max_length=100, validators=[NameValidator("work queue name")])
    description = models.TextField(blank=True)
    priority = models.PositiveIntegerField(default=1, help_text="Lower numbers are served first.")
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    tags = models.JSONField(default=list, blank=True, help_text="Serve only deployments that carry all of these tags.")
    last_polled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pool__name", "priority", "name"]
        constraints = [
            models.UniqueConstraint(fields=["pool", "name"], name="workqueue_unique_name_in_pool"),
            models.CheckConstraint(condition=~Q(name=""), name="workqueue_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.pool.name}/{self.name}"

    def serves_tags(self, tags: list[str]) -> bool:
        """A queue with a tag filter serves only deployments carrying all of its tags."""
        return set(self.tags or []).issubset(tags or [])


class Worker(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pool = models.ForeignKey(WorkPool, on_delete=models.CASCADE, related_name="workers")
    name = models.CharField(max_length=200)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    limit = models.PositiveIntegerField(null=True, blank=True, help_text="The worker's own --limit on runs at once.")
    started_at = models.DateTimeField(auto_now_add=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pool__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["pool", "name"], name="worker_unique_name_in_pool"),
        ]

    def __str__(self) -> str:
        return self.name
