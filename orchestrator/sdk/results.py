"""Reading a finished run's persisted result back (a later run, a script, a notebook)."""

from __future__ import annotations

from typing import Any

from orchestrator.client import get_client
from orchestrator.core.results import read_result
from orchestrator.sdk.context import flow_run_context


def get_flow_run_result(flow_run_id: str) -> Any:
    """The return value a finished flow run persisted (`persist_result=True`), read from result
    storage. NotFound when the run has none (or its storage no longer holds it)."""
    context = flow_run_context.get()
    client = context.client if context is not None else get_client()
    run = client.read_flow_run(flow_run_id)
    return read_result(run.result_uri)[1]
