"""API shapes of flows, deployments, schedules and webhooks."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from deployments.models import Deployment, DeploymentSchedule, Flow, Webhook
from orchestrator.api import JSONObjectField, TagsField
from orchestrator.input_policy import TimestampField


class FlowSerializer(serializers.ModelSerializer):
    class Meta:
        model = Flow
        fields = ["id", "name", "description", "created_at", "updated_at"]


class DeploymentSerializer(serializers.ModelSerializer):
    flow_name = serializers.CharField(source="flow.name", read_only=True)
    full_name = serializers.CharField(read_only=True)
    work_pool = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    work_queue = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "flow",
            "flow_name",
            "name",
            "full_name",
            "description",
            "version",
            "entrypoint",
            "path",
            "parameters",
            "parameter_schema",
            "enforce_parameter_schema",
            "tags",
            "work_pool",
            "work_queue",
            "job_variables",
            "paused",
            "concurrency_limit",
            "overlap_policy",
            "max_lateness_seconds",
            "created_at",
            "updated_at",
        ]


class DeploymentUpdateSerializer(serializers.ModelSerializer):
    parameters = JSONObjectField(required=False)
    job_variables = JSONObjectField(required=False)
    tags = TagsField(required=False)

    class Meta:
        model = Deployment
        fields = [
            "description",
            "parameters",
            "tags",
            "job_variables",
            "concurrency_limit",
            "overlap_policy",
            "max_lateness_seconds",
        ]


class DeploymentScheduleSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeploymentSchedule
        fields = [
            "id",
            "slug",
            "kind",
            "cron",
            "interval_seconds",
            "anchor_at",
            "rrule",
            "timezone",
            "active",
            "parameters",
            "catchup",
            "catchup_max_runs",
            "overlap_policy",
            "max_lateness_seconds",
            "created_at",
            "updated_at",
        ]


class FlowRunCreateSerializer(serializers.Serializer):
    """The body of POST /api/deployments/{id}/runs/ (all optional)."""

    parameters = JSONObjectField(required=False, default=dict, help_text="Merged over the deployment's defaults.")
    tags = TagsField(required=False, default=list, help_text="Added to the deployment's tags.")
    name = serializers.CharField(required=False, max_length=200, help_text="Default: a generated adjective-animal.")
    scheduled_time = TimestampField(required=False, help_text="Default: now.")
    job_variables = JSONObjectField(
        required=False,
        default=dict,
        help_text="Override the deployment's job variables for this run (checked against the pool's base job template).",
    )
    idempotency_key = serializers.CharField(
        required=False, max_length=200, help_text="Or the Idempotency-Key header: a repeat returns the existing run."
    )


class WebhookSerializer(serializers.ModelSerializer):
    deployment_name = serializers.CharField(source="deployment.full_name", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Webhook
        fields = [
            "id",
            "name",
            "deployment",
            "deployment_name",
            "slug",
            "url",
            "parameter_mapping",
            "active",
            "created_at",
        ]

    def get_url(self, webhook: Webhook) -> str:
        request = self.context.get("request")
        path = webhook.get_absolute_url()
        return request.build_absolute_uri(path) if request else path


class WebhookInputSerializer(serializers.ModelSerializer):
    parameter_mapping = JSONObjectField(
        required=False,
        help_text='Parameter name -> where its value is in the JSON body: a dotted path ("$.user.name" or '
        '"user.name"); any other value is used as it is.',
    )

    class Meta:
        model = Webhook
        fields = ["name", "deployment", "parameter_mapping", "active"]


class BackfillCreateSerializer(serializers.Serializer):
    """The body of POST /api/deployments/{id}/backfill/."""

    start = serializers.DateTimeField(help_text="From this time (included).")
    end = serializers.DateTimeField(help_text="Up to this time (included).")
    schedules = serializers.ListField(
        child=serializers.SlugField(), required=False, default=list, help_text="Only these schedule slugs."
    )
    dry_run = serializers.BooleanField(required=False, default=False, help_text="List the runs; make none.")
    max_runs = serializers.IntegerField(required=False, default=100, min_value=1, help_text="Refuse to make more.")


class BackfillSlotSerializer(serializers.Serializer):
    schedule_slug = serializers.CharField()
    fire_at = serializers.DateTimeField()
    exists = serializers.BooleanField(help_text="A run for this slot existed before.")


class BackfillSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    created = serializers.SerializerMethodField()
    slots = BackfillSlotSerializer(many=True)

    def get_created(self, result: Any) -> int:
        return len(result.created)
