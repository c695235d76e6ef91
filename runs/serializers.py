"""API shapes of flow runs, their state history, task runs and logs."""

from __future__ import annotations

from rest_framework import serializers

from runs.models import FlowRun, FlowRunState, Log, TaskRun


class FlowRunSerializer(serializers.ModelSerializer):
    flow_name = serializers.CharField(source="flow.name", read_only=True)
    work_pool = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    work_queue = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    worker = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = FlowRun
        fields = [
            "id", "name", "flow", "flow_name", "deployment", "work_pool", "work_queue", "worker",
            "parameters", "tags", "state_type", "state_name", "state_at", "state_message",
            "expected_start_at", "next_scheduled_start_at", "started_at", "ended_at", "run_count",
            "retries", "retry_delay_seconds", "idempotency_key", "created_by", "created_at", "updated_at",
        ]


class FlowRunStateSerializer(serializers.ModelSerializer):
    class Meta:
        model = FlowRunState
        fields = ["id", "type", "name", "timestamp", "message"]


class TaskRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskRun
        fields = [
            "id", "name", "task_key", "dynamic_key", "tags", "state_type", "state_name", "state_at",
            "state_message", "started_at", "ended_at", "run_count", "created_at",
        ]


class LogSerializer(serializers.ModelSerializer):
    class Meta:
        model = Log
        fields = ["id", "task_run", "level", "logger", "message", "timestamp"]
