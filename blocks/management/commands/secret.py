"""`manage.py secret set NAME [--value V] | ls | delete NAME`: secrets flows read with
Secret.load(NAME).get(). Without --value the value is asked for without echo (or read from
stdin when it is not a terminal). Values are never printed."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from blocks import services
from blocks.models import Secret
from orchestrator.cli import ServiceCommand


class Command(ServiceCommand):
    help = "Work with secrets: set, ls, delete (values are never shown)."

    def add_arguments(self, parser: Any) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        set_ = actions.add_parser("set", help="Create or overwrite a secret.")
        set_.add_argument("name")
        set_.add_argument("--value", help="The value (default: asked for, or read from stdin).")
        actions.add_parser("ls", help="List secrets by name.")
        actions.add_parser("delete", help="Delete a secret.").add_argument("name")

    def do_set(self, name: str, value: str | None, **_: Any) -> None:
        if value is None:
            value = getpass.getpass(f"Value of {name}: ") if sys.stdin.isatty() else sys.stdin.read().rstrip("\n")
        secret, created = services.set_secret(name, value)
        self.stdout.write(f"{'Created' if created else 'Updated'} secret {secret.name!r}.")

    def do_ls(self, **_: Any) -> None:
        rows = [(s.name, s.updated_at.isoformat(timespec="seconds")) for s in Secret.objects.order_by("name")[:1000]]
        self.table("Secrets", ["Name", "Updated"], rows)

    def do_delete(self, name: str, **_: Any) -> None:
        services.delete_secret(name)
        self.stdout.write(f"Deleted secret {name!r}.")
