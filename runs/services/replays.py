"""Was it stored already? The questions a caller asks before trying a write again when the
connection died under the first try (the direct transport after a database restart): the
commit may have gone through with only its answer lost. Each looks for the write's own trace,
made after `since` (a time taken before the first try, on this host's clock, which the write
used too)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orchestrator.core.states import StateType, default_name
from runs.models import FlowRun, FlowRunState, Log, TaskRun, TaskRunState


def applied_flow_run_state(
    run_id: Any, to: StateType | str, *, name: str | None, message: str, since: datetime
) -> FlowRun | None:
    """The run, if a move to `to` (with this name and message) was recorded since `since`;
    else None. A retry that follows it (AwaitingRetry) was written in the same transaction."""
    to = StateType(to)
    entered = FlowRunState.objects.filter(
        flow_run_id=run_id, type=to, name=name or default_name(to), message=message, timestamp__gte=since
    )
    if not entered.exists():
        return None
    return FlowRun.objects.select_related("flow", "deployment__flow").get(pk=run_id)


def applied_task_run_state(task_run_id: Any, to: StateType | str, *, message: str, since: datetime) -> TaskRun | None:
    """The task run, if a move to `to` with this message was recorded since `since`; else None."""
    if not TaskRunState.objects.filter(
        task_run_id=task_run_id, type=StateType(to), message=message, timestamp__gte=since
    ).exists():
        return None
    return TaskRun.objects.get(pk=task_run_id)


def created_task_run(flow_run_id: Any, *, task_key: str, dynamic_key: str, since: datetime) -> TaskRun | None:
    """The task run with these keys created since `since`, if any."""
    return (
        TaskRun.objects.filter(
            flow_run_id=flow_run_id, task_key=task_key[:200], dynamic_key=dynamic_key[:50], created_at__gte=since
        )
        .order_by("-created_at")
        .first()
    )


def stored_log_batch(records: Sequence[dict[str, Any]]) -> bool:
    """Whether this batch of log records is stored. A batch is written in one transaction, all
    or nothing, so its last record tells (same run, task run, time, logger and text)."""
    if not records:
        return True
    last = records[-1]
    return Log.objects.filter(
        flow_run_id=last["flow_run_id"],
        task_run_id=last.get("task_run_id"),
        timestamp=last["timestamp"],
        logger=str(last.get("logger", ""))[:200],
        message=str(last.get("message", "")),
    ).exists()
