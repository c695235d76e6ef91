"""API shapes of flow runs, their state history, task runs and logs."""

from __future__ import annotations

from rest_framework import serializers

from orchestrator.api import JSONField, JSONObjectField, TagsField
from orchestrator.core.states import StateType
from orchestrator.input_policy import TimestampField
from runs.models import Artifact, ArtifactType, FlowRun, FlowRunState, Log, TaskRun


class FlowRunSerializer(serializers.ModelSerializer):
    flow_name = serializers.CharField(source="flow.name", read_only=True)
    work_pool = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    work_queue = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    worker = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = FlowRun
        fields = [
            "id",
            "name",
            "flow",
            "flow_name",
            "deployment",
            "work_pool",
            "work_queue",
            "worker",
            "parameters",
            "tags",
            "state_type",
            "state_name",
            "state_at",
            "state_message",
            "expected_start_at",
            "next_scheduled_start_at",
            "started_at",
            "ended_at",
            "run_count",
            "retries",
            "retry_delay_seconds",
            "idempotency_key",
            "created_by",
            "created_at",
            "updated_at",
            "parent_flow_run",
            "parent_task_run",
            "result_uri",
        ]


class FlowRunStateSerializer(serializers.ModelSerializer):
    class Meta:
        model = FlowRunState
        fields = ["id", "type", "name", "timestamp", "message"]


class TaskRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskRun
        fields = [
            "id",
            "name",
            "task_key",
            "dynamic_key",
            "tags",
            "state_type",
            "state_name",
            "state_at",
            "state_message",
            "started_at",
            "ended_at",
            "run_count",
            "created_at",
        ]


class LogSerializer(serializers.ModelSerializer):
    class Meta:
        model = Log
        fields = ["id", "task_run", "level", "logger", "message", "timestamp"]


# --- what workers and engines send and get (the HTTP transport of orchestrator.client) ---------
# The output serializers render the client's records (runs/records.py, workpools/records.py), field for
# field, so both transports carry the same data.

MAX_INT = 2**31 - 1


class DeploymentInfoSerializer(serializers.Serializer):
    id = serializers.CharField()
    full_name = serializers.CharField()
    entrypoint = serializers.CharField()
    path = serializers.CharField()
    pull_steps = serializers.ListField(child=serializers.DictField())


class FlowRunInfoSerializer(serializers.Serializer):
    """A run as the engine needs it: parameters, retries, and its deployment's code location."""

    id = serializers.CharField()
    name = serializers.CharField()
    flow_name = serializers.CharField()
    state_type = serializers.ChoiceField(choices=StateType.choices)
    state_name = serializers.CharField()
    state_message = serializers.CharField()
    parameters = serializers.DictField()
    run_count = serializers.IntegerField()
    retries = serializers.IntegerField()
    retry_delay_seconds = serializers.IntegerField()
    next_scheduled_start_at = serializers.DateTimeField(allow_null=True)
    worker_id = serializers.CharField(allow_null=True)
    deployment = DeploymentInfoSerializer(allow_null=True)
    parent_flow_run_id = serializers.CharField(allow_null=True)
    parent_task_run_id = serializers.CharField(allow_null=True)
    result_uri = serializers.CharField(allow_blank=True)


class SetStateSerializer(serializers.Serializer):
    state_type = serializers.ChoiceField(choices=StateType.choices)
    expected = serializers.ChoiceField(
        choices=StateType.choices, help_text="The state the caller believes the run is in (compare-and-swap)."
    )
    name = serializers.CharField(
        max_length=40,
        required=False,
        allow_blank=True,
        default="",
        help_text="A name of the state (default: its usual one).",
    )
    message = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class FlowRunSetStateSerializer(SetStateSerializer):
    retry = serializers.BooleanField(
        required=False, default=True, help_text="A failure with retries left goes on to AwaitingRetry."
    )


class RetriesSerializer(serializers.Serializer):
    retries = serializers.IntegerField(min_value=0, max_value=MAX_INT)
    retry_delay_seconds = serializers.FloatField(min_value=0, max_value=MAX_INT)


class RunProcessSerializer(serializers.Serializer):
    pid = serializers.IntegerField(min_value=1, max_value=MAX_INT)
    hostname = serializers.CharField(max_length=255, allow_blank=True)


class AliveSerializer(serializers.Serializer):
    alive = serializers.BooleanField(help_text="False: the run is no longer PENDING/RUNNING; stop it.")


class TaskRunCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    task_key = serializers.CharField(max_length=200)
    dynamic_key = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")
    tags = TagsField(required=False, default=list)


class TaskRunSetStateSerializer(SetStateSerializer):
    result = JSONField(required=False, allow_null=True, help_text="Stored with the task run when present.")
    cache_key = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    cache_expires_at = TimestampField(required=False, allow_null=True, default=None)
    result_uri = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class CachedResultSerializer(serializers.Serializer):
    task_run_id = serializers.CharField()
    task_run_name = serializers.CharField()
    value = JSONField(allow_null=True)
    result_uri = serializers.CharField(allow_blank=True)


class SubflowRunCreateSerializer(serializers.Serializer):
    flow_name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    parameters = JSONObjectField(required=False, default=dict)
    task_key = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    dynamic_key = serializers.CharField(max_length=50, required=False, allow_blank=True, default="0")


class ResultLocationSerializer(serializers.Serializer):
    result_uri = serializers.CharField(max_length=1000)


class FlowRunResultSerializer(serializers.Serializer):
    result_uri = serializers.CharField()
    serializer = serializers.CharField(help_text="json, or cloudpickle (then value is null: read it with the SDK).")
    value = JSONField(allow_null=True)


class LogCreateSerializer(serializers.Serializer):
    task_run = serializers.UUIDField(required=False, allow_null=True, default=None)
    level = serializers.IntegerField(min_value=0, max_value=100, default=20)
    logger = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    message = serializers.CharField(allow_blank=True, trim_whitespace=False)
    timestamp = TimestampField()


class LogsStoredSerializer(serializers.Serializer):
    stored = serializers.IntegerField()


class RunTokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as 'Authorization: Bearer <token>'; shown only here.")
    expires_at = serializers.DateTimeField()


class ArtifactSerializer(serializers.ModelSerializer):
    data = JSONField(allow_null=True)

    class Meta:
        model = Artifact
        fields = ["id", "flow_run", "task_run", "key", "type", "data", "description", "created_at", "updated_at"]


class ArtifactCreateSerializer(serializers.Serializer):
    flow_run = serializers.UUIDField()
    task_run = serializers.UUIDField(required=False, allow_null=True, default=None)
    key = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    type = serializers.ChoiceField(choices=ArtifactType.choices)
    data = JSONField(allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)


class ArtifactUpdateSerializer(serializers.Serializer):
    data = JSONField(allow_null=True)


class PauseSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=100)
    schema = JSONObjectField(required=False, allow_null=True, default=None)
    timeout_seconds = serializers.FloatField(min_value=0.001, max_value=30 * 24 * 3600, default=3600)
    suspend = serializers.BooleanField(default=False)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)


class RunInputSerializer(serializers.Serializer):
    key = serializers.CharField()
    provided = serializers.BooleanField()
    value = JSONField(allow_null=True)
    state_type = serializers.ChoiceField(choices=StateType.choices)
    state_name = serializers.CharField()


class RunInputQuery(serializers.Serializer):
    key = serializers.CharField(max_length=100)


class ResumeSerializer(serializers.Serializer):
    input = JSONField(required=False, allow_null=True, default=None, help_text="The input the paused flow asks for.")
