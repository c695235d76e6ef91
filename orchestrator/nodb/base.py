"""No database: what settings select when ORCHESTRATOR_API_URL is set and DATABASE_URL is not
(a remote worker and the flow runs it starts). Django's dummy backend, with a message that
says why: anything that tries to query fails at once instead of creating an empty SQLite file."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.dummy import base as dummy


def refuse(*args: Any, **kwargs: Any) -> None:
    raise ImproperlyConfigured(
        "This process reaches the orchestrator over HTTP (ORCHESTRATOR_API_URL is set) and has no database; "
        "set DATABASE_URL as well, or unset ORCHESTRATOR_API_URL, to use one."
    )


class DatabaseOperations(dummy.DatabaseOperations):
    quote_name = refuse


class DatabaseWrapper(dummy.DatabaseWrapper):
    vendor = "none"
    display_name = "no database"
    _cursor = refuse
    ensure_connection = refuse
    _commit = refuse
    _savepoint_commit = refuse
    _set_autocommit = refuse
    ops_class = DatabaseOperations
