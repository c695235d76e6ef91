"""API shapes of pools, queues and workers. Input and output are separate serializers."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orchestrator.api import JSONObjectField, TagsField
from orchestrator.core.states import StateType
from runs.serializers import DeploymentInfoSerializer
from workpools.health import pool_health, queue_health, worker_health
from workpools.models import Worker, WorkPool, WorkPoolType, WorkQueue, pool_type_choices


class HealthSerializer(serializers.Serializer):
    status = serializers.CharField()
    reason = serializers.CharField()


@extend_schema_field(HealthSerializer)
class HealthField(serializers.Field):
    """{"status": ..., "reason": ...}: the verdict of a workpools.health function."""

    def __init__(self, judge: Any, **kwargs: Any) -> None:
        self.judge = judge
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, obj: Any) -> dict[str, str]:
        health = self.judge(obj)
        return {"status": health.status, "reason": health.reason}


def _pool_health(pool: WorkPool) -> Any:
    return pool_health(pool, online=getattr(pool, "online_workers", None))


class WorkPoolSerializer(serializers.ModelSerializer):
    health = HealthField(_pool_health)

    class Meta:
        model = WorkPool
        fields = [
            "id",
            "name",
            "type",
            "description",
            "concurrency_limit",
            "paused",
            "base_job_template",
            "job_variables",
            "health",
            "created_at",
            "updated_at",
        ]


class WorkPoolCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    type = serializers.ChoiceField(choices=pool_type_choices(), default=WorkPoolType.PROCESS)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    concurrency_limit = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=2**31 - 1)
    base_job_template = JSONObjectField(required=False, default=None, allow_null=True)
    job_variables = JSONObjectField(required=False, default=None, allow_null=True)


class WorkPoolUpdateSerializer(serializers.Serializer):
    """Only what is sent changes (workpools.services.update_work_pool checks it)."""

    description = serializers.CharField(required=False, allow_blank=True)
    concurrency_limit = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=2**31 - 1)
    base_job_template = JSONObjectField(required=False, allow_null=True)
    job_variables = JSONObjectField(required=False)


class WorkQueueSerializer(serializers.ModelSerializer):
    pool = serializers.SlugRelatedField(slug_field="name", read_only=True)
    health = HealthField(queue_health)

    class Meta:
        model = WorkQueue
        fields = [
            "id",
            "pool",
            "name",
            "description",
            "priority",
            "concurrency_limit",
            "paused",
            "tags",
            "last_polled_at",
            "health",
            "created_at",
            "updated_at",
        ]


class WorkQueueCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    priority = serializers.IntegerField(required=False, default=1, min_value=0, max_value=2**31 - 1)
    concurrency_limit = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=2**31 - 1)
    tags = TagsField(required=False, default=list)


class WorkQueueUpdateSerializer(serializers.ModelSerializer):
    tags = TagsField(required=False)

    class Meta:
        model = WorkQueue
        fields = ["description", "priority", "concurrency_limit", "tags"]


class WorkerSerializer(serializers.ModelSerializer):
    pool = serializers.SlugRelatedField(slug_field="name", read_only=True)
    health = HealthField(worker_health)

    class Meta:
        model = Worker
        fields = [
            "id",
            "pool",
            "name",
            "hostname",
            "pid",
            "limit",
            "started_at",
            "last_heartbeat_at",
            "stopped_at",
            "health",
        ]


# --- the worker endpoints (the HTTP transport of orchestrator.client) --------------------------


class WorkerRegisterSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    limit = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=2**31 - 1, default=None)
    queues = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        default=list,
        help_text="Names (or ids) of the queues it polls; empty: all of the pool's.",
    )
    hostname = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    pid = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**31 - 1, default=None)


class WorkerInfoSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    pool_name = serializers.CharField()
    pool_type = serializers.CharField()
    limit = serializers.IntegerField(allow_null=True)
    queue_ids = serializers.ListField(child=serializers.CharField(), allow_null=True)
    heartbeat_seconds = serializers.FloatField(help_text="Heartbeat at least this often.")
    run_heartbeat_seconds = serializers.FloatField(help_text="Flow-run processes heartbeat their run this often.")
    pool_created = serializers.BooleanField()


class ClaimSerializer(serializers.Serializer):
    queue_ids = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Claim only from these queues of the pool (default: all of them).",
    )
    prefetch_seconds = serializers.FloatField(required=False, min_value=0, max_value=86400, default=0)
    wait_seconds = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=60,
        default=0,
        help_text="When nothing is due, wait up to this long (at most CLAIM_MAX_WAIT_SECONDS) for a run to be.",
    )
    max_runs = serializers.IntegerField(
        required=False,
        min_value=1,
        allow_null=True,
        default=None,
        help_text="Hand out at most this many runs (what the worker can start before their lease runs out).",
    )


class ClaimedRunSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    deployment = DeploymentInfoSerializer(allow_null=True)
    job_variables = serializers.DictField()
    job_configuration = serializers.DictField(help_text="The pool's base job template rendered for this run.")
    configuration_error = serializers.CharField(allow_blank=True)


class ClaimedRunsSerializer(serializers.Serializer):
    runs = ClaimedRunSerializer(many=True)


class HeldRunSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    state_type = serializers.ChoiceField(choices=StateType.choices)
    state_name = serializers.CharField()
    pid = serializers.IntegerField(allow_null=True)
    hostname = serializers.CharField()
