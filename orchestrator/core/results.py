"""Results: a flow's or task's return value persisted to result storage and read back.

Storage is any fsspec URL: a local folder by default (`$ORCHESTRATOR_HOME/results`), or what
RESULT_STORAGE names (`file:///srv/results`, `memory://results`, `s3://bucket/prefix`, ...). A
value is stored as JSON when it has a JSON form, else with cloudpickle; either way in a small
JSON envelope saying which, so a reader knows. The database holds only the value's URL.

Shared by the runtime (which writes and reads results) and the server (whose API reads JSON
results back; it never unpickles what a flow wrote).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path
from typing import Any

from orchestrator.core.errors import NotFound, OrchestratorError

STORAGE_VARIABLE = "RESULT_STORAGE"
PERSIST_VARIABLE = "PERSIST_RESULTS"
JSON, PICKLE = "json", "cloudpickle"


class ResultError(OrchestratorError):
    """A result could not be written or read (storage unreachable, a damaged file)."""


def storage_url() -> str:
    """Where results go: RESULT_STORAGE, else the `results` folder of ORCHESTRATOR_HOME."""
    url = os.environ.get(STORAGE_VARIABLE, "").strip()
    if url:
        return url.rstrip("/")
    home = os.environ.get("ORCHESTRATOR_HOME") or "~/.orchestrator"
    return (Path(home).expanduser().resolve() / "results").as_uri()


def persist_by_default() -> bool:
    """PERSIST_RESULTS=true persists every flow's and task's result unless it says otherwise."""
    return os.environ.get(PERSIST_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def serialize(value: Any) -> tuple[str, bytes]:
    """(serializer, bytes): JSON when the value has an exact JSON form, else cloudpickle."""
    try:
        text = json.dumps({"serializer": JSON, "value": value}, allow_nan=False)
        if json.loads(text)["value"] == value:  # a tuple would come back a list: pickle it
            return JSON, text.encode()
    except (TypeError, ValueError):
        pass
    import cloudpickle

    try:
        data = base64.b64encode(cloudpickle.dumps(value)).decode()
    except Exception as error:
        raise ResultError(
            f"The result ({type(value).__name__}) can be stored neither as JSON nor pickled: {error}"
        ) from error
    return PICKLE, json.dumps({"serializer": PICKLE, "data": data}).encode()


def deserialize(data: bytes, *, allow_pickle: bool = True) -> tuple[str, Any]:
    """(serializer, value) from what serialize() wrote. With allow_pickle=False a pickled
    value comes back as None (the server never unpickles)."""
    try:
        envelope = json.loads(data)
        serializer = envelope["serializer"]
        if serializer == JSON:
            return JSON, envelope["value"]
        if serializer == PICKLE:
            if not allow_pickle:
                return PICKLE, None
            import cloudpickle

            return PICKLE, cloudpickle.loads(base64.b64decode(envelope["data"]))
    except (ValueError, KeyError, TypeError) as error:
        raise ResultError(f"Not a stored result: {error}") from error
    raise ResultError(f"Unknown result serializer {serializer!r}.")


def write_result(value: Any, *, storage: str | None = None, name: str | None = None) -> str:
    """Persist `value` under `storage` (default: storage_url()) and return its URL."""
    import fsspec

    base = (storage or storage_url()).rstrip("/")
    uri = f"{base}/{name or uuid.uuid4().hex}.json"
    _, data = serialize(value)
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        parent = path.rsplit("/", 1)[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(path, "wb") as file:
            file.write(data)
    except Exception as error:  # fsspec backends raise their own kinds
        raise ResultError(f"Could not write the result to {uri}: {type(error).__name__}: {error}") from error
    return uri


def read_result(uri: str, *, allow_pickle: bool = True) -> tuple[str, Any]:
    """(serializer, value) of the result at `uri`. NotFound when nothing is there (a memory://
    result read by another process, a deleted file); ResultError when it cannot be read."""
    import fsspec

    if not uri:
        raise NotFound("This run has no persisted result (persist_result was off, or it has not completed).")
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        with fs.open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise NotFound(
            f"The result at {uri} is gone (memory:// results live only in the process that wrote them)."
        ) from None
    except Exception as error:
        raise ResultError(f"Could not read the result at {uri}: {type(error).__name__}: {error}") from error
    return deserialize(data, allow_pickle=allow_pickle)
