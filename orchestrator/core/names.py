"""The one rule for the names people give work pools, work queues and deployments.

A name is used in URLs (/api/work-pools/NAME/), on command lines (`--pool NAME`) and in
FLOW/DEPLOYMENT references, so it must survive all three unquoted: 1 to 100 characters, ASCII
letters, digits, `-`, `_` and `.`, starting with a letter or digit. Every surface (API, CLI,
admin, deploy, the wizard) checks names with `check_name`, through the services or the model
fields' validators.
"""

from __future__ import annotations

import re

from orchestrator.core.errors import ValidationError

NAME_MAX_LENGTH = 100
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NAME_RULE = f"use 1 to {NAME_MAX_LENGTH} letters, digits, '-', '_' or '.', starting with a letter or digit"


def name_problem(value: object) -> str | None:
    """Why `value` is not a valid name (a short clause), or None when it is one."""
    if not isinstance(value, str) or not value:
        return "it is empty"
    if len(value) > NAME_MAX_LENGTH:
        return f"it is longer than {NAME_MAX_LENGTH} characters"
    if not NAME_PATTERN.fullmatch(value):
        return NAME_RULE
    return None


def check_name(value: object, what: str = "name", *, field: str = "name") -> str:
    """`value` when it follows the naming rule; else ValidationError("Invalid work pool name
    'a b': use ...", {field: [...]}) with `what` naming the kind of thing ("work pool name")."""
    problem = name_problem(value)
    if problem is None:
        assert isinstance(value, str)
        return value
    message = f"Invalid {what} {value!r}: {problem}." if problem != "it is empty" else f"A {what} may not be empty."
    raise ValidationError(message, {field: [message]})
