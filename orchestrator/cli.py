"""Shared pieces of our management commands: errors as one line, tables with rich."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, ProgrammingError
from rich.console import Console
from rich.table import Table

from accounts.audit import acting_as, cli_actor
from orchestrator.core.errors import OrchestratorError


class ServiceCommand(BaseCommand):
    """A command that calls services: their errors reach the user as one line and exit 1,
    never as a traceback. Subcommands are methods named `do_<action>`."""

    # The orchestrator's own checks and the models', not the URL checks: those import every
    # URL module, and with them DRF and the OpenAPI generator, which a command never uses.
    requires_system_checks = ["orchestrator", "models"]

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            with acting_as(cli_actor):
                return super().execute(*args, **options)
        except OrchestratorError as error:
            raise CommandError(str(error)) from None
        except (OperationalError, ProgrammingError) as error:
            if _looks_unmigrated(error):
                raise CommandError(
                    "The database has no orchestrator tables yet: run `manage.py migrate` (make up does it)."
                ) from None
            raise

    def handle(self, *args: Any, **options: Any) -> Any:
        action = options.pop("action").replace("-", "_")
        return getattr(self, f"do_{action}")(**options)

    def table(
        self,
        title: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        caption: str = "",
        no_wrap: Iterable[str] = (),
    ) -> None:
        """Print a table. Columns named in `no_wrap` (ids, times) are never broken over lines,
        so they can be copied; the others fold to fit."""
        table = Table(title=title, caption=caption or None)
        keep = set(no_wrap)
        for column in columns:
            table.add_column(column, overflow="fold", no_wrap=column in keep)
        for row in rows:
            table.add_row(*["" if cell is None else str(cell) for cell in row])
        buffer = io.StringIO()
        width = shutil.get_terminal_size(fallback=(160, 24)).columns
        Console(file=buffer, width=max(width, 100), force_terminal=False, color_system=None).print(table)
        self.stdout.write(buffer.getvalue(), ending="")

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        pairs = list(pairs)
        width = max(len(k) for k, _ in pairs)
        for key, value in pairs:
            self.stdout.write(f"{key.ljust(width)}  {'' if value is None else value}")


def _looks_unmigrated(error: Exception) -> bool:
    text = str(error)
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def limit_text(limit: int | None) -> str:
    return "None" if limit is None else str(limit)


def format_log(entry: Any) -> str:
    """One log line as the engine prints it: `12:17:42.449 | INFO    | logger - message`."""
    import logging

    level = logging.getLevelName(entry.level)
    stamp = entry.timestamp.astimezone().strftime("%H:%M:%S.%f")[:-3]
    return f"{stamp} | {level:<7} | {entry.logger} - {entry.message}"


def follow_run(write: Any, run: Any, *, states: bool, poll_seconds: float = 0.5) -> Any:
    """Print `run`'s logs (and, with `states`, every state it enters) as they come, until it
    ends; returns the run as it ended. Follows the state history rather than sampling the
    current state, so a state that lasted less than a poll is still shown."""
    import time

    last_log = 0
    last_state = 0
    while True:
        run.refresh_from_db()
        # New log lines and states, merged by time: a flow's lines come after its "is Running".
        events: list[tuple[Any, int, str]] = []
        for entry in run.logs.filter(id__gt=last_log).order_by("id"):
            events.append((entry.timestamp, 1, format_log(entry)))
            last_log = entry.id
        if states:
            for state in run.states.filter(id__gt=last_state).order_by("id"):
                message = f": {state.message}" if state.message else ""
                events.append((state.timestamp, 0, f"Flow run '{run.name}' is {state.name} ({state.type}){message}"))
                last_state = state.id
        for _, _, line in sorted(events, key=lambda event: (event[0], event[1])):
            write(line)
        if run.is_terminal:
            # The last batch of logs may land just after the final state.
            time.sleep(poll_seconds)
            for entry in run.logs.filter(id__gt=last_log).order_by("id"):
                write(format_log(entry))
            return run
        time.sleep(poll_seconds)
