"""Reading a finished run's persisted result back (a later run, a script, a notebook)."""

from __future__ import annotations

from typing import Any

from orchestrator.core.results import read_result
from orchestrator.sdk.context import current_client


def get_flow_run_result(flow_run_id: str) -> Any:
    """The return value a finished flow run persisted (`persist_result=True`), read from result
    storage. NotFound when the run has none (or its storage no longer holds it)."""
    run = current_client().read_flow_run(flow_run_id)
    return read_result(run.result_uri)[1]
