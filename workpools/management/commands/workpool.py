"""`manage.py workpool create|ls|inspect|pause|resume|delete|set-concurrency-limit|clear-concurrency-limit`."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from orchestrator.cli import ServiceCommand, limit_text
from workpools import services
from workpools.health import pool_health, queue_health, with_online_workers, worker_health
from workpools.models import WorkPool, WorkPoolType


class Command(ServiceCommand):
    help = "Manage work pools."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = sub.add_parser("create", help="Create a work pool (with a 'default' queue).")
        create.add_argument("name")
        create.add_argument("--type", default=WorkPoolType.PROCESS, help="Work pool type (default: process).")
        create.add_argument("--concurrency-limit", type=int, default=None)
        create.add_argument("--paused", action="store_true")
        create.add_argument("--description", default="")
        sub.add_parser("ls", help="List work pools.")
        for action in ("inspect", "pause", "resume", "delete", "clear-concurrency-limit"):
            sub.add_parser(action).add_argument("name")
        limit = sub.add_parser("set-concurrency-limit")
        limit.add_argument("name")
        limit.add_argument("limit", type=int)

    def do_create(self, name: str, type: str, concurrency_limit: int | None, paused: bool, description: str, **_: Any) -> None:
        pool = services.create_work_pool(
            name, type=type, concurrency_limit=concurrency_limit, paused=paused, description=description
        )
        self.stdout.write(f"Created work pool {pool.name!r} (type {pool.type}, id {pool.pk}).")
        self.stdout.write(f"Start a worker for it with: manage.py runworker --pool {pool.name}")

    def do_ls(self, **_: Any) -> None:
        now = timezone.now()
        pools = with_online_workers(WorkPool.objects.all(), now=now)
        rows = [
            (p.name, p.type, p.pk, limit_text(p.concurrency_limit), pool_health(p, now=now, online=p.online_workers).status)
            for p in pools
        ]
        self.table("Work Pools", ["Name", "Type", "ID", "Concurrency Limit", "Status"], rows)

    def do_inspect(self, name: str, **_: Any) -> None:
        pool = services.get_work_pool(name)
        now = timezone.now()
        health = pool_health(pool, now=now)
        self.fields(
            [
                ("Name", pool.name), ("ID", pool.pk), ("Type", pool.type), ("Description", pool.description or "-"),
                ("Concurrency limit", limit_text(pool.concurrency_limit)), ("Paused", pool.paused),
                ("Status", f"{health.status} ({health.reason})"), ("Job variables", pool.job_variables or {}),
                ("Created", pool.created_at.isoformat(timespec="seconds")),
            ]
        )
        queues = [
            (q.name, q.priority, limit_text(q.concurrency_limit), ", ".join(q.tags) or "-",
             f"{(h := queue_health(q, now=now)).status}: {h.reason}")
            for q in pool.queues.select_related("pool").order_by("priority", "name")
        ]
        self.table("Queues", ["Name", "Priority", "Concurrency Limit", "Tags", "Status"], queues)
        workers = [
            (w.name, w.hostname, w.pid, f"{(h := worker_health(w, now=now)).status}: {h.reason}")
            for w in pool.workers.order_by("name")
        ]
        self.table("Workers", ["Name", "Host", "PID", "Status"], workers)

    def do_pause(self, name: str, **_: Any) -> None:
        services.set_work_pool_paused(services.get_work_pool(name), True)
        self.stdout.write(f"Paused work pool {name!r}: workers claim nothing from it until it is resumed.")

    def do_resume(self, name: str, **_: Any) -> None:
        services.set_work_pool_paused(services.get_work_pool(name), False)
        self.stdout.write(f"Resumed work pool {name!r}.")

    def do_delete(self, name: str, **_: Any) -> None:
        services.delete_work_pool(services.get_work_pool(name))
        self.stdout.write(f"Deleted work pool {name!r}.")

    def do_set_concurrency_limit(self, name: str, limit: int, **_: Any) -> None:
        services.set_concurrency_limit(services.get_work_pool(name), limit)
        self.stdout.write(f"Set the concurrency limit of work pool {name!r} to {limit}.")

    def do_clear_concurrency_limit(self, name: str, **_: Any) -> None:
        services.set_concurrency_limit(services.get_work_pool(name), None)
        self.stdout.write(f"Cleared the concurrency limit of work pool {name!r}.")
