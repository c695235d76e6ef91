"""How workers and flow-run processes reach the orchestrator: `get_client()` returns the
transport the environment selects."""

from __future__ import annotations

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
    TaskRunInfo,
    Unreachable,
    WorkerInfo,
)

__all__ = [
    "CachedResult", "ClaimedRun", "DeploymentInfo", "FlowRunInfo", "HeldRun", "LogEntry", "OrchestratorClient",
    "Refused", "TaskRunInfo", "Unreachable", "WorkerInfo", "get_client",
]


def get_client() -> OrchestratorClient:
    """The client for this process. With ORCHESTRATOR_API_URL (and ORCHESTRATOR_API_KEY) set, as
    a remote worker sets them for its flow runs: the HTTP transport, which needs no database and
    no Django set-up. Otherwise the direct transport, which sets Django up from the environment
    (DJANGO_SETTINGS_MODULE, default orchestrator.settings; DATABASE_URL; ORCHESTRATOR_HOME)."""
    if os.environ.get("ORCHESTRATOR_API_URL"):
        from orchestrator.client.http import HttpClient

        return HttpClient.from_environment()
    from orchestrator.client.direct import DirectClient

    return DirectClient()
