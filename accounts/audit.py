"""The audit log: every change made through a service, appended to one table (AuditEntry).

Who acted travels in one context variable, set by the surfaces and read here, so services need
no extra argument:
- AuditActorMiddleware: the signed-in person of a dashboard, admin or browsable-API request;
- ApiKeyAuthentication: the API key of an API request (it runs inside the view, after the
  middleware, and replaces the anonymous actor);
- ServiceCommand (manage.py commands): `cli:<login name>`.
Anything else (Celery tasks, the scheduler, workers) is `system`.

Services call `record(action, obj, before=..., after=...)` inside their transaction, so an entry
exists exactly when the change does. Retention: entries older than RUN_RETENTION_DAYS are deleted
with old runs (0 keeps everything).
"""

from __future__ import annotations

import contextvars
import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    name: str  # user:alice, key:ci, cli:root
    source: str = ""  # api, dashboard, admin, cli


SYSTEM = Actor("system")
_current: contextvars.ContextVar[Actor | Callable[[], Actor] | None] = contextvars.ContextVar(
    "audit_actor", default=None
)


def current_actor() -> Actor:
    value = _current.get()
    if callable(value):
        value = value()
        _current.set(value)
    return value or SYSTEM


@contextmanager
def acting_as(actor: Actor | Callable[[], Actor]) -> Iterator[None]:
    """Changes made inside are recorded as `actor`'s (a callable is resolved on first use)."""
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)


def set_actor(actor: Actor) -> None:
    """Replace the actor for the rest of the current request (API key authentication)."""
    _current.set(actor)


def cli_actor() -> Actor:
    try:
        name = getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        name = "unknown"
    return Actor(f"cli:{name}", "cli")


def _jsonable(values: dict[str, Any] | None) -> Any:
    if values is None:
        return None
    import json

    return json.loads(json.dumps(values, cls=DjangoJSONEncoder, default=str))


def record(
    action: str,
    obj: Any = None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    object_repr: str | None = None,
) -> AuditEntry:
    """Append one entry: `action` (noun.verb) on `obj` by the current actor, now."""
    actor = current_actor()
    meta = getattr(obj, "_meta", None)
    return AuditEntry.objects.create(
        at=timezone.now(),
        actor=actor.name[:200],
        source=actor.source,
        action=action,
        object_type=meta.label if meta is not None else "",
        object_id=str(obj.pk) if obj is not None and getattr(obj, "pk", None) is not None else "",
        object_repr=(object_repr if object_repr is not None else str(obj) if obj is not None else "")[:300],
        before=_jsonable(before),
        after=_jsonable(after),
    )


def changes(obj: Any, fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) of the `fields` about to be set on `obj` that really change."""
    before, after = {}, {}
    for name, value in fields.items():
        old = getattr(obj, name, None)
        if old != value:
            before[name], after[name] = old, value
    return before, after


def delete_old_entries(*, now: datetime | None = None) -> int:
    """Retention: delete entries older than RUN_RETENTION_DAYS (0: keep everything)."""
    if not settings.RUN_RETENTION_DAYS:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=settings.RUN_RETENTION_DAYS)
    deleted, _ = AuditEntry.objects.filter(at__lt=cutoff).delete()
    return deleted


class AuditActorMiddleware:
    """Sets the audit actor of a request from its signed-in person (looked up only if the
    request changes something); the dashboard's, the admin's and the browsable API's changes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        source = "api" if path.startswith("/api/") else "admin" if path.startswith("/admin/") else "dashboard"

        def person() -> Actor:
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                return Actor(f"user:{user.get_username()}", source)
            return Actor("anonymous", source)

        with acting_as(person):
            return self.get_response(request)
