"""System checks for misconfiguration that would otherwise surface as confusing errors."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

# Tagged, so quick commands can run these without the URL checks (which import the whole API).
ORCHESTRATOR_TAG = "orchestrator"


@register(ORCHESTRATOR_TAG)
def check_database(app_configs: Any, **kwargs: Any) -> list:
    engine = settings.DATABASES["default"]["ENGINE"]
    supported = {"django.db.backends.sqlite3", "django.db.backends.postgresql", "orchestrator.nodb"}
    if engine not in supported:
        return [
            Error(
                f"DATABASE_URL selects {engine}, which the orchestrator does not support.",
                hint="Use sqlite:///path or postgres://user@host:5432/dbname.",
                id="orchestrator.E001",
            )
        ]
    return []


@register(deploy=True)
def check_production_defaults(app_configs: Any, **kwargs: Any) -> list:
    found = []
    if settings.CELERY_BROKER_URL.startswith("filesystem://") and settings.DATABASES["default"]["ENGINE"].endswith(
        "postgresql"
    ):
        found.append(
            Warning(
                "PostgreSQL is configured but Celery still uses the embedded filesystem broker.",
                hint="Set CELERY_BROKER_URL=redis://... or amqp://... when services run on several hosts.",
                id="orchestrator.W001",
            )
        )
    return found
