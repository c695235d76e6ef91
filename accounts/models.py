"""API keys: who may call the REST API, with which scope, and (for workers) on which pool.

Only a hash of each key is stored. The key's first characters (`prefix`) are kept in clear to
find the row and to tell keys apart in listings; they are not a secret on their own.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class Scope(models.TextChoices):
    READ = "read", "Read"
    TRIGGER = "trigger", "Trigger runs"
    WRITE = "write", "Write"
    WORKER = "worker", "Worker (one pool)"
    RUN = "run", "One flow run (issued by its worker)"
    METRICS = "metrics", "Metrics (scrape /metrics only)"
    SECRETS = "secrets", "Read secrets"


# read < trigger < write; worker is beside them, bound to one pool; secrets reads, and reads
# secret values too (accounts.permissions.may_read_secrets).
SCOPE_RANK = {Scope.READ: 1, Scope.TRIGGER: 2, Scope.WRITE: 3}


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, unique=True, help_text="The key's first characters, for lookup.")
    hashed_key = models.CharField(max_length=64, help_text="sha256 of the whole key, hex.")
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ)
    pool = models.ForeignKey(
        "workpools.WorkPool",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="The one pool a worker key may act on.",
    )
    flow_run = models.ForeignKey(
        "runs.FlowRun",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="run_tokens",
        help_text="The one flow run a run token may act on.",
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="After this the key no longer works.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(scope__in=Scope.values), name="apikey_scope_valid"),
            # A worker key is bound to exactly one pool; other keys to none.
            models.CheckConstraint(
                condition=(Q(scope=Scope.WORKER) & Q(pool__isnull=False))
                | (~Q(scope=Scope.WORKER) & Q(pool__isnull=True)),
                name="apikey_pool_iff_worker",
            ),
            models.CheckConstraint(condition=~Q(name=""), name="apikey_name_not_empty"),
            # A run token is bound to exactly one flow run; other keys to none.
            models.CheckConstraint(
                condition=(Q(scope=Scope.RUN) & Q(flow_run__isnull=False))
                | (~Q(scope=Scope.RUN) & Q(flow_run__isnull=True)),
                name="apikey_flow_run_iff_run",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        """Whether this key holds `scope` (read, trigger or write). Worker keys hold none of
        them: what a worker may do is decided per pool (accounts.permissions)."""
        if self.scope not in SCOPE_RANK:  # worker, run and metrics keys hold none of them
            return False
        if self.scope == Scope.SECRETS:
            return scope == Scope.READ
        return SCOPE_RANK[Scope(self.scope)] >= SCOPE_RANK[Scope(scope)]


class AuditEntry(models.Model):
    """One change made through a service: who (a person or an API key, or `system`), what, when,
    and for edits the fields before and after. Appended by accounts.audit.record; never edited."""

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(db_index=True)
    actor = models.CharField(max_length=200, help_text="user:alice, key:ci-deploys, cli:root, system")
    source = models.CharField(max_length=20, blank=True, help_text="api, dashboard, admin, cli, or empty")
    action = models.CharField(max_length=100, help_text="What was done, e.g. deployment.pause")
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["object_type", "object_id", "-at"], name="audit_object_time")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_repr}".strip()
