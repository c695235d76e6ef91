"""`manage.py deployment ls|inspect|run|pause|resume|delete|execute`.

deployment run FLOW/DEPLOYMENT [--param k=v]... [--params JSON] [--start-in 10m | --start-at ISO] [--watch]
deployment execute FLOW/DEPLOYMENT [--param KEY=VALUE]...    run it here, without a worker
deployment backfill FLOW/DEPLOYMENT --start ISO --end ISO [--schedule SLUG]... [--dry-run] [--max N]
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from deployments.models import Deployment
from deployments.services import delete_deployment, get_deployment, set_deployment_paused
from deployments.services.backfill import DEFAULT_BACKFILL_MAX, backfill_deployment, backfill_window_text
from orchestrator.cli import ServiceCommand, follow_run, limit_text
from orchestrator.core.parameters import parameters_from_strings
from orchestrator.core.states import StateType
from runs.models import FlowRun

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_params(items: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs from the command line (CommandError for one without '=' or a key)."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--param takes KEY=VALUE, not {item!r}.")
        pairs[key.strip()] = value
    return pairs


def parse_start_in(text: str) -> timedelta:
    """`90s`, `10m`, `2h`, `1d` (a bare number is seconds)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text or "")
    if not match:
        raise CommandError(f"--start-in takes a duration like 30s, 10m, 2h or 1d, not {text!r}.")
    return timedelta(**{UNITS[match.group(2) or "s"]: int(match.group(1))})


def parse_start_at(text: str) -> datetime:
    """An ISO 8601 date and time; without an offset it is in the server's timezone."""
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"--start-at takes an ISO 8601 date and time like 2026-05-01T09:00, not {text!r}.")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def parse_moment(option: str, text: str) -> datetime:
    """An ISO 8601 date (midnight) or date and time; without an offset, in the server's timezone."""
    try:
        moment = parse_datetime(text) or (
            datetime.combine(parsed, datetime.min.time()) if (parsed := parse_date(text)) else None
        )
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"{option} takes an ISO 8601 date or date and time like 2026-05-01T09:00, not {text!r}.")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def command_parameters(schema: dict[str, Any], params: list[str], params_json: str | None) -> dict[str, Any]:
    """--params JSON overlaid with --param KEY=VALUE pairs read for `schema`."""
    values: dict[str, Any] = {}
    if params_json:
        try:
            values = json.loads(params_json)
        except ValueError as error:
            raise CommandError(f"--params is not valid JSON: {error}.") from None
        if not isinstance(values, dict):
            raise CommandError("--params must be a JSON object.")
    values.update(parameters_from_strings(schema, parse_params(params)))
    return values


class Command(ServiceCommand):
    help = (
        "Work with deployments: ls, inspect, run, pause, resume, delete, execute (run here, without a worker), "
        "backfill."
    )

    def add_arguments(self, parser: Any) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        actions.add_parser("ls", help="List deployments.")
        for name, text in (
            ("inspect", "Show a deployment: all fields, schedules, next runs."),
            ("pause", "Pause a deployment: its schedules make no runs."),
            ("resume", "Resume a paused deployment."),
            ("delete", "Delete a deployment and its runs that have not started."),
        ):
            actions.add_parser(name, help=text).add_argument("deployment", metavar="FLOW/DEPLOYMENT")
        run = actions.add_parser("run", help="Create a run of the deployment for a worker to pick up.")
        run.add_argument("deployment", metavar="FLOW/DEPLOYMENT")
        self.add_param_arguments(run)
        run.add_argument("--params", metavar="JSON", help="Parameters as a JSON object.")
        when = run.add_mutually_exclusive_group()
        when.add_argument("--start-in", metavar="DURATION", help="Start after 30s, 10m, 2h, 1d.")
        when.add_argument("--start-at", metavar="ISO", help="Start at this date and time.")
        run.add_argument(
            "--watch",
            action="store_true",
            help="Follow its states and logs until it ends; exit 0 only when it COMPLETED.",
        )
        backfill = actions.add_parser(
            "backfill", help="Make the runs the deployment's schedules would have made between --start and --end."
        )
        backfill.add_argument("deployment", metavar="FLOW/DEPLOYMENT")
        backfill.add_argument("--start", required=True, metavar="ISO", help="From this date and time (included).")
        backfill.add_argument("--end", required=True, metavar="ISO", help="Up to this date and time (included).")
        backfill.add_argument(
            "--schedule",
            action="append",
            default=[],
            metavar="SLUG",
            help="Only this schedule (repeatable; default: every active schedule).",
        )
        backfill.add_argument("--dry-run", action="store_true", help="List the runs it would make; make none.")
        backfill.add_argument(
            "--max",
            type=int,
            default=DEFAULT_BACKFILL_MAX,
            metavar="N",
            help=f"Refuse to make more than N runs (default {DEFAULT_BACKFILL_MAX}).",
        )
        execute = actions.add_parser("execute", help="Create a run of the deployment and run it here, now.")
        execute.add_argument("deployment", metavar="FLOW/DEPLOYMENT")
        self.add_param_arguments(execute)

    @staticmethod
    def add_param_arguments(parser: Any) -> None:
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="A parameter for this run (repeatable); VALUE is read as JSON unless the parameter is a string.",
        )

    def do_ls(self, **_: Any) -> None:
        deployments = Deployment.objects.select_related("flow", "work_pool", "work_queue").prefetch_related("schedules")
        rows = []
        for d in deployments:
            schedules = "; ".join(s.describe() + ("" if s.active else " (inactive)") for s in d.schedules.all())
            rows.append(
                (
                    d.full_name,
                    d.pk,
                    d.work_pool.name if d.work_pool else "",
                    d.work_queue.name if d.work_queue else "",
                    schedules or "-",
                    "yes" if d.paused else "no",
                )
            )
        self.table("Deployments", ["Name", "ID", "Pool", "Queue", "Schedule", "Paused"], rows)

    def do_inspect(self, deployment: str, **_: Any) -> None:
        d = get_deployment(deployment)
        self.fields(
            [
                ("Name", d.full_name),
                ("ID", d.pk),
                ("Flow", d.flow.name),
                ("Description", d.description or "-"),
                ("Version", d.version or "-"),
                ("Entrypoint", d.entrypoint),
                ("Path", d.path or "-"),
                ("Pull steps", json.dumps(d.pull_steps) if d.pull_steps else "-"),
                ("Parameters", json.dumps(d.parameters)),
                ("Parameter schema", json.dumps(d.parameter_schema)),
                ("Enforce parameter schema", d.enforce_parameter_schema),
                ("Tags", ", ".join(d.tags) or "-"),
                ("Work pool", d.work_pool.name if d.work_pool else "-"),
                ("Work queue", d.work_queue.name if d.work_queue else "(routed by tags)"),
                ("Job variables", json.dumps(d.job_variables)),
                ("Concurrency limit", limit_text(d.concurrency_limit)),
                ("Paused", d.paused),
                ("Created", d.created_at.isoformat(timespec="seconds")),
                ("Updated", d.updated_at.isoformat(timespec="seconds")),
            ]
        )
        schedules = list(d.schedules.all())
        self.stdout.write("Schedules:" if schedules else "Schedules: none")
        for s in schedules:
            state = "active" if s.active else "inactive"
            overrides = f", parameters {json.dumps(s.parameters)}" if s.parameters else ""
            self.stdout.write(f"  {s.slug}: {s.describe()} [{s.describe_definition()}] ({state}{overrides})")
            if s.active and not d.paused:
                times = ", ".join(t.isoformat(timespec="minutes") for t in s.next_fire_times(3))
                self.stdout.write(f"    next: {times}")
        upcoming = FlowRun.objects.filter(deployment=d, state_type=StateType.SCHEDULED).order_by(
            "next_scheduled_start_at"
        )[:5]
        runs = [
            (r.name, r.pk, r.next_scheduled_start_at.isoformat(timespec="seconds") if r.next_scheduled_start_at else "")
            for r in upcoming
        ]
        if runs:
            self.table("Next runs", ["Name", "ID", "Starts"], runs)
        else:
            self.stdout.write("Next runs: none scheduled")

    def do_run(
        self,
        deployment: str,
        param: list[str],
        params: str | None,
        start_in: str | None,
        start_at: str | None,
        watch: bool,
        **_: Any,
    ) -> None:
        from deployments.services import create_flow_run

        d = get_deployment(deployment)
        values = command_parameters(d.parameter_schema, param, params)
        when = None
        if start_in:
            when = timezone.now() + parse_start_in(start_in)
        elif start_at:
            when = parse_start_at(start_at)
        run, _ = create_flow_run(d, parameters=values, scheduled_at=when, created_by="cli")
        queue = f" in queue {run.work_queue.name!r}" if run.work_queue else ""
        starts = f", to start at {run.expected_start_at.isoformat(timespec='seconds')}" if when else ""
        self.stdout.write(f"Created flow run '{run.name}' ({run.pk}) of '{d.full_name}'{queue}{starts}.")
        if not watch:
            return
        try:
            ended = follow_run(self.stdout.write, run, states=True)
        except KeyboardInterrupt:
            raise CommandError(f"Stopped watching; flow run '{run.name}' goes on.") from None
        if ended.state_type != StateType.COMPLETED:
            raise CommandError(f"Flow run '{ended.name}' ended {ended.state_name}: {ended.state_message}")

    def do_pause(self, deployment: str, **_: Any) -> None:
        d = set_deployment_paused(get_deployment(deployment), True)
        self.stdout.write(f"Paused deployment '{d.full_name}'.")

    def do_resume(self, deployment: str, **_: Any) -> None:
        d = set_deployment_paused(get_deployment(deployment), False)
        self.stdout.write(f"Resumed deployment '{d.full_name}'.")

    def do_delete(self, deployment: str, **_: Any) -> None:
        d = get_deployment(deployment)
        name, deployment_id = d.full_name, d.pk
        deleted = delete_deployment(d)
        extra = f" and {deleted} run(s) that had not started" if deleted else ""
        self.stdout.write(f"Deleted deployment '{name}' ({deployment_id}){extra}.")

    def do_backfill(
        self, deployment: str, start: str, end: str, schedule: list[str], dry_run: bool, max: int, **_: Any
    ) -> None:
        d = get_deployment(deployment)
        result = backfill_deployment(
            d,
            start=parse_moment("--start", start),
            end=parse_moment("--end", end),
            dry_run=dry_run,
            max_runs=max,
            schedule_slugs=schedule or None,
            created_by="backfill:cli",
        )
        rows = backfill_window_text(result)
        if rows:
            self.table(f"Backfill of {d.full_name}", ["Fire time", "Schedule", "Run"], rows)
        made = len(result.missing)
        if dry_run:
            self.stdout.write(f"Dry run: would create {made} run(s); {len(rows) - made} exist already.")
        else:
            self.stdout.write(
                f"Created {len(result.created)} run(s); {len(rows) - len(result.created)} existed already."
            )

    def do_execute(self, deployment: str, param: list[str], **_: Any) -> None:
        from deployments.services import create_local_flow_run
        from orchestrator.engine import execute_flow_run
        from orchestrator.sdk.tasks import state_text

        d = get_deployment(deployment)
        values = command_parameters(d.parameter_schema, param, None)
        run = create_local_flow_run(d, parameters=values, created_by="cli")
        outcome = execute_flow_run(str(run.pk), retry_in_process=True, created=True)
        if outcome.state_type != "COMPLETED":
            raise CommandError(f"Flow run '{run.name}' ended {state_text(outcome.state_name, outcome.message)}.")
