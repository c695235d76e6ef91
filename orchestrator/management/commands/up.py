"""`manage.py up`: run the whole orchestrator on this host (what `make up` calls)."""

from __future__ import annotations

import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from blocks.crypto import ensure_secrets_key
from orchestrator.bootstrap import DEFAULT_POOL, ensure_admin, ensure_default_pool, ensure_example_deployment
from orchestrator.env import env_bool
from orchestrator.supervisor import Program, Supervisor


class Command(BaseCommand):
    help = "Migrate, create the admin account on first run, then run the web app (and services) until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--verbose",
            action="store_true",
            default=env_bool("VERBOSE", False),
            help="Show everything the processes print (access log, every Celery task, the flows' logs); "
            "default: one line per run started and finished, warnings and errors (also: VERBOSE=1).",
        )

    def handle(self, *args: Any, host: str, port: int, verbose: bool, **options: Any) -> None:
        if not 0 < port < 65536:
            raise CommandError(f"--port {port} is not a TCP port.")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        username = settings.ADMIN_USERNAME
        generated = ensure_admin(username, settings.ADMIN_PASSWORD)
        ensure_default_pool()
        ensure_secrets_key()
        example = ensure_example_deployment()

        url = f"http://{host}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"Orchestrator starting at {url}  (admin: {url}admin/)"))
        self.stdout.write(f"Data directory: {settings.ORCHESTRATOR_HOME}")
        if generated:
            self.stdout.write(self.style.WARNING(f"Log in as {username!r} with password {generated!r}"))
            self.stdout.write("  (shown only this once; change it with: manage.py changepassword " + username + ")")
        elif settings.ADMIN_PASSWORD:
            self.stdout.write(f"Log in as {username!r} with the password from ORCHESTRATOR_ADMIN_PASSWORD.")
        else:
            self.stdout.write(
                f"Log in as {username!r} with the password printed on the first run "
                f"(forgot it? manage.py changepassword {username})."
            )
        if example is not None:
            self.stdout.write(
                f"Deployed the example {example.full_name!r} to pool {DEFAULT_POOL!r}: it runs every minute "
                "(pause it in the admin or with: manage.py deployment pause " + example.full_name + ")."
            )
        if verbose:
            self.stdout.write("Press Ctrl-C to stop.")
        else:
            self.stdout.write(
                "Press Ctrl-C to stop. Quiet: runs started and finished, warnings and errors "
                "(make up VERBOSE=1 or manage.py up --verbose for everything)."
            )
        programs = up_programs(host, port, verbose=verbose)
        supervisor = Supervisor(programs, out=self.stdout)
        signal.signal(signal.SIGINT, supervisor.on_signal)
        signal.signal(signal.SIGTERM, supervisor.on_signal)
        code = supervisor.run()
        self.stdout.write("Stopped.")
        if code:
            raise CommandError(f"A process exited with code {code}; everything was stopped.")


def up_programs(host: str, port: int, *, verbose: bool) -> list[Program]:
    """The processes `up` runs. Quiet (the default), each prints only what a person watching
    needs: warnings and errors, and the worker's one line per run started and finished."""
    python = sys.executable
    web = [
        python,
        "-m",
        "gunicorn",
        "orchestrator.wsgi",
        "--bind",
        f"{host}:{port}",
        # Threads: each remote worker's idle claim waits on one (a long poll).
        "--workers",
        "2",
        "--threads",
        "16",
        "--graceful-timeout",
        "3",
    ]
    web += ["--access-logfile", "-"] if verbose else ["--log-level", "warning"]
    # The periodic services (scheduler, late runs, reaper, retention) and the tasks the web app
    # sends. On the embedded default the filesystem broker's producers and consumers meet in
    # one folder under the data directory (settings).
    celery = [
        python,
        "-m",
        "celery",
        "-A",
        "orchestrator",
        *([] if verbose else ["--quiet"]),  # --quiet: no banner
        "worker",
        "--beat",
        "--concurrency",
        "2",
        "--hostname",
        "orchestrator@%h",
        "--loglevel",
        "INFO" if verbose else "WARNING",
    ]
    # One worker on the default process pool runs the flows.
    worker = [python, str(settings.BASE_DIR / "manage.py"), "runworker", "--pool", DEFAULT_POOL, "--name", "up-worker"]
    if not verbose:
        worker.append("--quiet")
    return [Program("web", web), Program("celery", celery), Program("worker", worker)]
