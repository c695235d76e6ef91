"""How workers and flow-run processes reach the orchestrator: `get_client()` returns the
transport the environment selects."""

from __future__ import annotations

import importlib
import os

from orchestrator.client.base import (
    CachedResult,
    ClaimedRun,
    DeploymentInfo,
    FlowRunInfo,
    HeldRun,
    LogEntry,
    OrchestratorClient,
    Refused,
    RunInputInfo,
    TaskRunInfo,
    Unreachable,
    WorkerInfo,
)

__all__ = [
    "CachedResult",
    "ClaimedRun",
    "DeploymentInfo",
    "FlowRunInfo",
    "HeldRun",
    "LogEntry",
    "OrchestratorClient",
    "Refused",
    "RunInputInfo",
    "TaskRunInfo",
    "Unreachable",
    "WorkerInfo",
    "direct_client",
    "ensure_django",
    "get_client",
]

# The direct transport is the server answering in-process; it lives with the Django project
# (orchestrator/direct.py) and is loaded by name, so this package never imports the server.
DIRECT_TRANSPORT = "orchestrator.direct"


def ensure_django() -> None:
    """Configure Django from the environment unless something (manage.py, the test runner,
    the engine) already did: a flow script needs no set-up of its own."""
    from django.apps import apps

    if apps.ready:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    import django

    django.setup()


def get_client() -> OrchestratorClient:
    """The client for this process. With ORCHESTRATOR_API_URL (and ORCHESTRATOR_API_KEY) set, as
    a remote worker sets them for its flow runs: the HTTP transport, which needs no database and
    no Django set-up. Otherwise the direct transport, which sets Django up from the environment
    (DJANGO_SETTINGS_MODULE, default orchestrator.settings; DATABASE_URL; ORCHESTRATOR_HOME)."""
    if os.environ.get("ORCHESTRATOR_API_URL"):
        from orchestrator.client.http import HttpClient

        return HttpClient.from_environment()
    return direct_client()


def direct_client() -> OrchestratorClient:
    """The direct transport (Django configured from the environment first)."""
    ensure_django()
    client: OrchestratorClient = importlib.import_module(DIRECT_TRANSPORT).DirectClient()
    return client
