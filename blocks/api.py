"""/api/variables/ and /api/secrets/, by name. Variables: read with a read key (and a worker
key, for its flow runs), written with a write key. Secrets: listed by name with a read key,
written with a write key, their values read only at /api/secrets/<name>/value/ and only by those
accounts.permissions.may_read_secrets allows."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import CanReadSecrets
from blocks import services
from blocks.models import Secret, Variable
from blocks.serializers import (
    SecretSerializer,
    SecretValueInSerializer,
    SecretValueSerializer,
    SecretWriteSerializer,
    VariableSerializer,
    VariableValueSerializer,
    VariableWriteSerializer,
)
from orchestrator.api import ApiViewSet, ReadApiViewSet

NAME = r"[^/]+"


class VariableViewSet(ReadApiViewSet):
    queryset = Variable.objects.all()
    serializer_class = VariableSerializer
    input_serializers = {"create": VariableWriteSerializer, "update": VariableValueSerializer}
    lookup_field = "name"
    lookup_value_regex = NAME
    worker_actions = ("retrieve",)
    run_actions = ("retrieve",)

    def retrieve(self, request: Any, name: str) -> Response:
        """One variable (also for a worker key: its flow runs read variables; they belong to no pool)."""
        return self.respond(services.get_variable(name))

    @extend_schema(request=VariableWriteSerializer, responses={200: VariableSerializer, 201: VariableSerializer})
    def create(self, request: Any) -> Response:
        """Create or overwrite a variable."""
        data = self.parse(request)
        variable, created = services.set_variable(data["name"], data["value"], tags=data.get("tags"))
        return self.respond(variable, status=201 if created else 200)

    @extend_schema(request=VariableValueSerializer, responses=VariableSerializer)
    def update(self, request: Any, name: str) -> Response:
        """Set the variable's value (PUT /api/variables/<name>/), creating it if need be."""
        data = self.parse(request)
        variable, _ = services.set_variable(name, data["value"], tags=data.get("tags"))
        return self.respond(variable)

    @extend_schema(responses={204: None})
    def destroy(self, request: Any, name: str) -> Response:
        services.delete_variable(name)
        return Response(status=204)


class SecretViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Secret.objects.all()
    serializer_class = SecretSerializer
    input_serializers = {"create": SecretWriteSerializer, "update": SecretValueInSerializer}
    lookup_field = "name"
    lookup_value_regex = NAME
    worker_actions = ("value",)
    run_actions = ("value",)

    @extend_schema(request=SecretWriteSerializer, responses={200: SecretSerializer, 201: SecretSerializer})
    def create(self, request: Any) -> Response:
        """Create or overwrite a secret. Its value is stored encrypted and never shown again."""
        data = self.parse(request)
        secret, created = services.set_secret(data["name"], data["value"])
        return self.respond(secret, status=201 if created else 200)

    @extend_schema(request=SecretValueInSerializer, responses=SecretSerializer)
    def update(self, request: Any, name: str) -> Response:
        data = self.parse(request)
        secret, _ = services.set_secret(name, data["value"])
        return self.respond(secret)

    @extend_schema(responses={204: None})
    def destroy(self, request: Any, name: str) -> Response:
        services.delete_secret(name)
        return Response(status=204)

    @extend_schema(responses=SecretValueSerializer)
    @action(detail=True, methods=["get"], permission_classes=[CanReadSecrets])
    def value(self, request: Any, name: str) -> Response:
        """The secret's clear value: for a flow run's credential or a key of scope `secrets`."""
        return Response({"name": name, "value": services.read_secret_value(name)})
