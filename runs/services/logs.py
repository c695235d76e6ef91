"""Flow-run and task-run logs, written in batches."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from orchestrator.core.errors import ValidationError
from runs.models import Log, TaskRun

LOG_FIELDS = ("flow_run_id", "task_run_id", "level", "logger", "message", "timestamp")


def write_logs(records: list[dict[str, Any]]) -> int:
    """Store a batch of log records (dicts with LOG_FIELDS) in as few INSERTs as the database
    allows. Engines ship their logs in batches through this, never one line per round trip.
    Raises ValidationError for a record without a flow run or a timestamp, or naming a task run
    that is not one of its flow run's (one query checks them all)."""
    for record in records:
        missing = [f for f in ("flow_run_id", "timestamp") if not record.get(f)]
        if missing:
            raise ValidationError(
                f"A log record needs {' and '.join(missing)}.", {f: ["This field is required."] for f in missing}
            )
    _check_task_runs_of_logs(records)
    rows = [
        Log(
            flow_run_id=record["flow_run_id"],
            task_run_id=record.get("task_run_id"),
            level=int(record.get("level", 20)),
            logger=str(record.get("logger", ""))[:200],
            message=storable_text(str(record.get("message", ""))),
            timestamp=record["timestamp"],
        )
        for record in records
    ]
    with transaction.atomic():  # all or nothing: a retried batch is found by its last line
        Log.objects.bulk_create(rows)
    return len(rows)


def storable_text(text: str) -> str:
    """`text` as every database stores it: PostgreSQL refuses NUL in text and no UTF-8 holds a
    lone surrogate, so a line printed with either is kept with them escaped rather than lost."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _check_task_runs_of_logs(records: list[dict[str, Any]]) -> None:
    task_run_ids = {str(r["task_run_id"]) for r in records if r.get("task_run_id")}
    if not task_run_ids:
        return
    owners = {
        str(pk): str(flow_run_id)
        for pk, flow_run_id in TaskRun.objects.filter(pk__in=task_run_ids).values_list("pk", "flow_run_id")
    }
    for record in records:
        task_run_id = record.get("task_run_id")
        if task_run_id and owners.get(str(task_run_id)) != str(record["flow_run_id"]):
            raise ValidationError(
                f"Task run {task_run_id} is not a task run of flow run {record['flow_run_id']}.",
                {"task_run": [f"No task run {task_run_id} in this flow run."]},
            )
