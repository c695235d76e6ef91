"""Riding out a lost database connection in the direct transport.

A PostgreSQL restart (or a failover, or a network blip) kills every open connection: the next
query raises OperationalError/InterfaceError, and a write in flight may or may not have been
committed. The direct transport calls the services through `call_with_retry`, which closes the
broken connection (Django opens a new one at the next query), waits with backoff and calls
again until a deadline. A call whose effect may already be stored passes `applied`: before
calling again, it asks whether the first try went through, and if so returns what it found
instead of doing it twice (a state change, a task run, a batch of logs).

Never retried inside an atomic block (a test's transaction, a caller's): the block is broken
and only its owner can roll it back.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)
T = TypeVar("T")

NOT_APPLIED: Any = object()


def is_connection_error(error: BaseException) -> bool:
    """A database error that a new connection may not have (the server went away, refused the
    connection, SQLite's busy lock) as opposed to one that the same call would hit again."""
    if isinstance(error, InterfaceError):
        return True
    if isinstance(error, OperationalError):
        return True
    return False


def _drop_connection() -> None:
    try:
        connection.close()
    except DatabaseError:
        pass  # it is broken: Django has let go of it anyway


def call_with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    applied: Callable[[], Any] | None = None,
    deadline_seconds: float | None = None,
) -> T:
    """Call `fn`; on a lost connection, reconnect and call it again with backoff (0.1 s doubling
    to 2 s, jittered) until `deadline_seconds` (default settings.DIRECT_RETRY_SECONDS) have
    passed, then raise the last error. `applied()`, called before each new try, returns
    NOT_APPLIED or the result the earlier try stored (returned as is)."""
    limit = settings.DIRECT_RETRY_SECONDS if deadline_seconds is None else deadline_seconds
    deadline = time.monotonic() + limit
    delay = 0.1
    failed = False
    while True:
        try:
            if failed and applied is not None:
                found = applied()
                if found is not NOT_APPLIED:
                    log.info("%s had gone through before the connection was lost", what)
                    return cast(T, found)
            return fn()
        except DatabaseError as error:
            if connection.in_atomic_block or not is_connection_error(error):
                raise
            if time.monotonic() + delay > deadline:
                raise
            if not failed:
                log.warning("Database connection lost during %s (%s); retrying for up to %g s", what, error, limit)
            failed = True
            _drop_connection()
            time.sleep(delay * (0.75 + random.random() / 2))
            delay = min(2.0, delay * 2)
