"""The orchestrator: a Django project, and the flow SDK users import.

    from orchestrator import flow, task, get_run_logger

The SDK names are loaded lazily, so importing the Django project (settings, urls) stays
cheap and never configures Django as a side effect.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "flow",
    "task",
    "get_run_logger",
    "task_input_hash",
    "get_flow_run_result",
    "State",
    "FlowRunStopped",
    "Variable",
    "Secret",
    "create_markdown_artifact",
    "create_table_artifact",
    "create_link_artifact",
    "create_progress_artifact",
    "update_progress_artifact",
    "pause_flow_run",
    "suspend_flow_run",
    "PauseTimeout",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from orchestrator import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
