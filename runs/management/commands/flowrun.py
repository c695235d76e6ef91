"""`manage.py flowrun ls [--state S] [--deployment D] [--limit N] [--upcoming | --all] | inspect RUN | logs RUN [--follow] | cancel RUN`
(RUN: a flow run's id or name)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from deployments.services import get_deployment
from orchestrator.cli import ServiceCommand, follow_run, format_log
from orchestrator.core.states import parse_state_filter
from runs.models import FlowRun
from runs.services import find_flow_run, request_cancellation


def _when(moment: Any) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def _short(moment: Any) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


class Command(ServiceCommand):
    help = "Work with flow runs: ls, inspect, logs, cancel."

    def add_arguments(self, parser: Any) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        ls = actions.add_parser("ls", help="List flow runs that started or are due, newest first.")
        ls.add_argument("--state", help="Only runs in this state type (COMPLETED, FAILED, ...) or name (Late, ...).")
        ls.add_argument("--deployment", metavar="FLOW/DEPLOYMENT", help="Only runs of this deployment.")
        ls.add_argument("--limit", type=int, default=20, help="At most this many (default 20).")
        which = ls.add_mutually_exclusive_group()
        which.add_argument("--upcoming", action="store_true", help="Only runs scheduled for later, soonest first.")
        which.add_argument(
            "--all",
            action="store_true",
            dest="everything",
            help="Every run, past and future, latest expected start first.",
        )
        for name, text in (("inspect", "Show a flow run."), ("cancel", "Cancel a flow run.")):
            actions.add_parser(name, help=text).add_argument("run", metavar="ID|NAME")
        logs = actions.add_parser("logs", help="Print a flow run's logs.")
        logs.add_argument("run", metavar="ID|NAME")
        logs.add_argument("--follow", "-f", action="store_true", help="Keep printing new lines until the run ends.")

    def do_ls(
        self, state: str | None, deployment: str | None, limit: int, upcoming: bool, everything: bool, **_: Any
    ) -> None:
        if limit < 1:
            raise CommandError("--limit must be 1 or more.")
        state_type, state_name = None, None
        if state:
            try:
                state_type, state_name = parse_state_filter(state)
            except ValueError as error:
                raise CommandError(str(error)) from None
        runs = FlowRun.objects.with_related().matching(
            states=[state_type] if state_type else [],
            state_names=[state_name] if state_name else [],
            deployment=get_deployment(deployment) if deployment else None,
        )
        now = timezone.now()
        if upcoming:  # what is still to come, soonest first
            shown = list(runs.started_or_due(now, upcoming=True).order_by("expected_start_at", "id")[:limit])
        else:  # newest first: by default what started or was due, with --all the future too
            shown = (runs if everything else runs.started_or_due(now)).keyset_page(size=limit).runs
        rows = [
            (
                r.pk,
                r.name,
                r.deployment.full_name if r.deployment else r.flow.name,
                f"{r.state_name} ({r.state_type})",
                _short(r.expected_start_at),
                r.work_queue.name if r.work_queue else "-",
            )
            for r in shown
        ]
        title = "Upcoming Flow Runs" if upcoming else "Flow Runs"
        caption = (
            "" if upcoming or everything else "Runs that started or are due; --upcoming for later ones, --all for both."
        )
        self.table(
            title,
            ["ID", "Name", "Flow/Deployment", "State", "Start", "Queue"],
            rows,
            caption=caption,
            no_wrap=("ID", "Start"),
        )

    def do_inspect(self, run: str, **_: Any) -> None:
        r = find_flow_run(run)
        self.fields(
            [
                ("Name", r.name),
                ("ID", r.pk),
                ("Flow", r.flow.name),
                ("Deployment", r.deployment.full_name if r.deployment else "-"),
                ("State", f"{r.state_name} ({r.state_type})"),
                ("Message", r.state_message or "-"),
                ("Parameters", json.dumps(r.parameters)),
                ("Tags", ", ".join(r.tags) or "-"),
                ("Work pool", r.work_pool.name if r.work_pool else "-"),
                ("Work queue", r.work_queue.name if r.work_queue else "-"),
                ("Worker", r.worker.name if r.worker else "-"),
                ("Expected start", _when(r.expected_start_at)),
                ("Started", _when(r.started_at)),
                ("Ended", _when(r.ended_at)),
                ("Run count", r.run_count),
                ("Created by", r.created_by or "-"),
            ]
        )
        self.stdout.write("States:")
        for s in r.states.all():
            message = f": {s.message}" if s.message else ""
            self.stdout.write(f"  {_when(s.timestamp)}  {s.name} ({s.type}){message}")

    def do_logs(self, run: str, follow: bool, **_: Any) -> None:
        r = find_flow_run(run)
        if follow:
            try:
                follow_run(self.stdout.write, r, states=False)
            except KeyboardInterrupt:
                pass
            return
        for entry in r.logs.order_by("timestamp", "id").iterator():
            self.stdout.write(format_log(entry))

    def do_cancel(self, run: str, **_: Any) -> None:
        r = request_cancellation(find_flow_run(run), by="cli")
        self.stdout.write(f"Flow run '{r.name}' is {r.state_name} ({r.state_type}).")
