"""API shapes of variables and secrets. A secret's value goes in, never out (but through the
one `value` action that accounts.permissions.may_read_secrets guards)."""

from __future__ import annotations

from rest_framework import serializers

from blocks.models import Secret, Variable
from orchestrator.api import JSONField, TagsField


class VariableSerializer(serializers.ModelSerializer):
    value = JSONField(allow_null=True)

    class Meta:
        model = Variable
        fields = ["id", "name", "value", "tags", "created_at", "updated_at"]


class VariableWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    value = JSONField(allow_null=True)
    tags = TagsField(required=False)


class VariableValueSerializer(serializers.Serializer):
    value = JSONField(allow_null=True)
    tags = TagsField(required=False)


class SecretSerializer(serializers.ModelSerializer):
    class Meta:
        model = Secret
        fields = ["id", "name", "created_at", "updated_at"]


class SecretWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    value = serializers.CharField(write_only=True, trim_whitespace=False, max_length=64 * 1024)


class SecretValueInSerializer(serializers.Serializer):
    value = serializers.CharField(write_only=True, trim_whitespace=False, max_length=64 * 1024)


class SecretValueSerializer(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.CharField()
