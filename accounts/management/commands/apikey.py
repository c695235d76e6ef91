"""`manage.py apikey create NAME [--scope read|trigger|write|worker|metrics] [--pool POOL]`,
`manage.py apikey ls`, `manage.py apikey revoke NAME`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiKey, Scope
from accounts.services import create_api_key, revoke_api_key
from orchestrator.core.errors import OrchestratorError
from workpools.services import get_work_pool


class Command(BaseCommand):
    help = "Create, list and revoke API keys."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        create = sub.add_parser("create", help="Create a key and print it (once).")
        create.add_argument("name")
        create.add_argument("--scope", default=Scope.READ, choices=Scope.values)
        create.add_argument("--pool", help="The work pool a worker key is bound to.")
        sub.add_parser("ls", help="List keys (never the keys themselves).")
        revoke = sub.add_parser("revoke", help="Revoke a key by name.")
        revoke.add_argument("name")

    def handle(self, *args: Any, verb: str, **options: Any) -> None:
        try:
            getattr(self, f"handle_{verb}")(**options)
        except OrchestratorError as error:
            raise CommandError(str(error)) from None

    def handle_create(self, *, name: str, scope: str, pool: str | None, **options: Any) -> None:
        key, token = create_api_key(name, scope=scope, pool=get_work_pool(pool) if pool else None)
        bound = f" on pool {key.pool.name!r}" if key.pool else ""
        self.stdout.write(self.style.SUCCESS(f"Created API key {key.name!r} with scope {key.scope}{bound}."))
        self.stdout.write(token)
        self.stdout.write("Store it now: it is shown only this once. Send it as 'Authorization: Bearer <key>'.")

    def handle_ls(self, **options: Any) -> None:
        keys = list(ApiKey.objects.select_related("pool"))
        if not keys:
            self.stdout.write("No API keys. Create one: manage.py apikey create NAME --scope read")
            return
        rows = [("NAME", "PREFIX", "SCOPE", "POOL", "CREATED", "LAST USED", "STATUS")]
        for key in keys:
            rows.append(
                (
                    key.name,
                    key.prefix + "…",
                    key.scope,
                    key.pool.name if key.pool else "-",
                    f"{key.created_at:%Y-%m-%d %H:%M}",
                    f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never",
                    f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())

    def handle_revoke(self, *, name: str, **options: Any) -> None:
        key = revoke_api_key(name)
        self.stdout.write(f"Revoked API key {key.name!r}; requests with it now get 401.")
