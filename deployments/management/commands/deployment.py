"""`manage.py deployment execute FLOW/DEPLOYMENT [--param KEY=VALUE]...`: run a deployment's
flow right here, without a worker (the tutorial's `deployment execute`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from deployments.parameters import parameters_from_strings
from deployments.services import get_deployment
from runs.errors import OrchestratorError


def parse_params(items: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs from the command line (CommandError for one without '=' or a key)."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--param takes KEY=VALUE, not {item!r}.")
        pairs[key.strip()] = value
    return pairs


class Command(BaseCommand):
    help = "Work with deployments. `deployment execute FLOW/DEPLOYMENT` runs one here, without a worker."

    def add_arguments(self, parser: Any) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        execute = actions.add_parser("execute", help="Create a run of the deployment and run it here, now.")
        execute.add_argument("deployment", metavar="FLOW/DEPLOYMENT")
        execute.add_argument(
            "--param", action="append", default=[], metavar="KEY=VALUE",
            help="A parameter for this run (repeatable); VALUE is read as JSON unless the parameter is a string.",
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "execute":
            self.execute_deployment(options["deployment"], options["param"])

    def execute_deployment(self, name: str, params: list[str]) -> None:
        from orchestrator.engine import execute_flow_run
        from orchestrator.sdk.tasks import state_text
        from runs.services import create_local_flow_run

        try:
            deployment = get_deployment(name)
            values = parameters_from_strings(deployment.parameter_schema, parse_params(params))
            run = create_local_flow_run(deployment, parameters=values, created_by="cli")
            outcome = execute_flow_run(str(run.pk), retry_in_process=True, created=True)
        except OrchestratorError as error:
            raise CommandError(str(error)) from None
        if outcome.state_type != "COMPLETED":
            raise CommandError(f"Flow run '{run.name}' ended {state_text(outcome.state_name, outcome.message)}.")
