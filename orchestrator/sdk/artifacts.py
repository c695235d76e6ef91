"""Artifacts published from flows and tasks, shown on the run's page and listed in the API
(Prefect's names: create_markdown_artifact, create_table_artifact, create_link_artifact,
create_progress_artifact, update_progress_artifact).

    create_markdown_artifact("# Report\\n\\nAll **good**.", key="daily-report")
    create_table_artifact([{"city": "Paris", "rain": 3}], key="rain")
    progress = create_progress_artifact(0.0)
    update_progress_artifact(progress, 50.0)

Each returns the artifact's id. A key (lowercase letters, digits, dashes) makes versions: the
newest artifact under a key is its latest (`/api/artifacts/latest/?key=...`).
"""

from __future__ import annotations

from typing import Any

from orchestrator.sdk.context import MissingContextError, current_client, flow_run_context, task_run_context


def _create(type_: str, data: Any, key: str | None, description: str | None) -> str:
    task_ctx = task_run_context.get()
    flow_ctx = flow_run_context.get()
    if task_ctx is not None:
        flow_run_id, task_run_id = task_ctx.flow_run.id, task_ctx.task_run.id
    elif flow_ctx is not None:
        flow_run_id, task_run_id = flow_ctx.run.id, None
    else:
        raise MissingContextError("Artifacts are created inside a flow or task run.")
    return current_client().create_artifact(
        flow_run_id, type=type_, data=data, key=key or "", description=description or "", task_run_id=task_run_id
    )


def create_markdown_artifact(markdown: str, key: str | None = None, description: str | None = None) -> str:
    """A markdown report (shown rendered; HTML in it is shown as text)."""
    return _create("markdown", markdown, key, description)


def create_table_artifact(table: Any, key: str | None = None, description: str | None = None) -> str:
    """A table: a list of dicts (one per row), a dict of columns (lists of one length) or a list of lists."""
    return _create("table", table, key, description)


def create_link_artifact(
    link: str, link_text: str | None = None, key: str | None = None, description: str | None = None
) -> str:
    """A link (http:// or https://) to something the run made elsewhere."""
    return _create("link", {"url": link, "text": link_text or link}, key, description)


def create_progress_artifact(progress: float, key: str | None = None, description: str | None = None) -> str:
    """A progress bar from 0 to 100, updated with update_progress_artifact."""
    return _create("progress", progress, key, description)


def update_progress_artifact(artifact_id: str, progress: float) -> None:
    current_client().update_artifact(artifact_id, data=progress)
