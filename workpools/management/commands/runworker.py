"""`manage.py runworker --pool NAME`: poll a work pool and run its flow runs as subprocesses.

Beside the orchestrator it reaches the database directly. With `--api-url URL --api-key KEY`
(or ORCHESTRATOR_API_URL / ORCHESTRATOR_API_KEY) it goes through the REST API instead and needs
no database at all: the hybrid model, for workers on other machines.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

from django.core.management.base import CommandError

from orchestrator.cli import ServiceCommand
from orchestrator.client import OrchestratorClient, direct_client
from workpools.worker import WorkerLoop

# A remote worker's claim waits this long on the server while the worker is idle.
LONG_POLL_SECONDS = 10.0


class Command(ServiceCommand):
    help = "Start a worker that polls a work pool and runs each flow run in a subprocess."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--pool", "-p", required=True, help="The work pool to poll.")
        parser.add_argument(
            "--queue",
            "-q",
            action="append",
            default=[],
            dest="queues",
            help="Poll only this queue of the pool (repeatable; default: all of them).",
        )
        parser.add_argument("--name", "-n", default=None, help="Worker name (default: HOST-PID).")
        parser.add_argument("--limit", "-l", type=int, default=None, help="Run at most this many flow runs at once.")
        parser.add_argument(
            "--prefetch-seconds", type=float, default=0.0, help="Also claim runs due within this many seconds."
        )
        parser.add_argument(
            "--poll-interval", type=float, default=0.5, help="Seconds between polls when idle (default 0.5)."
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=30.0,
            help="On SIGTERM/Ctrl-C, wait this long for running flows before stopping them.",
        )
        parser.add_argument("--run-once", action="store_true", help="Claim once, run what was claimed, exit.")
        parser.add_argument(
            "--quiet",
            action="store_true",
            help="Print the worker's own lines (a run started, a run finished) and only the warnings "
            "and errors of the flows' output.",
        )
        parser.add_argument("--no-create", action="store_true", help="Fail instead of creating a missing pool.")
        parser.add_argument(
            "--cold-start",
            action="store_true",
            help="Start every run in a fresh interpreter instead of forking a pre-warmed launcher.",
        )
        parser.add_argument(
            "--api-url",
            default=os.environ.get("ORCHESTRATOR_API_URL", ""),
            help="Reach the orchestrator over its REST API at this URL instead of its database "
            "(default: $ORCHESTRATOR_API_URL).",
        )
        parser.add_argument(
            "--api-key",
            default=os.environ.get("ORCHESTRATOR_API_KEY", ""),
            help="The worker API key for --api-url (default: $ORCHESTRATOR_API_KEY).",
        )

    def handle(
        self,
        *args: Any,
        pool: str,
        queues: list[str],
        name: str | None,
        limit: int | None,
        prefetch_seconds: float,
        poll_interval: float,
        grace: float,
        run_once: bool,
        no_create: bool,
        cold_start: bool,
        api_url: str,
        api_key: str,
        quiet: bool,
        **options: Any,
    ) -> None:
        if poll_interval <= 0:
            raise CommandError("--poll-interval must be more than 0 seconds.")
        client = self.client(pool, api_url, api_key)
        worker = client.register_worker(
            pool,
            name=name or f"{socket.gethostname()}-{os.getpid()}",
            limit=limit,
            queues=queues or None,
            create_pool=not no_create,
            hostname=socket.gethostname(),
            pid=os.getpid(),
        )
        if worker.pool_created:
            self.stdout.write(f"Created work pool {pool!r} (type process).")
        loop = WorkerLoop(
            worker,
            client=client,
            poll_interval=poll_interval,
            prefetch_seconds=prefetch_seconds,
            long_poll=LONG_POLL_SECONDS if api_url else 0.0,
            grace=grace,
            run_once=run_once,
            prewarm=not cold_start,
            out=self.stdout,
            quiet=quiet,
        )
        signal.signal(signal.SIGTERM, loop.on_signal)
        signal.signal(signal.SIGINT, loop.on_signal)
        loop.run()
        if loop.exit_code:
            raise CommandError("The worker stopped: it could not go on polling (see above).")
        self.stdout.write("Done.")

    def client(self, pool: str, api_url: str, api_key: str) -> OrchestratorClient:
        if api_url:
            from orchestrator.client.http import HttpClient

            if not api_key:
                raise CommandError("--api-url needs --api-key (or ORCHESTRATOR_API_KEY): a worker key of the pool.")
            return HttpClient(api_url, api_key, retry_seconds=5)
        if api_key:
            raise CommandError("--api-key needs --api-url (or ORCHESTRATOR_API_URL).")
        from django.db import connection

        if connection.vendor == "postgresql":
            # Name our connections in pg_stat_activity.
            connection.close()
            connection.settings_dict.setdefault("OPTIONS", {})["application_name"] = f"runworker:{pool}"[:63]
        return direct_client()
