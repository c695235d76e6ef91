"""Artifacts: what flow and task runs publish (markdown reports, tables, links, progress), with
keys whose newest artifact is the latest version. Their data is checked here for every
surface (the direct transport, the API)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from orchestrator.core.errors import NotFound, ValidationError
from runs.models import Artifact, ArtifactType, FlowRun, TaskRun

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
MAX_DATA_BYTES = 512 * 1024
MAX_TABLE_ROWS = 10_000


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(message, {field: [message]})


def normalize_table(table: Any) -> dict[str, Any]:
    """Rows as {"columns": [...], "rows": [[...], ...]} from a list of dicts (columns in order
    of appearance), a dict of columns (lists of one length) or a list of lists (no header)."""
    if isinstance(table, dict) and set(table) == {"columns", "rows"}:
        columns, rows = table["columns"], table["rows"]
        if isinstance(columns, list) and isinstance(rows, list) and all(isinstance(r, list) for r in rows):
            return {"columns": [str(c) for c in columns], "rows": rows}
    if isinstance(table, dict):
        lengths = {len(v) if isinstance(v, list) else -1 for v in table.values()}
        if -1 in lengths or len(lengths) > 1:
            raise _invalid("data", "A table given as a dict maps each column to a list, all of one length.")
        columns = [str(c) for c in table]
        n = lengths.pop() if lengths else 0
        return {"columns": columns, "rows": [[table[c][i] for c in table] for i in range(n)]}
    if isinstance(table, list) and all(isinstance(r, dict) for r in table):
        columns = list(dict.fromkeys(str(k) for row in table for k in row))
        return {"columns": columns, "rows": [[row.get(c) for c in columns] for row in table]}
    if isinstance(table, list) and all(isinstance(r, (list, tuple)) for r in table):
        width = max((len(r) for r in table), default=0)
        return {"columns": [str(i + 1) for i in range(width)], "rows": [list(r) for r in table]}
    raise _invalid("data", "A table is a list of dicts, a dict of lists, or a list of lists.")


def _check_data(type_: str, data: Any) -> Any:
    if type_ == ArtifactType.MARKDOWN:
        if not isinstance(data, str):
            raise _invalid("data", "A markdown artifact's data is text.")
        return data
    if type_ == ArtifactType.TABLE:
        table = normalize_table(data)
        if len(table["rows"]) > MAX_TABLE_ROWS:
            raise _invalid("data", f"A table artifact has at most {MAX_TABLE_ROWS} rows.")
        return table
    if type_ == ArtifactType.LINK:
        url = data.get("url") if isinstance(data, dict) else data
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(url, str) or not re.match(r"^https?://[^\s]+$", url):
            raise _invalid("data", "A link artifact's URL starts with http:// or https://.")
        return {"url": url, "text": str(text) if text else url}
    if type_ == ArtifactType.PROGRESS:
        if (
            isinstance(data, bool)
            or not isinstance(data, (int, float))
            or not math.isfinite(data)
            or not 0 <= data <= 100
        ):
            raise _invalid("data", "A progress artifact's data is a number from 0 to 100.")
        return float(data)
    raise _invalid("type", f"Unknown artifact type {type_!r} (use one of: {', '.join(ArtifactType.values)}).")


def create_artifact(
    flow_run: FlowRun, *, type: str, data: Any, key: str = "", description: str = "", task_run_id: Any = None
) -> Artifact:
    """Record an artifact of `flow_run` (and of one of its task runs). ValidationError for a
    bad key (lowercase letters, digits, dashes), an unknown type, data that does not fit the
    type, or more than 512 KiB of it."""
    key = (key or "").strip()
    if key and not KEY_PATTERN.match(key):
        raise _invalid("key", "An artifact key has up to 100 lowercase letters, digits and dashes.")
    data = _check_data(type, data)
    if len(json.dumps(data, default=str)) > MAX_DATA_BYTES:
        raise _invalid("data", f"An artifact holds at most {MAX_DATA_BYTES // 1024} KiB.")
    if task_run_id and not TaskRun.objects.filter(pk=task_run_id, flow_run=flow_run).exists():
        raise _invalid("task_run", "That task run is not one of this flow run's.")
    return Artifact.objects.create(
        flow_run=flow_run, task_run_id=task_run_id or None, key=key, type=type, data=data, description=description or ""
    )


def update_artifact(artifact: Artifact, *, data: Any) -> Artifact:
    """New data for an artifact in place: only progress artifacts are updated (others get a new
    version under their key)."""
    if artifact.type != ArtifactType.PROGRESS:
        raise _invalid("data", "Only a progress artifact is updated in place; create a new version of the others.")
    artifact.data = _check_data(artifact.type, data)
    artifact.save(update_fields=["data", "updated_at"])
    return artifact


def latest_artifact(key: str) -> Artifact:
    """The newest artifact under `key` (NotFound)."""
    found = Artifact.objects.filter(key=key).order_by("-created_at").first()
    if found is None:
        raise NotFound(f"No artifact with the key {key!r}.")
    return found
