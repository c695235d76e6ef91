from __future__ import annotations

from rest_framework import serializers

from automations.models import Automation, AutomationFiring
from orchestrator.api import JSONObjectField


class AutomationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Automation
        fields = [
            "id",
            "name",
            "enabled",
            "deployment",
            "tag",
            "state_type",
            "action",
            "target_deployment",
            "parameters",
            "url",
            "created_at",
            "updated_at",
        ]


class AutomationInputSerializer(serializers.ModelSerializer):
    parameters = JSONObjectField(required=False)

    class Meta:
        model = Automation
        fields = [
            "name",
            "enabled",
            "deployment",
            "tag",
            "state_type",
            "action",
            "target_deployment",
            "parameters",
            "url",
        ]


class AutomationFiringSerializer(serializers.ModelSerializer):
    state_type = serializers.CharField(source="state.type", read_only=True)

    class Meta:
        model = AutomationFiring
        fields = [
            "id",
            "flow_run",
            "state",
            "state_type",
            "status",
            "created_run",
            "attempts",
            "last_error",
            "created_at",
            "finished_at",
        ]
