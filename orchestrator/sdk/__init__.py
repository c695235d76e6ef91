"""The flow SDK: what a flow script imports.

    from orchestrator import flow, task, get_run_logger

    @task
    def log_message(name: str) -> None:
        get_run_logger().info(f"Hello {name}!")

    @flow
    def leonardo_dicapriflow(name: str) -> None:
        log_message(name)

    if __name__ == "__main__":
        leonardo_dicapriflow("Leo")

Importing it configures nothing. The first flow call sets Django up from the environment
(DJANGO_SETTINGS_MODULE, default orchestrator.settings), unless it already is (manage.py, the
engine, tests).
"""

from __future__ import annotations

from orchestrator.sdk.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from orchestrator.sdk.blocks import Secret, Variable
from orchestrator.sdk.context import MissingContextError, TaskRunContext, get_run_logger
from orchestrator.sdk.flows import Flow, flow
from orchestrator.sdk.pausing import PauseTimeout, pause_flow_run, suspend_flow_run
from orchestrator.sdk.results import get_flow_run_result
from orchestrator.sdk.runner import TaskRunFuture
from orchestrator.sdk.states import FlowRunStopped, State
from orchestrator.sdk.tasks import Task, task, task_input_hash

__all__ = [
    "Flow",
    "FlowRunStopped",
    "MissingContextError",
    "Secret",
    "State",
    "Task",
    "TaskRunContext",
    "TaskRunFuture",
    "flow",
    "Variable",
    "create_link_artifact",
    "create_markdown_artifact",
    "create_progress_artifact",
    "create_table_artifact",
    "get_flow_run_result",
    "PauseTimeout",
    "pause_flow_run",
    "suspend_flow_run",
    "get_run_logger",
    "task",
    "task_input_hash",
    "update_progress_artifact",
]
