"""The dependencies the web app needs, checked one by one for /healthz and the outage page:
the database and the Celery broker."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import DatabaseError, connection

# Seconds a client is told to wait before trying again while a dependency is down.
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Check:
    ok: bool
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"ok": True} if self.ok else {"ok": False, "error": self.error}


def check_database() -> Check:
    """A `SELECT 1` on the default database."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        connection.close_if_unusable_or_obsolete()
        return Check(False, _one_line(error))
    return Check(True)


def check_broker(timeout: float = 3.0) -> Check:
    """A connection to the Celery broker (Redis, RabbitMQ, or the embedded filesystem one)."""
    from orchestrator.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    except Exception as error:  # kombu raises the transport's own errors
        return Check(False, _one_line(error))
    return Check(True)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
