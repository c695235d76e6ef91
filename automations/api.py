"""/api/automations/, with each automation's recent firings."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.response import Response

from automations import services
from automations.models import Automation
from automations.serializers import AutomationFiringSerializer, AutomationInputSerializer, AutomationSerializer
from orchestrator.api import ReadApiViewSet

RECENT_FIRINGS = 50


class AutomationViewSet(mixins.DestroyModelMixin, ReadApiViewSet):
    queryset = Automation.objects.all()
    serializer_class = AutomationSerializer
    input_serializers = {"create": AutomationInputSerializer, "partial_update": AutomationInputSerializer}

    @extend_schema(request=AutomationInputSerializer, responses={201: AutomationSerializer})
    def create(self, request: Any) -> Response:
        return self.respond(services.create_automation(**self.parse(request)), status=201)

    @extend_schema(request=AutomationInputSerializer, responses=AutomationSerializer)
    def partial_update(self, request: Any, pk: str) -> Response:
        automation = self.get_object()
        return self.respond(services.update_automation(automation, **self.parse(request, automation).validated_data))

    @extend_schema(responses=AutomationFiringSerializer(many=True), summary=f"The last {RECENT_FIRINGS} firings")
    @action(detail=True, pagination_class=None)
    def firings(self, request: Any, pk: str) -> Response:
        firings = self.get_object().firings.select_related("state")[:RECENT_FIRINGS]
        return Response(AutomationFiringSerializer(firings, many=True).data)
