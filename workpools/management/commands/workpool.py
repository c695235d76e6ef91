"""`manage.py workpool create|ls|inspect|pause|resume|delete|set-concurrency-limit|clear-concurrency-limit`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from orchestrator.cli import ServiceCommand, limit_text
from workpools import services
from workpools.health import pool_health, queue_health, with_online_workers, worker_health
from workpools.infrastructure.templates import default_base_job_template
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
        create.add_argument("--base-job-template", metavar="FILE", help="A JSON file (default: the type's template).")
        update = sub.add_parser("update", help="Change a pool's base job template, job variables or description.")
        update.add_argument("name")
        update.add_argument(
            "--base-job-template", metavar="FILE", help="A JSON file ('{}' restores the type's default)."
        )
        update.add_argument("--job-variables", metavar="JSON", help="The pool's default job variables, a JSON object.")
        update.add_argument("--description", default=None)
        default = sub.add_parser("get-default-base-job-template", help="Print a pool type's default template (JSON).")
        default.add_argument("--type", default=WorkPoolType.PROCESS, help="Work pool type (default: process).")
        sub.add_parser("ls", help="List work pools.")
        for action in ("inspect", "pause", "resume", "delete", "clear-concurrency-limit"):
            sub.add_parser(action).add_argument("name")
        limit = sub.add_parser("set-concurrency-limit")
        limit.add_argument("name")
        limit.add_argument("limit", type=int)

    def do_create(
        self,
        name: str,
        type: str,
        concurrency_limit: int | None,
        paused: bool,
        description: str,
        base_job_template: str | None,
        **_: Any,
    ) -> None:
        pool = services.create_work_pool(
            name,
            type=type,
            concurrency_limit=concurrency_limit,
            paused=paused,
            description=description,
            base_job_template=_json_file(base_job_template, "--base-job-template") if base_job_template else None,
        )
        self.stdout.write(f"Created work pool {pool.name!r} (type {pool.type}, id {pool.pk}).")
        self.stdout.write(f"Start a worker for it with: manage.py runworker --pool {pool.name}")

    def do_update(
        self, name: str, base_job_template: str | None, job_variables: str | None, description: str | None, **_: Any
    ) -> None:
        pool = services.get_work_pool(name)
        changes: dict[str, Any] = {}
        if base_job_template is not None:
            changes["base_job_template"] = _json_file(base_job_template, "--base-job-template")
        if job_variables is not None:
            changes["job_variables"] = _json_text(job_variables, "--job-variables")
        if description is not None:
            changes["description"] = description
        if not changes:
            raise CommandError("Nothing to update: give --base-job-template, --job-variables or --description.")
        services.update_work_pool(pool, **changes)
        self.stdout.write(f"Updated work pool {pool.name!r}.")

    def do_get_default_base_job_template(self, type: str, **_: Any) -> None:
        self.stdout.write(json.dumps(default_base_job_template(type), indent=2))

    def do_ls(self, **_: Any) -> None:
        now = timezone.now()
        pools = with_online_workers(WorkPool.objects.all(), now=now)
        rows = [
            (
                p.name,
                p.type,
                p.pk,
                limit_text(p.concurrency_limit),
                pool_health(p, now=now, online=p.online_workers).status,
            )
            for p in pools
        ]
        self.table("Work Pools", ["Name", "Type", "ID", "Concurrency Limit", "Status"], rows)

    def do_inspect(self, name: str, **_: Any) -> None:
        pool = services.get_work_pool(name)
        now = timezone.now()
        health = pool_health(pool, now=now)
        self.fields(
            [
                ("Name", pool.name),
                ("ID", pool.pk),
                ("Type", pool.type),
                ("Description", pool.description or "-"),
                ("Concurrency limit", limit_text(pool.concurrency_limit)),
                ("Paused", pool.paused),
                ("Status", f"{health.status} ({health.reason})"),
                ("Job variables", pool.job_variables or {}),
                ("Created", pool.created_at.isoformat(timespec="seconds")),
            ]
        )
        queues = [
            (
                q.name,
                q.priority,
                limit_text(q.concurrency_limit),
                ", ".join(q.tags) or "-",
                f"{(h := queue_health(q, now=now)).status}: {h.reason}",
            )
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


def _json_text(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(
            f"{option}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})."
        ) from None


def _json_file(path: str, option: str) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise CommandError(f"{option}: cannot read {path}: {error.strerror}.") from None
    return _json_text(text, f"{option} {path}")
