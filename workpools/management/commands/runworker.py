"""`manage.py runworker --pool NAME`: poll a work pool and run its flow runs as subprocesses."""

from __future__ import annotations

import signal
from typing import Any

from django.db import connection

from orchestrator.cli import ServiceCommand
from workpools import services
from workpools.worker import ProcessWorker


class Command(ServiceCommand):
    help = "Start a worker that polls a work pool and runs each flow run in a subprocess."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--pool", "-p", required=True, help="The work pool to poll.")
        parser.add_argument("--queue", "-q", action="append", default=[], dest="queues",
                            help="Poll only this queue of the pool (repeatable; default: all of them).")
        parser.add_argument("--name", "-n", default=None, help="Worker name (default: HOST-PID).")
        parser.add_argument("--limit", "-l", type=int, default=None, help="Run at most this many flow runs at once.")
        parser.add_argument("--prefetch-seconds", type=float, default=0.0,
                            help="Also claim runs due within this many seconds.")
        parser.add_argument("--poll-interval", type=float, default=0.5, help="Seconds between polls when idle (default 0.5).")
        parser.add_argument("--grace", type=float, default=30.0,
                            help="On SIGTERM/Ctrl-C, wait this long for running flows before stopping them.")
        parser.add_argument("--run-once", action="store_true", help="Claim once, run what was claimed, exit.")
        parser.add_argument("--no-create", action="store_true", help="Fail instead of creating a missing pool.")
        parser.add_argument("--cold-start", action="store_true",
                            help="Start every run in a fresh interpreter instead of forking a pre-warmed launcher.")

    def handle(self, *args: Any, pool: str, queues: list[str], name: str | None, limit: int | None,
               prefetch_seconds: float, poll_interval: float, grace: float, run_once: bool, no_create: bool,
               cold_start: bool, **options: Any) -> None:
        if poll_interval <= 0:
            raise services.ValidationError("--poll-interval must be more than 0 seconds.")
        if connection.vendor == "postgresql":
            # Name our connections in pg_stat_activity.
            connection.close()
            connection.settings_dict.setdefault("OPTIONS", {})["application_name"] = f"runworker:{pool}"[:63]
        worker, created = services.register_worker(pool, name=name, limit=limit, create_pool=not no_create)
        if created:
            self.stdout.write(f"Created work pool {pool!r} (type process).")
        queue_ids = [services.get_work_queue(worker.pool, q).pk for q in queues] or None
        loop = ProcessWorker(
            worker, queue_ids=queue_ids, poll_interval=poll_interval, prefetch_seconds=prefetch_seconds,
            grace=grace, run_once=run_once, prewarm=not cold_start, out=self.stdout,
        )
        signal.signal(signal.SIGTERM, loop.on_signal)
        signal.signal(signal.SIGINT, loop.on_signal)
        loop.run()
        self.stdout.write("Done.")
