"""API policy named in settings.REST_FRAMEWORK: the exception handler, pagination, throttling.

Kept apart from orchestrator.api (the viewset base), which imports DRF's views: those read
these settings at import time.

Services raise OrchestratorError subclasses; they become HTTP answers here, once:
ValidationError -> 400 with a message per field, NotFound -> 404, InvalidTransition and
StateConflict -> 409. Every error body has `detail` (a sentence); 400s also have `errors`
(field -> messages), whether the serializer or a service refused the input; 409s for a state
move also have `conflict` (which states), so the HTTP client can raise the same exception again.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import ProtectedError
from rest_framework import exceptions, pagination, status, throttling
from rest_framework.response import Response

from orchestrator.core.errors import (
    Forbidden,
    InvalidTransition,
    NotFound,
    OrchestratorError,
    StateConflict,
    ValidationError,
)


def _first_message(errors: Any) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            message = _first_message(value)
            return message if field in ("non_field_errors", "detail") else f"{field}: {message}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ValidationError):
        errors = exc.errors or {"non_field_errors": [str(exc)]}
        return Response({"detail": str(exc), "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, NotFound):
        return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, Forbidden):
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, InvalidTransition):  # StateConflict is one
        return Response({"detail": str(exc), "conflict": _conflict(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, OrchestratorError):
        return Response({"detail": str(exc), "errors": {"non_field_errors": [str(exc)]}}, status=400)
    if isinstance(exc, ProtectedError):
        names = ", ".join(sorted({str(obj) for obj in exc.protected_objects})[:5])
        return Response({"detail": f"It is still in use by: {names}."}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return Response({"detail": _first_message(errors), "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
    from rest_framework.views import exception_handler as drf_exception_handler  # imports our settings

    return drf_exception_handler(exc, context)


def _conflict(exc: InvalidTransition) -> dict[str, str]:
    if isinstance(exc, StateConflict):
        return {
            "kind": "state_conflict",
            "expected": str(exc.expected),
            "actual": str(exc.actual),
            "to_type": str(exc.to_type),
        }
    return {"kind": "invalid_transition", "from_type": str(exc.from_type), "to_type": str(exc.to_type)}


def _checked_page_size(paginator: Any, request: Any) -> int | None:
    """The page size a request asks for, checked: a value that is not a whole number of 1 or
    more is a 400 naming the parameter (DRF would silently use the default); above the
    maximum it is capped."""
    name = paginator.page_size_query_param
    raw = request.query_params.get(name) if name else None
    if raw is None or raw == "":
        return paginator.page_size
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if size < 1:
        message = f"Must be a whole number of 1 or more (at most {paginator.max_page_size}), not {raw!r}."
        raise ValidationError(f"{name}: {message}", {name: [message]})
    return min(size, paginator.max_page_size)


class PagePagination(pagination.PageNumberPagination):
    """For the small tables (pools, deployments, flows, ...): numbered pages."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Any) -> int | None:
        return _checked_page_size(self, request)


class CursorPagination(pagination.CursorPagination):
    """For the big tables (runs, logs): keyset pagination over an indexed ordering, so page
    1000 costs what page 1 does and nothing counts the table. Subclasses set `ordering`."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def get_page_size(self, request: Any) -> int | None:
        return _checked_page_size(self, request)


class KeyRateThrottle(throttling.SimpleRateThrottle):
    """One budget per API key (or per logged-in user, or per address for the rest), at
    settings.API_THROTTLE_RATE (read per request, as DRF makes a throttle per request). Worker
    keys have their own rate, API_WORKER_THROTTLE_RATE (default: none): a worker and the flow
    runs it starts call the API for every state, task run and batch of logs."""

    scope = "api"

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATE or None

    def allow_request(self, request: Any, view: Any) -> bool:
        if getattr(request.auth, "scope", None) == "worker":
            self.rate = settings.API_WORKER_THROTTLE_RATE or None
            self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Any, view: Any) -> str:
        auth = request.auth
        if auth is not None and hasattr(auth, "prefix"):
            ident = f"key:{auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"addr:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
