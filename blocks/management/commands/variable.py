"""`manage.py variable set NAME VALUE [--tag T]... | get NAME | ls | delete NAME`: the
orchestrator's variables (what flows read with Variable.get). VALUE is read as JSON when it is
JSON (`42`, `[1, 2]`, `{"a": 1}`, `"text"`), else taken as the text itself."""

from __future__ import annotations

import json
from typing import Any

from blocks import services
from blocks.models import Variable
from orchestrator.cli import ServiceCommand

LISTED = 1000


class Command(ServiceCommand):
    help = "Work with variables: set, get, ls, delete."

    def add_arguments(self, parser: Any) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        set_ = actions.add_parser("set", help="Create or overwrite a variable.")
        set_.add_argument("name")
        set_.add_argument("value", help='JSON (42, [1,2], {"a": 1}) or plain text.')
        set_.add_argument("--tag", action="append", dest="tags", help="Repeatable.")
        actions.add_parser("get", help="Print a variable's value as JSON.").add_argument("name")
        actions.add_parser("ls", help="List variables.")
        actions.add_parser("delete", help="Delete a variable.").add_argument("name")

    def do_set(self, name: str, value: str, tags: list[str] | None, **_: Any) -> None:
        variable, created = services.set_variable(name, services.parse_value(value), tags=tags)
        self.stdout.write(f"{'Created' if created else 'Updated'} variable {variable.name!r}.")

    def do_get(self, name: str, **_: Any) -> None:
        self.stdout.write(json.dumps(services.get_variable(name).value))

    def do_ls(self, **_: Any) -> None:
        rows = [
            (v.name, _short(json.dumps(v.value)), v.updated_at.isoformat(timespec="seconds"))
            for v in Variable.objects.order_by("name")[:LISTED]
        ]
        self.table("Variables", ["Name", "Value", "Updated"], rows)

    def do_delete(self, name: str, **_: Any) -> None:
        services.delete_variable(name)
        self.stdout.write(f"Deleted variable {name!r}.")


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
