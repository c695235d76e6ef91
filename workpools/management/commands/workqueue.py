"""`manage.py workqueue create|ls|inspect|pause|resume|delete|set-concurrency-limit|clear-concurrency-limit`."""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone

from orchestrator.cli import ServiceCommand, limit_text
from workpools import services
from workpools.health import PAUSED, queue_health
from workpools.models import WorkQueue

DEFAULT_POOL = "default"


class Command(ServiceCommand):
    help = "Manage the work queues of work pools."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = sub.add_parser("create", help="Create a queue in a pool.")
        create.add_argument("name")
        create.add_argument("--pool", default=None, help=f"Work pool (default: {DEFAULT_POOL!r}).")
        create.add_argument("--priority", type=int, default=None, help="1 is served first (default: after the others).")
        create.add_argument("--concurrency-limit", type=int, default=None)
        create.add_argument(
            "--tag",
            action="append",
            default=[],
            dest="tags",
            help="Serve only deployments carrying this tag (repeatable: all must match).",
        )
        create.add_argument("--description", default="")
        ls = sub.add_parser("ls", help="List queues.")
        ls.add_argument("--pool", default=None)
        for action in ("inspect", "pause", "resume", "delete", "clear-concurrency-limit"):
            p = sub.add_parser(action)
            p.add_argument("name", help="Queue name, or id.")
            p.add_argument(
                "--pool", default=None, help=f"Work pool (default: {DEFAULT_POOL!r}; not needed with an id)."
            )
        limit = sub.add_parser("set-concurrency-limit")
        limit.add_argument("name")
        limit.add_argument("limit", type=int)
        limit.add_argument("--pool", default=None)

    def find(self, name: str, pool: str | None) -> WorkQueue:
        if pool is None:
            try:
                return WorkQueue.objects.select_related("pool").get(pk=uuid.UUID(name))
            except (ValueError, WorkQueue.DoesNotExist):
                pool = DEFAULT_POOL
        return services.get_work_queue(services.get_work_pool(pool), name)

    def do_create(
        self,
        name: str,
        pool: str | None,
        priority: int | None,
        concurrency_limit: int | None,
        tags: list[str],
        description: str,
        **_: Any,
    ) -> None:
        # The tutorial reader may expect another pool: without --pool, say which one first.
        defaulted = pool is None
        pool = pool or DEFAULT_POOL
        queue = services.create_work_queue(
            services.get_work_pool(pool),
            name,
            priority=priority,
            concurrency_limit=concurrency_limit,
            tags=tags,
            description=description,
        )
        serves = f"; serves deployments tagged {', '.join(queue.tags)}" if queue.tags else ""
        if defaulted:
            self.stdout.write(
                f"In pool {pool!r} (no --pool given): created work queue {queue.name!r} (priority {queue.priority}{serves})."
            )
        else:
            self.stdout.write(
                f"Created work queue {queue.name!r} in pool {pool!r} (priority {queue.priority}{serves})."
            )
        self.stdout.write(f"ID: {queue.pk}")

    def do_ls(self, pool: str | None, **_: Any) -> None:
        queues = WorkQueue.objects.select_related("pool").order_by("pool__name", "priority", "name")
        if pool is not None:
            queues = queues.filter(pool=services.get_work_pool(pool))
        now = timezone.now()
        rows = []
        for q in queues:
            status = queue_health(q, now=now).status
            name = f"{q.name} (**)" if status == PAUSED else q.name
            rows.append((q.pk, name, q.pool.name, q.priority, limit_text(q.concurrency_limit), status))
        self.table(
            "Work Queues",
            ["ID", "Name", "Pool", "Priority", "Concurrency Limit", "Status"],
            rows,
            caption="(**) denotes a paused queue",
        )

    def do_inspect(self, name: str, pool: str | None, **_: Any) -> None:
        q = self.find(name, pool)
        health = queue_health(q)
        self.fields(
            [
                ("Name", q.name),
                ("ID", q.pk),
                ("Pool", q.pool.name),
                ("Priority", q.priority),
                ("Concurrency limit", limit_text(q.concurrency_limit)),
                ("Tags", ", ".join(q.tags) or "-"),
                ("Paused", q.paused),
                ("Status", f"{health.status} ({health.reason})"),
                ("Last polled", q.last_polled_at.isoformat(timespec="seconds") if q.last_polled_at else "never"),
            ]
        )

    def do_pause(self, name: str, pool: str | None, **_: Any) -> None:
        q = services.set_work_queue_paused(self.find(name, pool), True)
        self.stdout.write(f"Paused work queue {q.name!r} of pool {q.pool.name!r}.")

    def do_resume(self, name: str, pool: str | None, **_: Any) -> None:
        q = services.set_work_queue_paused(self.find(name, pool), False)
        self.stdout.write(f"Resumed work queue {q.name!r} of pool {q.pool.name!r}.")

    def do_delete(self, name: str, pool: str | None, **_: Any) -> None:
        q = self.find(name, pool)
        queue_id = q.pk
        moved = services.delete_work_queue(q)
        extra = f"; moved {moved} scheduled run(s) to its pool's default queue" if moved else ""
        self.stdout.write(f"Deleted work queue {q.name!r} ({queue_id}){extra}.")

    def do_set_concurrency_limit(self, name: str, limit: int, pool: str | None, **_: Any) -> None:
        q = services.set_concurrency_limit(self.find(name, pool), limit)
        self.stdout.write(f"Set the concurrency limit of work queue {q.name!r} to {limit}.")

    def do_clear_concurrency_limit(self, name: str, pool: str | None, **_: Any) -> None:
        q = services.set_concurrency_limit(self.find(name, pool), None)
        self.stdout.write(f"Cleared the concurrency limit of work queue {q.name!r}.")
