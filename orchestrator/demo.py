"""A demo data set big enough to measure the dashboard: pools, queues, workers, deployments
with schedules, and any number of runs (a million takes a few minutes on PostgreSQL) with their
state histories, plus task runs and logs for the newest runs.

Rows go in through COPY on PostgreSQL and bulk_create elsewhere; nothing here goes through the
services one run at a time, which would take hours at this size. It writes history rows that
agree with each run's denormalised state, as set_state would have.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from coolname import generate_slug
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from deployments.models import Deployment, DeploymentSchedule, Flow, ScheduleKind
from orchestrator.core.states import StateType
from runs.models import FlowRun, FlowRunState, Log, TaskRun
from workpools.models import Worker, WorkPool, WorkQueue

S = StateType

POOLS = [
    # name, concurrency limit, queues: (name, priority, tags, limit)
    ("my-process-pool", None, [("default", 1, [], None), ("tutorial", 2, ["tutorial"], 5)]),
    ("data-pipelines", 20, [("critical", 1, [], 5), ("default", 2, [], None), ("backfill", 3, [], 2)]),
    ("ml-training", 4, [("default", 1, [], None)]),
]

STRING_PARAM = {"type": "string"}
DEPLOYMENTS = [
    # flow, deployment, pool, tags, parameters, schema properties, schedule (kind, value)
    (
        "leonardo_dicapriflow",
        "leonardo-deployment",
        "my-process-pool",
        ["tutorial"],
        {"name": "Leo"},
        {"name": STRING_PARAM},
        None,
    ),
    (
        "etl",
        "orders-hourly",
        "data-pipelines",
        ["etl", "orders"],
        {"source": "orders", "full": False},
        {"source": STRING_PARAM, "full": {"type": "boolean", "default": False}},
        ("cron", "0 * * * *"),
    ),
    (
        "etl",
        "customers-daily",
        "data-pipelines",
        ["etl"],
        {"source": "customers", "full": True},
        {"source": STRING_PARAM, "full": {"type": "boolean", "default": False}},
        ("cron", "30 2 * * *"),
    ),
    (
        "etl",
        "events-5min",
        "data-pipelines",
        ["etl", "events"],
        {"source": "events", "full": False},
        {"source": STRING_PARAM, "full": {"type": "boolean", "default": False}},
        ("interval", 300),
    ),
    (
        "reports",
        "weekly-revenue",
        "data-pipelines",
        ["reports", "finance"],
        {"weeks": 1},
        {"weeks": {"type": "integer", "default": 1}},
        ("cron", "0 7 * * 1"),
    ),
    (
        "reports",
        "daily-kpis",
        "data-pipelines",
        ["reports"],
        {"weeks": 0},
        {"weeks": {"type": "integer", "default": 0}},
        ("cron", "0 6 * * *"),
    ),
    (
        "train_model",
        "nightly",
        "ml-training",
        ["ml"],
        {"epochs": 10, "lr": 0.001, "layers": [64, 32]},
        {"epochs": {"type": "integer"}, "lr": {"type": "number"}, "layers": {"type": "array"}},
        ("cron", "0 1 * * *"),
    ),
    (
        "train_model",
        "experiment",
        "ml-training",
        ["ml", "experiment"],
        {"epochs": 2, "lr": 0.01, "layers": [16]},
        {"epochs": {"type": "integer"}, "lr": {"type": "number"}, "layers": {"type": "array"}},
        None,
    ),
    (
        "sync_crm",
        "every-15-min",
        "my-process-pool",
        ["crm"],
        {"since_minutes": 15},
        {"since_minutes": {"type": "integer", "default": 15}},
        ("interval", 900),
    ),
    ("cleanup", "weekend", "my-process-pool", ["ops"], {}, {}, ("cron", "0 3 * * 0,6")),
]
# How often each deployment runs, relative to the others.
WEIGHTS = [2, 30, 3, 40, 1, 3, 2, 4, 12, 1]

TASKS = ["extract", "transform", "load"]
ERRORS = [
    "ValueError: column 'amount' has 17 null values",
    "TimeoutError: upstream API did not answer within 30 s",
    "KeyError: 'customer_id'",
    "ConnectionError: database connection refused",
]


@dataclass
class SeedReport:
    runs: int
    states: int
    task_runs: int
    logs: int


def seed_demo(
    *,
    runs: int,
    days: float = 30,
    detailed: int = 2000,
    seed: int = 8,
    batch: int = 20000,
    progress: Callable[[str], None] = lambda message: None,
) -> SeedReport:
    """Create the demo pools, deployments and workers (or reuse them), then `runs` runs spread
    over the last `days` days plus a few upcoming ones. The newest `detailed` runs get task
    runs and logs. The same `seed` makes the same data but for ids, so seeding twice adds
    twice as many runs."""
    rng = random.Random(seed)
    now = timezone.now()
    with transaction.atomic():
        deployments = _ensure_deployments(now)
    names = [generate_slug(2) for _ in range(5000)]
    counts = SeedReport(0, 0, 0, 0)
    writer = _Writer(batch)
    for chunk in _chunks(_make_runs(rng, now, deployments, names, runs, days), batch):
        with transaction.atomic():
            run_rows, state_rows = [], []
            for run in chunk:
                run_rows.append(run)
                state_rows.extend(_history(run, rng))
            writer.insert(FlowRun, run_rows)
            writer.insert(FlowRunState, state_rows)
        counts.runs += len(run_rows)
        counts.states += len(state_rows)
        progress(f"{counts.runs:,} runs, {counts.states:,} states")
    if detailed:
        newest = (
            FlowRun.objects.exclude(state_type=S.SCHEDULED)
            .filter(expected_start_at__lte=now)
            .order_by("-expected_start_at")
            .values_list("id", "state_type", "started_at", "ended_at", "state_at")
        )[:detailed]
        with transaction.atomic():
            tasks, logs = [], []
            for run_id, state_type, started, ended, state_at in newest:
                t, lines = _details(rng, run_id, state_type, started, ended or state_at)
                tasks.extend(t)
                logs.extend(lines)
            writer.insert(TaskRun, tasks)
            writer.insert(Log, logs)
        counts.task_runs, counts.logs = len(tasks), len(logs)
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        # What autovacuum would soon do: fresh statistics for the planner, and the visibility
        # map that lets index-only scans skip the table.
        with connection.cursor() as cursor:
            for model in (FlowRun, FlowRunState, TaskRun, Log):
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return counts


def _ensure_deployments(now: datetime) -> list[Deployment]:
    pools = {}
    for name, limit, queues in POOLS:
        pool, _ = WorkPool.objects.get_or_create(name=name, defaults={"concurrency_limit": limit})
        pools[name] = pool
        for queue_name, priority, tags, queue_limit in queues:
            WorkQueue.objects.get_or_create(
                pool=pool,
                name=queue_name,
                defaults={"priority": priority, "tags": tags, "concurrency_limit": queue_limit, "last_polled_at": now},
            )
        for i, alive in enumerate((True, name != "ml-training")):
            Worker.objects.update_or_create(
                pool=pool,
                name=f"{name}-worker-{i + 1}",
                defaults={
                    "hostname": f"host-{i + 1}.example.internal",
                    "pid": 4100 + i,
                    "limit": 4,
                    "last_heartbeat_at": now if alive else now - timedelta(minutes=7),
                },
            )
    deployments = []
    for flow_name, name, pool_name, tags, params, properties, schedule in DEPLOYMENTS:
        flow, _ = Flow.objects.get_or_create(name=flow_name)
        required = [key for key, prop in properties.items() if "default" not in prop]
        deployment, _ = Deployment.objects.get_or_create(
            flow=flow,
            name=name,
            defaults={
                "entrypoint": f"flows/{flow_name}.py:{flow_name}",
                "work_pool": pools[pool_name],
                "tags": tags,
                "parameters": params,
                "parameter_schema": {"type": "object", "properties": properties, "required": required},
            },
        )
        if schedule and not deployment.schedules.exists():
            kind, value = schedule
            fields: dict[str, Any] = {"cron": value} if kind == "cron" else {"interval_seconds": value}
            DeploymentSchedule.objects.create(
                deployment=deployment, slug=f"{kind}-1", kind=ScheduleKind(kind), **fields
            )
        deployments.append(deployment)
    return deployments


def _make_runs(
    rng: random.Random, now: datetime, deployments: list[Deployment], names: list[str], total: int, days: float
) -> Iterator[dict[str, Any]]:
    queues: dict[Any, list[WorkQueue]] = {}
    for queue in WorkQueue.objects.order_by("priority"):
        queues.setdefault(queue.pool_id, []).append(queue)
    workers: dict[Any, list[Any]] = {}
    for worker_id, pool_id in Worker.objects.values_list("id", "pool_id"):
        workers.setdefault(pool_id, []).append(worker_id)
    span = days * 86400
    upcoming = min(total // 100, 30 * len(deployments))
    scheduled = [d for d in deployments if d.schedules.exists()]
    # Start times first, then rows in that order: runs reach the table roughly in time order,
    # so one day's runs sit together on disk as they would in production.
    starts = [(now + timedelta(seconds=rng.uniform(60, 86400)), "upcoming") for _ in range(upcoming)]
    starts += [(now - timedelta(seconds=rng.uniform(120, 1800)), "late") for _ in range(min(5, total - upcoming))]
    starts += [(now - timedelta(seconds=span * rng.random() ** 1.15), "past") for _ in range(total - len(starts))]
    starts.sort()
    for expected, kind in starts:
        if kind == "upcoming":  # as the scheduler would have made them
            deployment = rng.choice(scheduled)
        else:
            deployment = rng.choices(deployments, WEIGHTS)[0]
        age = (now - expected).total_seconds()
        state = _pick_state(rng, age, late=kind == "late")
        pool_queues = queues[deployment.work_pool_id]
        if state in (S.PENDING, S.RUNNING):  # keep within the queues' limits
            pool_queues = [q for q in pool_queues if q.concurrency_limit is None] or pool_queues
        queue = rng.choice(pool_queues)
        run: dict[str, Any] = {
            "id": uuid.uuid4(),
            "name": rng.choice(names),
            "flow_id": deployment.flow_id,
            "deployment_id": deployment.pk,
            "work_pool_id": deployment.work_pool_id,
            "work_queue_id": queue.pk,
            "worker_id": None,
            "parameters": deployment.parameters,
            "tags": deployment.tags,
            "state_type": state,
            "state_name": "Late" if state == S.SCHEDULED and age > 0 else state.label,
            "state_message": "",
            "expected_start_at": expected,
            "next_scheduled_start_at": expected,
            "started_at": None,
            "ended_at": None,
            "run_count": 0,
            "created_by": "schedule" if rng.random() < 0.85 else "ui:demo",
            "created_at": min(expected, now) - timedelta(minutes=5),
        }
        state_at = expected
        if state not in (S.SCHEDULED, S.CANCELLED):
            run["worker_id"] = rng.choice(workers[deployment.work_pool_id])
            run["started_at"] = expected + timedelta(seconds=rng.uniform(0.5, 3))
            run["run_count"] = 1
            state_at = run["started_at"]
        if state in (S.COMPLETED, S.FAILED, S.CRASHED):
            duration = min(rng.lognormvariate(3.5, 1.2), 4 * 3600)
            run["ended_at"] = state_at = min(run["started_at"] + timedelta(seconds=duration), now)
            if state != S.COMPLETED:
                run["state_message"] = rng.choice(ERRORS) if state == S.FAILED else "Process exited with code -9"
        elif state == S.CANCELLED:
            run["ended_at"] = state_at = min(expected + timedelta(seconds=rng.uniform(1, 600)), now)
            run["state_message"] = "Cancelled by ui:demo"
        elif state == S.RUNNING:
            state_at = run["started_at"] + timedelta(seconds=1)
        run["state_at"] = min(state_at, now) if state != S.SCHEDULED else run["created_at"]
        run["updated_at"] = run["state_at"]
        yield run


def _pick_state(rng: random.Random, age: float, *, late: bool) -> StateType:
    if age < 0 or late:
        return S.SCHEDULED
    if age < 600:
        return rng.choices([S.RUNNING, S.PENDING, S.COMPLETED, S.FAILED], [50, 10, 35, 5])[0]
    roll = rng.random()
    if roll < 0.89:
        return S.COMPLETED
    if roll < 0.95:
        return S.FAILED
    if roll < 0.965:
        return S.CRASHED
    return S.CANCELLED


def _history(run: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """The state rows set_state would have written for this run, oldest first."""
    state = run["state_type"]
    rows = [(S.SCHEDULED, "Scheduled", run["created_at"], "")]
    if state == S.SCHEDULED and run["state_name"] == "Late":
        rows.append((S.SCHEDULED, "Late", run["state_at"], ""))
    if run["started_at"] is not None:
        rows.append((S.PENDING, "Pending", run["started_at"] - timedelta(seconds=0.5), ""))
        if state != S.PENDING:
            rows.append((S.RUNNING, "Running", run["started_at"], ""))
    if state not in (S.SCHEDULED, S.PENDING, S.RUNNING):
        rows.append((state, state.label, run["state_at"], run["state_message"]))
    return [
        {"flow_run_id": run["id"], "type": t, "name": name, "timestamp": at, "message": message}
        for t, name, at, message in rows
    ]


def _details(
    rng: random.Random, run_id: Any, state_type: str, started: datetime | None, ended: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if started is None:
        return [], []
    tasks, logs = [], []
    step = max((ended - started) / (len(TASKS) + 1), timedelta(milliseconds=50))
    at = started
    logs.append(_log(run_id, None, 20, "orchestrator.flow_runs", "Beginning flow run", at))
    for n, task in enumerate(TASKS):
        task_id = uuid.uuid4()
        failed = state_type == S.FAILED and n == len(TASKS) - 1
        end = at + step
        task_state = S.FAILED if failed else S.COMPLETED
        if state_type == S.RUNNING and n == len(TASKS) - 1:
            task_state, end = S.RUNNING, None
        tasks.append(
            {
                "id": task_id,
                "flow_run_id": run_id,
                "name": f"{task}-{n}",
                "task_key": task,
                "state_type": task_state,
                "state_name": task_state.label,
                "state_at": end or at,
                "started_at": at,
                "ended_at": end,
                "run_count": 1,
                "created_at": at,
            }
        )
        logs.append(_log(run_id, task_id, 20, "orchestrator.task_runs", f"Running {task}", at))
        if rng.random() < 0.2:
            logs.append(_log(run_id, task_id, 30, "orchestrator.task_runs", "Slow response; retrying once", at))
        if failed:
            logs.append(_log(run_id, task_id, 40, "orchestrator.task_runs", rng.choice(ERRORS), end or at))
        at = end or at
    final = {"COMPLETED": (20, "Finished in state Completed()"), "FAILED": (40, "Finished in state Failed")}
    if state_type in final:
        level, message = final[state_type]
        logs.append(_log(run_id, None, level, "orchestrator.flow_runs", message, ended))
    return tasks, logs


def _log(run_id: Any, task_id: Any, level: int, logger: str, message: str, at: datetime) -> dict[str, Any]:
    return {
        "flow_run_id": run_id,
        "task_run_id": task_id,
        "level": level,
        "logger": logger,
        "message": message,
        "timestamp": at,
    }


def _chunks(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Writer:
    """Insert plain dicts of column values (keyed by attname): COPY on PostgreSQL,
    bulk_create elsewhere."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self._json: dict[int, tuple[Any, str]] = {}  # id(value) -> (value, its JSON)

    def insert(self, model: type[Model], rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if connection.vendor == "postgresql":
            self._copy(model, rows)
        else:
            model._default_manager.bulk_create([model(**row) for row in rows], batch_size=min(self.batch, 500))

    def _copy(self, model: type[Model], rows: list[dict[str, Any]]) -> None:
        fields = [f for f in model._meta.concrete_fields if f.get_internal_type() != "BigAutoField"]
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        plan = [(f.attname, f.get_default(), f.get_internal_type() == "JSONField") for f in fields]
        to_json = self._to_json
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(
                        [
                            to_json(row.get(name, default)) if is_json else row.get(name, default)
                            for name, default, is_json in plan
                        ]
                    )

    def _to_json(self, value: Any) -> str | None:
        """JSON text for a JSON column; the demo shares a few dicts and lists across many rows,
        so each is encoded once."""
        if value is None:
            return None
        cached = self._json.get(id(value))
        if cached is None or cached[0] is not value:
            cached = self._json[id(value)] = (value, json.dumps(value))
        return cached[1]
