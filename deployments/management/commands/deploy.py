"""`manage.py deploy`: create or update deployments.

deploy ENTRYPOINT -n NAME -p POOL [-q QUEUE] [--param k=v]... [--params JSON] [--tag T]...
       [--cron EXPR | --interval SECONDS | --rrule RRULE] [--timezone TZ]
       [--description TEXT] [--version V]          flags, for CI: never prompts
deploy --all | --name N [--name M]... [--file deployments.yaml]    from the spec file; flags
       (-p, -q, --param, --params, --tag, --cron/--interval/--rrule, --description, --version)
       override the file's values for the deployments deployed
deploy                                             on a terminal: the wizard
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from deployments.management.commands.deployment import parse_params
from deployments.services.deploying import DeployResult, apply_deployment_spec, deploy_definitions
from deployments.specs import DEFAULT_SPEC_FILE, DeploymentDefinition, load_spec_file
from orchestrator.cli import ServiceCommand


class Command(ServiceCommand):
    help = "Deploy flows: from flags (ENTRYPOINT -n NAME -p POOL), from the spec file (--all / --name), or with the wizard."

    def add_base_argument(self, parser: Any, *args: Any, **kwargs: Any) -> None:
        # --version is the deployment's version here, not Django's.
        if "--version" not in args:
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("entrypoint", nargs="?", metavar="ENTRYPOINT", help="path/to/file.py:function")
        parser.add_argument(
            "-n",
            "--name",
            action="append",
            default=[],
            dest="names",
            help="The deployment's name; without ENTRYPOINT, a deployment of the spec file to deploy (repeatable).",
        )
        parser.add_argument("--all", action="store_true", help="Deploy every deployment of the spec file.")
        parser.add_argument(
            "--file", default=DEFAULT_SPEC_FILE, help=f"The spec file (default: ./{DEFAULT_SPEC_FILE})."
        )
        parser.add_argument("-p", "--pool", help="Work pool.")
        parser.add_argument("-q", "--queue", help="Work queue of the pool (default: routed by tags).")
        parser.add_argument(
            "--param", action="append", default=[], metavar="KEY=VALUE", help="A default parameter (repeatable)."
        )
        parser.add_argument("--params", metavar="JSON", help="Default parameters as a JSON object.")
        parser.add_argument("--tag", action="append", default=[], dest="tags", help="A tag (repeatable).")
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--cron", help="A cron schedule, e.g. '0 9 * * 1-5'.")
        when.add_argument("--interval", type=int, metavar="SECONDS", help="An interval schedule, in seconds.")
        when.add_argument("--rrule", help="An RFC 5545 recurrence rule schedule.")
        parser.add_argument("--timezone", default="UTC", help="The schedule's timezone (default UTC).")
        parser.add_argument("--description", default="")
        parser.add_argument("--version", dest="deployment_version", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["entrypoint"]:
            self.deploy_from_flags(options)
        elif options["all"] or options["names"]:
            if options["all"] and options["names"]:
                raise CommandError("Give --all or --name, not both.")
            spec = load_spec_file(Path(options["file"]))
            for definition in spec.deployments:
                apply_flags(definition, options)
            self.report(apply_deployment_spec(spec, names=None if options["all"] else options["names"]))
        elif sys.stdin.isatty() and sys.stdout.isatty():
            from deployments.wizard import Wizard

            try:
                Wizard(self.stdout, Path.cwd(), spec_file=Path(options["file"])).run(self.report)
            except KeyboardInterrupt:
                raise CommandError("Cancelled; nothing was deployed.") from None
        else:
            raise CommandError(
                "Missing ENTRYPOINT (path/to/file.py:function) with -n NAME and -p POOL, or --all / --name NAME "
                f"to deploy from {options['file']}; the wizard needs a terminal."
            )

    def deploy_from_flags(self, options: dict[str, Any]) -> None:
        names = options["names"]
        if not names:
            raise CommandError("Missing --name (-n): the deployment's name.")
        if len(names) > 1:
            raise CommandError("Give one --name (-n) with an ENTRYPOINT.")
        if not options["pool"]:
            raise CommandError("Missing --pool (-p): the work pool to deploy to.")
        definition = DeploymentDefinition(
            name=names[0],
            entrypoint=options["entrypoint"],
            work_pool=options["pool"],
            work_queue=options["queue"],
            description=options["description"],
            version=options["deployment_version"],
            tags=options["tags"],
            parameters=params_option(options),
            parameter_strings=parse_params(options["param"]),
            schedules=schedule_options(options),
        )
        self.report(deploy_definitions([definition], project_dir=Path.cwd()))

    def report(self, results: list[DeployResult]) -> None:
        for result in results:
            d = result.deployment
            verb = "Created" if result.created else "Updated"
            self.stdout.write(f"{verb} deployment '{d.full_name}' (pool {d.work_pool.name!r}).")
            if result.schedules.created or result.schedules.updated or result.schedules.deleted:
                s = result.schedules
                self.stdout.write(
                    f"  Schedules: {len(s.created)} new, {len(s.updated)} changed, {len(s.deleted)} removed."
                )
        self.stdout.write("View one with:")
        for result in results:
            self.stdout.write(f"    manage.py deployment inspect '{result.deployment.full_name}'")
        self.stdout.write(f"Deployed {len(results)} deployment(s).")


def params_option(options: dict[str, Any]) -> dict[str, Any]:
    """--params JSON as a dict ({} without it); CommandError for anything but a JSON object."""
    if not options["params"]:
        return {}
    try:
        parameters = json.loads(options["params"])
    except ValueError as error:
        raise CommandError(f"--params is not valid JSON: {error}.") from None
    if not isinstance(parameters, dict):
        raise CommandError("--params must be a JSON object.")
    return parameters


def schedule_options(options: dict[str, Any]) -> list[dict[str, Any]]:
    schedules = []
    for kind in ("cron", "interval", "rrule"):
        if options[kind] is not None:
            key = "interval_seconds" if kind == "interval" else kind
            schedules.append({"kind": kind, key: options[kind], "timezone": options["timezone"]})
    return schedules


def apply_flags(definition: DeploymentDefinition, options: dict[str, Any]) -> None:
    """Flags given with --name/--all override the spec file's values for those deployments
    (parameters are merged over the file's), so no flag is silently dropped."""
    if options["pool"]:
        definition.work_pool = options["pool"]
        definition.work_queue = options["queue"]  # the file's queue belongs to the file's pool
    elif options["queue"]:
        definition.work_queue = options["queue"]
    definition.parameters = {**definition.parameters, **params_option(options)}
    definition.parameter_strings = {**definition.parameter_strings, **parse_params(options["param"])}
    if options["tags"]:
        definition.tags = list(options["tags"])
    if schedules := schedule_options(options):
        definition.schedules = schedules
    if options["description"]:
        definition.description = options["description"]
    if options["deployment_version"]:
        definition.version = options["deployment_version"]
