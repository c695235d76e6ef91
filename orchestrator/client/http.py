"""The HTTP transport: the client interface over the orchestrator's REST API, with a worker's API
key. For workers (and the flow runs they start) on machines that hold no database credentials:
the hybrid model, where only the worker connects out and nothing connects in to it.

It opens no database connection and needs no Django set-up: plain `requests`, one session per
thread. Each answer maps back to the exceptions the direct transport raises (400 ValidationError,
404 NotFound, 409 StateConflict/InvalidTransition, 401/403 Refused), so the worker loop and the
engine behave the same on both. Transient failures (no connection, a timeout, 429, 5xx) are
retried with backoff for up to `retry_seconds`, each retry logged, then raised as Unreachable.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import pydantic
import requests

from orchestrator.client.base import (
    CachedResult,
    ClaimedRun,
    FlowRunInfo,
    HeldRun,
    LogEntry,
    OrchestratorClient,
    Refused,
    RunInputInfo,
    TaskRunInfo,
    Unreachable,
    WorkerInfo,
)
from orchestrator.core.errors import InvalidTransition, NotFound, OrchestratorError, StateConflict, ValidationError

log = logging.getLogger(__name__)
T = TypeVar("T")

URL_VARIABLE, KEY_VARIABLE = "ORCHESTRATOR_API_URL", "ORCHESTRATOR_API_KEY"
RETRYABLE = {429, 500, 502, 503, 504}
# Requests stay well under the orchestrator's body limit (API_MAX_BODY_BYTES, 1 MiB by default):
# a batch of logs goes in as many requests as that takes, and a huge line is cut.
MAX_BODY_BYTES = 512 * 1024
MAX_LOG_MESSAGE_CHARS = 64 * 1024


def api_root(url: str) -> str:
    """The API's root from the orchestrator's URL: http://host:8000 and http://host:8000/api/
    both give http://host:8000/api."""
    url = url.strip().rstrip("/")
    return url if url.endswith("/api") else f"{url}/api"


class HttpClient(OrchestratorClient):
    name = "http"

    def __init__(self, url: str, api_key: str, *, timeout: float = 30.0, retry_seconds: float = 60.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise OrchestratorError(f"The orchestrator's URL must start with http:// or https:// (got {url!r}).")
        if not api_key.strip():
            raise OrchestratorError("An API key is needed to reach the orchestrator over HTTP.")
        self.url = url
        self.root = api_root(url)
        self.api_key = api_key.strip()
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self._local = threading.local()

    @classmethod
    def from_environment(cls) -> HttpClient:
        """The client a flow-run process uses when its worker passed ORCHESTRATOR_API_URL and
        ORCHESTRATOR_API_KEY."""
        url, key = os.environ.get(URL_VARIABLE, ""), os.environ.get(KEY_VARIABLE, "")
        if not key:
            raise OrchestratorError(f"{URL_VARIABLE} is set but {KEY_VARIABLE} is not: the HTTP transport needs both.")
        return cls(url, key)

    def environment(self) -> dict[str, str]:
        return {URL_VARIABLE: self.url, KEY_VARIABLE: self.api_key}

    # --- workers ---
    def register_worker(
        self,
        pool: str,
        *,
        name: str,
        limit: int | None = None,
        queues: list[str] | None = None,
        create_pool: bool = True,
        hostname: str = "",
        pid: int | None = None,
    ) -> WorkerInfo:
        # Fails at once rather than retrying: the worker is starting, and a wrong URL or key
        # should be one line on the terminal, not a minute of waiting.
        body = {"name": name, "limit": limit, "queues": queues or [], "hostname": hostname, "pid": pid}
        data = self._request("POST", f"/work-pools/{_q(pool)}/workers/", json=body, retry=False)
        return _record(WorkerInfo, data)

    def heartbeat_worker(self, worker: WorkerInfo) -> None:
        self._request("POST", f"{_worker_path(worker)}heartbeat/")

    def mark_worker_stopped(self, worker: WorkerInfo) -> None:
        self._request("POST", f"{_worker_path(worker)}stopped/")

    def claim_runs(
        self,
        worker: WorkerInfo,
        *,
        prefetch_seconds: float = 0.0,
        wait_seconds: float = 0.0,
        max_runs: int | None = None,
    ) -> list[ClaimedRun]:
        body = {"queue_ids": worker.queue_ids, "prefetch_seconds": prefetch_seconds, "wait_seconds": wait_seconds}
        if max_runs is not None:
            body["max_runs"] = max_runs
        data = self._request("POST", f"{_worker_path(worker)}claim/", json=body, timeout=self.timeout + wait_seconds)
        return [_record(ClaimedRun, run) for run in data["runs"]]

    def read_held_runs(self, worker: WorkerInfo, *, states: list[str]) -> list[HeldRun]:
        data = self._request("GET", f"{_worker_path(worker)}runs/", params={"state": states})
        return [_record(HeldRun, run) for run in data]

    def record_run_process(self, run_id: str, *, pid: int, hostname: str) -> None:
        self._request("POST", f"/flow-runs/{_q(run_id)}/process/", json={"pid": pid, "hostname": hostname})

    # --- flow runs ---
    def issue_run_token(self, run_id: str) -> str:
        return str(self._request("POST", f"/flow-runs/{_q(run_id)}/token/")["token"])

    def read_flow_run(self, run_id: str) -> FlowRunInfo:
        return _record(FlowRunInfo, self._request("GET", f"/flow-runs/{_q(run_id)}/execution/"))

    def create_adhoc_flow_run(self, flow_name: str, *, description: str, parameters: dict[str, Any]) -> FlowRunInfo:
        raise OrchestratorError(
            f"Flow {flow_name!r} was called as a function, which makes an ad-hoc flow run; over the HTTP "
            f"transport ({URL_VARIABLE}) that is not supported yet: run it as a deployment, or without "
            f"{URL_VARIABLE} against the orchestrator's database."
        )

    def set_flow_run_state(
        self,
        run_id: str,
        state_type: str,
        *,
        expected: str,
        name: str | None = None,
        message: str = "",
        retry: bool = True,
    ) -> FlowRunInfo:
        body = {
            "state_type": state_type,
            "expected": expected,
            "name": name or "",
            "message": _text(message),
            "retry": retry,
        }
        try:
            data = self._request("POST", f"/flow-runs/{_q(run_id)}/set-state/", json=body)
        except StateConflict as conflict:
            if _won_before(conflict, state_type):
                return self.read_flow_run(run_id)
            raise
        return _record(FlowRunInfo, data)

    def create_subflow_run(
        self,
        parent_run_id: str,
        flow_name: str,
        *,
        description: str,
        parameters: dict[str, Any],
        task_key: str,
        dynamic_key: str,
    ) -> FlowRunInfo:
        body = {
            "flow_name": flow_name,
            "description": _text(description),
            "parameters": parameters,
            "task_key": task_key,
            "dynamic_key": dynamic_key,
        }
        return _record(FlowRunInfo, self._request("POST", f"/flow-runs/{_q(parent_run_id)}/subflow-runs/", json=body))

    def record_flow_run_result(self, run_id: str, *, result_uri: str) -> None:
        self._request("POST", f"/flow-runs/{_q(run_id)}/result-location/", json={"result_uri": result_uri})

    def pause_flow_run(
        self,
        run_id: str,
        *,
        key: str,
        schema: dict[str, Any] | None,
        timeout_seconds: float,
        suspend: bool,
        description: str = "",
    ) -> RunInputInfo:
        body = {
            "key": key,
            "schema": schema,
            "timeout_seconds": timeout_seconds,
            "suspend": suspend,
            "description": _text(description),
        }
        return _record(RunInputInfo, self._request("POST", f"/flow-runs/{_q(run_id)}/pause/", json=body))

    def read_flow_run_input(self, run_id: str, *, key: str) -> RunInputInfo:
        return _record(RunInputInfo, self._request("GET", f"/flow-runs/{_q(run_id)}/input/", params={"key": key}))

    def set_flow_run_retries(self, run_id: str, *, retries: int, retry_delay_seconds: float) -> None:
        body = {"retries": retries, "retry_delay_seconds": retry_delay_seconds}
        self._request("POST", f"/flow-runs/{_q(run_id)}/retries/", json=body)

    def heartbeat_flow_run(self, run_id: str) -> bool:
        return bool(self._request("POST", f"/flow-runs/{_q(run_id)}/heartbeat/")["alive"])

    # --- task runs ---
    def create_task_run(
        self, flow_run_id: str, *, name: str, task_key: str, dynamic_key: str, tags: list[str]
    ) -> TaskRunInfo:
        body = {"name": name, "task_key": task_key, "dynamic_key": dynamic_key, "tags": tags}
        return _record(TaskRunInfo, self._request("POST", f"/flow-runs/{_q(flow_run_id)}/task-runs/", json=body))

    def set_task_run_state(
        self,
        task_run_id: str,
        state_type: str,
        *,
        expected: str,
        name: str | None = None,
        message: str = "",
        result: Any = None,
        store_result: bool = False,
        cache_key: str = "",
        cache_expires_at: datetime | None = None,
        result_uri: str = "",
    ) -> TaskRunInfo:
        body: dict[str, Any] = {
            "state_type": state_type,
            "expected": expected,
            "name": name or "",
            "message": _text(message),
            "cache_key": cache_key,
            "cache_expires_at": cache_expires_at.isoformat() if cache_expires_at else None,
            "result_uri": result_uri,
        }
        if store_result:
            body["result"] = result
        path = f"/task-runs/{_q(task_run_id)}/"
        try:
            data = self._request("POST", f"{path}set-state/", json=body)
        except StateConflict as conflict:
            if _won_before(conflict, state_type):
                return _record(TaskRunInfo, self._request("GET", path))
            raise
        return _record(TaskRunInfo, data)

    def read_task_run(self, task_run_id: str) -> TaskRunInfo:
        return _record(TaskRunInfo, self._request("GET", f"/task-runs/{_q(task_run_id)}/"))

    def read_cached_result(self, cache_key: str) -> CachedResult | None:
        data = self._request("GET", "/task-runs/cached/", params={"cache_key": cache_key})
        return None if data is None else _record(CachedResult, data)

    # --- artifacts ---
    def create_artifact(
        self,
        flow_run_id: str,
        *,
        type: str,
        data: Any,
        key: str = "",
        description: str = "",
        task_run_id: str | None = None,
    ) -> str:
        body = {
            "flow_run": flow_run_id,
            "task_run": task_run_id,
            "type": type,
            "data": data,
            "key": key,
            "description": _text(description),
        }
        return str(self._request("POST", "/artifacts/", json=body)["id"])

    def update_artifact(self, artifact_id: str, *, data: Any) -> None:
        self._request("PATCH", f"/artifacts/{_q(artifact_id)}/", json={"data": data})

    # --- variables and secrets ---
    def read_variable(self, name: str) -> tuple[bool, Any]:
        try:
            return True, self._request("GET", f"/variables/{_q(name)}/")["value"]
        except NotFound:
            return False, None

    def read_secret(self, name: str) -> str:
        return str(self._request("GET", f"/secrets/{_q(name)}/value/")["value"])

    # --- logs ---
    def send_logs(self, entries: list[LogEntry]) -> None:
        by_run: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            message = _text(entry.message)
            if len(message) > MAX_LOG_MESSAGE_CHARS:
                message = (
                    message[:MAX_LOG_MESSAGE_CHARS] + f"... [{len(message) - MAX_LOG_MESSAGE_CHARS} characters cut]"
                )
            by_run.setdefault(entry.flow_run_id, []).append(
                {
                    "task_run": entry.task_run_id,
                    "level": entry.level,
                    "logger": entry.logger,
                    "message": message,
                    "timestamp": entry.timestamp.isoformat(),
                }
            )
        for run_id, records in by_run.items():
            for chunk in _chunks(records, MAX_BODY_BYTES):
                self._request("POST", f"/flow-runs/{_q(run_id)}/logs/", json=chunk)

    def release_thread(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    # --- the wire ---
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.api_key}"
            session.headers["User-Agent"] = "orchestrator-client"
        return session

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        timeout: float | None = None,
        retry: bool = True,
    ) -> Any:
        """One API call: its JSON answer (None for an empty one), or the error it maps to."""
        url = self.root + path
        deadline = time.monotonic() + (self.retry_seconds if retry else 0.0)
        delay, attempt = 0.5, 0
        while True:
            attempt += 1
            try:
                response = self._session().request(
                    method, url, json=json, params=params, timeout=timeout or self.timeout
                )
            except requests.RequestException as error:
                problem = f"Cannot reach the orchestrator at {self.url}: {_reason(error)}"
                wait = delay
            else:
                if response.status_code in RETRYABLE:
                    problem = f"The orchestrator at {self.url} answered {response.status_code} {response.reason}"
                    wait = _retry_after(response) or delay
                elif response.ok and response.status_code != 204 and not response.content:
                    # Only a broken connection cuts an answer that should have a body.
                    problem, wait = f"The answer from the orchestrator at {self.url} was cut off", delay
                else:
                    return _answer(response, after_retry=attempt > 1)
            if time.monotonic() + wait > deadline:
                raise Unreachable(problem)
            log.warning("%s; retrying in %g s.", problem, wait)
            time.sleep(wait)
            delay = min(delay * 2, 10.0)


def _text(text: str) -> str:
    """Text as the API takes it: no NUL characters (PostgreSQL cannot store them)."""
    return text.replace("\x00", "\ufffd")


def _q(part: str) -> str:
    return quote(str(part), safe="")


def _worker_path(worker: WorkerInfo) -> str:
    return f"/work-pools/{_q(worker.pool_name)}/workers/{_q(worker.name)}/"


def _won_before(conflict: StateConflict, state_type: str) -> bool:
    """A retried state change that finds the state it asked for: the first attempt got through
    and only its answer was lost."""
    return bool(getattr(conflict, "after_retry", False)) and conflict.actual == state_type


def _answer(response: requests.Response, *, after_retry: bool) -> Any:
    code = response.status_code
    try:
        body = response.json() if response.content else None
    except ValueError:
        raise OrchestratorError(
            f"Unexpected answer from {response.url}: HTTP {code}, not JSON (is that the orchestrator's URL?)"
        ) from None
    if 200 <= code < 300:
        return body
    detail = body.get("detail", "") if isinstance(body, dict) else ""
    detail = str(detail) or f"HTTP {code} from {response.url}"
    if code in (401, 403):
        raise Refused(f"The orchestrator refused the request: {detail}")
    if code == 400:
        raise ValidationError(detail, body.get("errors") or {} if isinstance(body, dict) else {})
    if code == 404:
        raise NotFound(detail)
    if code == 409 and isinstance(body, dict) and body.get("conflict"):
        raise _conflict(detail, body["conflict"], after_retry=after_retry)
    raise OrchestratorError(detail)


def _conflict(detail: str, conflict: dict[str, str], *, after_retry: bool) -> InvalidTransition:
    """The 409's exception, as the service raised it (its message is the server's)."""
    error: InvalidTransition
    if conflict.get("kind") == "state_conflict":
        error = StateConflict(conflict["expected"], conflict["actual"], conflict["to_type"])
        error.after_retry = after_retry  # type: ignore[attr-defined]  # the retry note rides on the exception for the caller's message
    else:
        error = InvalidTransition(conflict.get("from_type", ""), conflict.get("to_type", ""))
    error.args = (detail,)
    return error


def _retry_after(response: requests.Response) -> float | None:
    try:
        return min(60.0, max(0.0, float(response.headers.get("Retry-After", ""))))
    except ValueError:
        return None


def _reason(error: requests.RequestException) -> str:
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    if isinstance(error, requests.ConnectionError):
        return "connection failed"
    return type(error).__name__


def _chunks(records: list[dict[str, Any]], max_bytes: int) -> list[list[dict[str, Any]]]:
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 2
    for record in records:
        length = len(json.dumps(record)) + 2
        if chunks[-1] and size + length > max_bytes:
            chunks.append([])
            size = 2
        chunks[-1].append(record)
        size += length
    return [chunk for chunk in chunks if chunk]


_adapters: dict[type, pydantic.TypeAdapter[Any]] = {}


def _adapter(cls: type[T]) -> pydantic.TypeAdapter[T]:
    if cls not in _adapters:
        _adapters[cls] = pydantic.TypeAdapter(cls)
    return _adapters[cls]


def _record(cls: type[T], data: dict[str, Any]) -> T:
    """A client record from its JSON, through pydantic (nested records and ISO datetimes parsed;
    fields this client does not know are ignored). A malformed answer is Unreachable-grade: the
    server is not the orchestrator this client speaks to."""
    try:
        return _adapter(cls).validate_python(data)
    except pydantic.ValidationError as error:
        raise OrchestratorError(
            f"The orchestrator answered with a malformed {cls.__name__}: {error.errors()[0]['msg']}"
        ) from None
