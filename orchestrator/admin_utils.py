"""Shared pieces for the admin: row-by-row actions and a paginator fit for big tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property

from accounts.audit import record
from accounts.roles import Action, may
from orchestrator.core.errors import OrchestratorError


def apply_each(
    modeladmin: admin.ModelAdmin, request: Any, objects: Iterable[Any], action: Callable[[Any], Any], done: str
) -> None:
    """Run a service on each selected object; report successes once and each failure by name,
    so one finished run in a selection does not hide what happened to the others."""
    ok = 0
    for obj in objects:
        try:
            action(obj)
        except OrchestratorError as error:
            modeladmin.message_user(request, f"{obj}: {error}", messages.ERROR)
        else:
            ok += 1
    if ok:
        noun = modeladmin.model._meta.verbose_name if ok == 1 else modeladmin.model._meta.verbose_name_plural
        modeladmin.message_user(request, f"{done} {ok} {noun}.", messages.SUCCESS)


class RolePermissions:
    """Admin actions named after a role action (`allowed_permissions=("trigger",)`, "pause",
    "cancel") are offered to those whose role allows it (accounts.roles), so an operator with
    the admin's view permissions may still quick-run, pause or cancel there."""

    def has_trigger_permission(self, request: Any) -> bool:
        return may(request.user, Action.TRIGGER)

    def has_pause_permission(self, request: Any) -> bool:
        return may(request.user, Action.PAUSE)

    def has_cancel_permission(self, request: Any) -> bool:
        return may(request.user, Action.CANCEL)


class AuditedAdmin:
    """Records the admin's own add and change forms in the audit log (the fields that changed,
    before and after); its actions go through services, which record themselves."""

    def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
        def plain(value: Any) -> Any:
            return value.pk if hasattr(value, "_meta") else value

        # Only what really changed: JSON fields report a change whenever their text differs.
        fields = [
            name
            for name in form.changed_data
            if name in form.fields
            and (not change or plain(form.initial.get(name)) != plain(form.cleaned_data.get(name)))
        ]
        before = {name: plain(form.initial.get(name)) for name in fields} if change else None
        super().save_model(request, obj, form, change)  # type: ignore[misc]
        after = {name: plain(form.cleaned_data.get(name)) for name in fields}
        if fields or not change:
            record(f"{obj._meta.model_name}.{'update' if change else 'create'}", obj, before=before, after=after)

    def delete_model(self, request: Any, obj: Any) -> None:
        record(f"{obj._meta.model_name}.delete", obj)
        super().delete_model(request, obj)  # type: ignore[misc]


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL an unfiltered admin list of a huge table would COUNT(*) every row on each
    page view; use the planner's estimate once it is large. Filtered lists count for real."""

    EXACT_BELOW = 100_000

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if connection.vendor == "postgresql" and query is not None and not query.where:
            table = self.object_list.model._meta.db_table
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [table])
                row = cursor.fetchone()
            if row and row[0] >= self.EXACT_BELOW:
                return int(row[0])
        return super().count
