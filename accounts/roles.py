"""Roles: who may change what. The one permission policy for people signed in (the dashboard,
the admin, the API with a session); API keys have their scopes (accounts.permissions).

Three Django groups, made by a migration:
- viewer: reads everything, changes nothing;
- operator: also triggers runs, cancels them, pauses and resumes (deployments, pools, queues);
- admin: everything.
A superuser is an admin. A user in no role group has DEFAULT_ROLE (setting; `admin` keeps the
behaviour from before roles, `viewer` makes new accounts read-only until given a role).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import models, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils.functional import SimpleLazyObject

from accounts import audit
from orchestrator.core.errors import Forbidden, NotFound, ValidationError


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer: reads everything, changes nothing"
    OPERATOR = "operator", "Operator: triggers, cancels, pauses and resumes"
    ADMIN = "admin", "Admin: everything"


class Action(models.TextChoices):
    """What a change is, as far as roles go."""

    TRIGGER = "trigger", "trigger runs"
    CANCEL = "cancel", "cancel runs"
    PAUSE = "pause", "pause and resume"
    CHANGE = "change", "create, edit and delete"


RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
ALLOWED: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset(),
    Role.OPERATOR: frozenset({Action.TRIGGER, Action.CANCEL, Action.PAUSE}),
    Role.ADMIN: frozenset(Action),
}


def role_of(user: Any) -> Role | None:
    """The user's role (the highest of their role groups), None when not signed in."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    cached = getattr(user, "_orchestrator_role", None)
    if cached is not None:
        return Role(cached)
    names = set(user.groups.filter(name__in=Role.values).values_list("name", flat=True)) if user.pk else set()
    role = max((Role(name) for name in names), key=RANK.__getitem__, default=Role(settings.DEFAULT_ROLE))
    user._orchestrator_role = role
    return role


def may(user: Any, action: Action | str) -> bool:
    """Whether `user` may do `action`."""
    role = role_of(user)
    return role is not None and Action(action) in ALLOWED[role]


def require(user: Any, action: Action | str) -> None:
    """Raise Forbidden (a sentence naming the role) unless `user` may do `action`."""
    if not may(user, action):
        role = role_of(user)
        who = f"Your role ({role})" if role else "Signing in"
        raise Forbidden(f"{who} does not allow you to {Action(action).label}.")


def permissions_of(user: Any) -> dict[str, bool]:
    """{action: allowed} for templates: `{% if can.trigger %}`."""
    return {action.value: may(user, action) for action in Action}


def add_role(username: str, role: str) -> Any:
    """Put the user named `username` in `role`'s group, out of the other role groups, and let
    them into the admin (staff; what they may do there follows the group's permissions).
    Raises NotFound for an unknown user, ValidationError for an unknown role."""
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r} (use {', '.join(Role.values)}).", {"role": ["Unknown role."]})
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    with transaction.atomic():
        groups = {g.name: g for g in ensure_role_groups()}
        before = sorted(user.groups.filter(name__in=Role.values).values_list("name", flat=True))
        user.groups.remove(*[g for name, g in groups.items() if name != role])
        user.groups.add(groups[role])
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        audit.record("user.role", user, before={"roles": before}, after={"roles": [role]})
    return user


def users_by_role() -> list[tuple[str, str]]:
    """(username, role) of every user, superusers as admin, by name."""
    users = get_user_model().objects.order_by("username").prefetch_related("groups")
    rows = []
    for user in users:
        names = {g.name for g in user.groups.all()} & set(Role.values)
        if user.is_superuser:
            role = "admin (superuser)"
        elif names:
            role = max(names, key=lambda n: RANK[Role(n)])
        else:
            role = f"{settings.DEFAULT_ROLE} (no role: the default)"
        rows.append((user.get_username(), role))
    return rows


# The apps whose models roles cover in the admin.
ROLE_APPS = ("accounts", "automations", "deployments", "runs", "workpools")


def ensure_role_groups(sender: Any = None, **_: Any) -> list[Group]:
    """The three role groups with their admin permissions: viewer and operator may view every
    model of ours, admin may do everything. Safe to run again. post_migrate runs it once per
    migrate, for the last app (each app's permissions are made by its own post_migrate)."""
    from django.apps import apps
    from django.contrib.auth.models import Permission

    if sender is not None and sender is not list(apps.get_app_configs())[-1]:
        return []

    groups = [Group.objects.get_or_create(name=role)[0] for role in Role.values]
    ours = Permission.objects.filter(content_type__app_label__in=ROLE_APPS)
    view = list(ours.filter(codename__startswith="view_"))
    everything = list(Permission.objects.all())
    for group, perms in zip(groups, (view, view, everything)):
        group.permissions.set(perms)
    return groups


def role_required(action: Action) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A dashboard view only those whose role allows `action` may use: others get a 403 page
    saying why (the controls are hidden from them too: templates read `can`)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                require(request.user, action)
            except Forbidden as error:
                return HttpResponseForbidden(str(error), content_type="text/plain; charset=utf-8")
            return view(request, *args, **kwargs)

        return guarded

    return decorate


def role_context(request: HttpRequest) -> dict[str, Any]:
    """Template context processor: `can.trigger`, `can.cancel`, `can.pause`, `can.change`."""
    return {
        "can": SimpleLazyObject(lambda: permissions_of(request.user)),
        "role": SimpleLazyObject(lambda: role_of(request.user) or ""),
    }
