"""How flow-run processes reach the orchestrator: `get_client()` returns the transport the
environment selects (today the direct one; HTTP comes with the API)."""

from __future__ import annotations

from orchestrator.client.base import (
    CachedResult,
    DeploymentInfo,
    FlowRunInfo,
    LogEntry,
    OrchestratorClient,
    TaskRunInfo,
)

__all__ = [
    "CachedResult", "DeploymentInfo", "FlowRunInfo", "LogEntry", "OrchestratorClient", "TaskRunInfo", "get_client",
]


def get_client() -> OrchestratorClient:
    """The client for this process. The direct transport sets Django up from the environment
    (DJANGO_SETTINGS_MODULE, default orchestrator.settings; DATABASE_URL; ORCHESTRATOR_HOME)."""
    from orchestrator.client.direct import DirectClient

    return DirectClient()
