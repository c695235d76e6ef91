"""What our viewsets and serializers share: the viewset base, JSON fields, who is asking."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.response import Response

from orchestrator.core.errors import ValidationError


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class JSONField(serializers.JSONField):
    """Any JSON value except strings holding NUL characters, which PostgreSQL cannot store."""

    default_error_messages = {"nul": "Strings may not contain NUL (\\u0000) characters."}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if _has_nul(value):
            self.fail("nul")
        return value


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(JSONField):
    """A JSON object (parameters, templates, variables)."""

    default_error_messages = {"not_an_object": "Expected a JSON object."}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_an_object")
        return value


class TagsField(serializers.ListField):
    child = serializers.CharField(max_length=100)


class ApiViewSet(viewsets.GenericViewSet):
    """The base of our viewsets: input and output serializers kept apart.

    `serializer_class` renders objects; `input_serializers` names, per action, the serializer
    that parses the request body. Actions parse with `self.parse(request)`, call a service and
    answer with `self.respond(obj)`."""

    input_serializers: dict[str, type[serializers.Serializer]] = {}

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return self.input_serializers.get(self.action, self.serializer_class)

    def parse(self, request: Any, instance: Any = None) -> Any:
        serializer = self.get_serializer(instance, data=request.data, partial=instance is not None)
        if instance is not None:
            refuse_unchangeable_fields(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        return serializer if instance is not None else serializer.validated_data

    def respond(self, obj: Any, status: int = 200) -> Response:
        return Response(self.serializer_class(obj, context=self.get_serializer_context()).data, status=status)


def refuse_unchangeable_fields(serializer: serializers.Serializer, data: Any) -> None:
    """An update (PATCH) naming fields its serializer cannot change (a deployment's name or
    pool, an id) is refused with a 400 naming them, rather than answered 200 with them ignored."""
    if not isinstance(data, dict):
        return
    writable = {name for name, field in serializer.fields.items() if not field.read_only}
    unchangeable = sorted(set(data) - writable)
    if unchangeable:
        allowed = ", ".join(sorted(writable))
        message = f"Cannot be changed here (changeable: {allowed})."
        raise ValidationError(
            f"These fields cannot be changed here: {', '.join(unchangeable)} (changeable: {allowed}).",
            {name: [message] for name in unchangeable},
        )


def actor(request: Any) -> str:
    """Who made an API request, for created_by and messages: api:<key name> or api:<user>."""
    if request.auth is not None and hasattr(request.auth, "prefix"):
        return f"api:{request.auth.name}"
    return f"api:{request.user.get_username()}"


class ReadApiViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """List and read; add DRF's DestroyModelMixin for a plain delete (ProtectedError is a 409)."""
