"""/api/audit-log/: the audit log, read-only, newest first, filtered by object, actor or action."""

from __future__ import annotations

from django_filters import rest_framework as filters
from rest_framework import serializers

from accounts.models import AuditEntry
from orchestrator.api import ReadApiViewSet


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "source", "action", "object_type", "object_id", "object_repr", "before", "after"]


class AuditEntryFilter(filters.FilterSet):
    object_type = filters.CharFilter(help_text="e.g. deployments.Deployment")
    object_id = filters.CharFilter()
    actor = filters.CharFilter(help_text="e.g. user:alice or key:ci")
    action = filters.CharFilter(help_text="e.g. deployment.pause")
    since = filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")

    class Meta:
        model = AuditEntry
        fields = ["object_type", "object_id", "actor", "action", "since"]


class AuditEntryViewSet(ReadApiViewSet):
    queryset = AuditEntry.objects.order_by("-at", "-id")
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilter
    # Ids are integers; anything else (or one too big for the column) is a 404, not a query.
    lookup_value_regex = r"[0-9]{1,18}"
