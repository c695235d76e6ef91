"""`manage.py seeddemo --runs 1000000`: demo data big enough to measure the dashboard."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from orchestrator.demo import seed_demo


class Command(BaseCommand):
    help = "Add demo pools, deployments, workers and RUNS runs (with histories, task runs and logs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--runs", type=int, default=10_000, help="How many runs to add (default 10,000).")
        parser.add_argument("--days", type=float, default=30, help="Spread them over this many past days.")
        parser.add_argument("--detailed", type=int, default=2000, help="Newest runs that get task runs and logs.")
        parser.add_argument("--seed", type=int, default=8, help="Random seed: the same seed, the same data.")
        parser.add_argument("--batch", type=int, default=20_000, help="Rows per insert batch.")

    def handle(self, *args: Any, runs: int, days: float, detailed: int, seed: int, batch: int, **options: Any) -> None:
        started = time.monotonic()
        verbosity = options["verbosity"]

        def progress(message: str) -> None:
            if verbosity > 1:
                self.stdout.write(message)

        report = seed_demo(runs=runs, days=days, detailed=detailed, seed=seed, batch=batch, progress=progress)
        self.stdout.write(
            f"Added {report.runs:,} runs, {report.states:,} states, {report.task_runs:,} task runs and "
            f"{report.logs:,} log lines in {time.monotonic() - started:.1f} s."
        )
