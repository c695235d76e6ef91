"""`manage.py role add USER ROLE` (viewer, operator, admin) and `manage.py role ls`."""

from __future__ import annotations

from typing import Any

from accounts.roles import Role, add_role, users_by_role
from orchestrator.cli import ServiceCommand


class Command(ServiceCommand):
    help = "Give people a role: viewer (reads), operator (triggers, cancels, pauses), admin (everything)."

    def add_arguments(self, parser: Any) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help="Put a user in a role (out of any other role).")
        add.add_argument("user", metavar="USER")
        add.add_argument("role", metavar="ROLE", help=f"One of: {', '.join(Role.values)}.")
        actions.add_parser("ls", help="List users and their roles.")

    def do_add(self, user: str, role: str, **_: Any) -> None:
        person = add_role(user, role)
        self.stdout.write(f"{person.get_username()} is now {role}: {Role(role).label.split(': ', 1)[1]}.")

    def do_ls(self, **_: Any) -> None:
        self.table("Roles", ["User", "Role"], users_by_role())
