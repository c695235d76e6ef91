"""Deploying: DeploymentDefinitions (from deployments.specs) checked as a whole, then written in one
transaction.

Every surface builds DeploymentDefinitions and calls `deploy_definitions`: it loads each
entrypoint (importing the user's file, as the engine will), checks it is a flow, that the pool and
queue exist, the parameters fit the flow's signature, the schedules and pull steps are valid and
any repository URL is safe; only then does it write, all deployments in one transaction, so a bad
spec saves nothing.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction

from accounts import audit
from deployments import schedule_times
from deployments.models import Deployment
from deployments.services.deployments import get_or_create_flow
from deployments.services.editing import RUN_FIELDS, check_default_parameters
from deployments.services.schedules import SyncResult, policy_errors, reschedule_deployment, sync_schedules
from deployments.specs import DeploymentDefinition, DeploySpec
from orchestrator.core.errors import NotFound, ValidationError
from orchestrator.core.names import check_name
from orchestrator.core.parameters import parameters_from_strings
from orchestrator.core.paths import confined, relative_path_problem
from orchestrator.engine import FlowLoadError, load_flow
from orchestrator.engine.steps import STEPS, check_repository_url, check_storage_url
from workpools.services import get_work_pool, get_work_queue
from workpools.services.pools import check_concurrency_limit


@dataclass
class DeployResult:
    deployment: Deployment
    created: bool
    schedules: SyncResult


@dataclass
class _Prepared:
    definition: DeploymentDefinition
    flow_name: str
    flow_description: str
    parameter_schema: dict[str, Any]
    parameters: dict[str, Any]
    pool: Any
    queue: Any
    path: str
    pull_steps: list[dict[str, Any]]


def deploy_definitions(definitions: Iterable[DeploymentDefinition], *, project_dir: Path) -> list[DeployResult]:
    """Create or update each deployment (matched by flow and name), with its schedules.

    Everything is checked before anything is written: ValidationError / NotFound name the
    deployment and what is wrong, and then nothing is saved. A redeploy updates the deployment in
    place and, when what its runs copy changed (parameters, tags, pool, queue), replaces its
    not-yet-started scheduled runs. `project_dir` is where entrypoints are relative to (and the
    code's place for workers when no git_clone step fetches it).

    Concurrency: all rows are written in one transaction; two deploys of the same new deployment
    at once leave one row (the unique flow/name constraint), the loser gets a ValidationError."""
    project_dir = project_dir.resolve()
    definitions = list(definitions)
    if not definitions:
        raise ValidationError("Nothing to deploy.")
    seen: set[tuple[str, str]] = set()
    prepared = []
    for definition in definitions:
        item = _prepare(definition, project_dir)
        key = (item.flow_name, definition.name)
        if key in seen:
            raise ValidationError(f"Deployment {definition.name!r} of flow {item.flow_name!r} is listed twice.")
        seen.add(key)
        prepared.append(item)
    try:
        with transaction.atomic():
            return [_write(item) for item in prepared]
    except IntegrityError:
        raise ValidationError("Another deploy changed these deployments at the same moment; deploy again.") from None


def _prepare(definition: DeploymentDefinition, project_dir: Path) -> _Prepared:
    def fail(message: str) -> ValidationError:
        return ValidationError(f"Deployment {definition.name!r}: {message}")

    check_name(definition.name, "deployment name")
    pull_steps = definition.pull_steps or []
    try:
        check_pull_steps(pull_steps)
    except ValidationError as error:
        raise fail(str(error)) from None
    if not definition.entrypoint:
        raise fail("it needs an entrypoint (path/to/file.py:function).")
    definition.entrypoint = _relative_entrypoint(
        definition.entrypoint, project_dir, fail, workdir=local_workdir(pull_steps, project_dir)
    )
    flow = _load_flow(definition.entrypoint, local_workdir(pull_steps, project_dir), fail)

    if not definition.work_pool:
        raise fail("it needs a work pool.")
    try:
        pool = get_work_pool(definition.work_pool)
        queue = get_work_queue(pool, definition.work_queue) if definition.work_queue else None
    except NotFound as error:
        raise fail(str(error)) from None
    from workpools.infrastructure.templates import check_for_pool

    try:
        check_for_pool(pool, definition.job_variables, field="work_pool.job_variables")
    except ValidationError as error:
        raise fail(str(error)) from None

    schema = flow.parameter_schema
    parameters = {**(definition.parameters or {}), **parameters_from_strings(schema, definition.parameter_strings)}
    try:
        parameters = check_default_parameters(schema, parameters, enforce=definition.enforce_parameter_schema)
    except ValidationError as error:
        raise fail(str(error)) from None
    for position, schedule in enumerate(definition.schedules, start=1):
        spec = schedule_times.ScheduleSpec.of_definition(schedule)
        try:
            schedule_times.validate_schedule(spec)
        except ValidationError as error:
            raise fail(f"schedule {position}: {error}") from None
    try:
        check_concurrency_limit(definition.concurrency_limit)
    except ValidationError:
        raise fail("concurrency_limit must be a whole number, 0 or more.") from None
    if errors := policy_errors(definition.overlap_policy, definition.max_lateness_seconds):
        raise fail(next(iter(errors.values()))[0])
    fetches_code = any(_step_name(step) in ("git_clone", "pull_from_remote_storage") for step in pull_steps)
    return _Prepared(
        definition=definition,
        flow_name=flow.name,
        flow_description=flow.description,
        parameter_schema=schema,
        parameters=parameters,
        pool=pool,
        queue=queue,
        path="" if fetches_code else str(project_dir),
        pull_steps=pull_steps,
    )


def _write(item: _Prepared) -> DeployResult:
    definition = item.definition
    flow = get_or_create_flow(item.flow_name, description=item.flow_description)
    values = {
        "description": definition.description or "",
        "version": definition.version or "",
        "entrypoint": definition.entrypoint,
        "path": item.path,
        "pull_steps": item.pull_steps,
        "parameters": item.parameters,
        "parameter_schema": item.parameter_schema,
        "enforce_parameter_schema": definition.enforce_parameter_schema,
        "tags": list(dict.fromkeys(definition.tags or [])),
        "work_pool_id": item.pool.pk,
        "work_queue_id": item.queue.pk if item.queue else None,
        "job_variables": definition.job_variables or {},
        "concurrency_limit": definition.concurrency_limit,
        "overlap_policy": definition.overlap_policy,
        "max_lateness_seconds": definition.max_lateness_seconds,
    }
    deployment = Deployment.objects.select_for_update().filter(flow=flow, name=definition.name).first()
    created = deployment is None
    runs_change = False
    if deployment is None:
        deployment = Deployment(flow=flow, name=definition.name)
    else:
        runs_change = any(getattr(deployment, name) != values[name] for name in RUN_FIELDS)
    before, after = audit.changes(deployment, values) if not created else ({}, {})
    for name, value in values.items():
        setattr(deployment, name, value)
    deployment.save(force_insert=created)
    if runs_change:
        reschedule_deployment(deployment)
    try:
        result = sync_schedules(deployment, definition.schedules)
    except ValidationError as error:
        raise ValidationError(f"Deployment {definition.name!r}: {error}", error.errors) from None
    audit.record(
        "deployment.create" if created else "deployment.deploy",
        deployment,
        before=None if created else before,
        after=values if created else after,
    )
    return DeployResult(deployment=deployment, created=created, schedules=result)


def _relative_entrypoint(entrypoint: str, project_dir: Path, fail: Any, *, workdir: Path | None = None) -> str:
    """The entrypoint, its file checked to be inside the project directory once resolved
    (symlinks and `..` included; relative paths are relative to `workdir`, default the project
    directory); an absolute path (a flow's own file, from to_deployment) is made relative to
    the project directory. A file outside it is refused, however it is written."""
    path, sep, function = entrypoint.rpartition(":")
    if not sep or not path:
        return entrypoint  # loading it says what is wrong with it
    try:
        file = confined(path, workdir or project_dir, what="The entrypoint's file", inside=project_dir)
    except ValidationError:
        raise fail(
            f"{path} is not inside the project directory {project_dir}; deploy from the project's root."
        ) from None
    if not Path(path).is_absolute():
        return entrypoint
    return f"{file.relative_to(project_dir.resolve()).as_posix()}:{function}"


def flow_parameter_schema(entrypoint: str, directory: Path) -> dict[str, Any]:
    """The parameter schema of the flow at `entrypoint` (relative to `directory`), loaded as
    deploy loads it (the wizard asks for parameters with it). ValidationError if it cannot load."""

    def fail(message: str) -> ValidationError:
        return ValidationError(message)

    return dict(_load_flow(entrypoint, directory.resolve(), fail).parameter_schema)


def _load_flow(entrypoint: str, workdir: Path, fail: Any) -> Any:

    saved_path, saved_modules = list(sys.path), set(sys.modules)
    try:
        return load_flow(entrypoint, workdir)
    except FlowLoadError as error:
        raise fail(str(error)) from None
    finally:
        sys.path[:] = saved_path
        # Keep the flow module (its functions are still referenced) but not its neighbours'
        # names, so the next entrypoint imports its own helpers, not a stale same-named one.
        for name in set(sys.modules) - saved_modules:
            if not name.startswith("__orchestrator_flow_") and _module_under(sys.modules.get(name), workdir):
                sys.modules.pop(name, None)


def _module_under(module: Any, directory: Path) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and str(Path(file).resolve()).startswith(str(directory))


def _step_name(step: Any) -> str:
    return str(next(iter(step))).rsplit(".", 1)[-1] if isinstance(step, dict) and len(step) == 1 else ""


def check_pull_steps(steps: Any) -> None:
    """Pull steps as the engine will run them: a list of one-key mappings naming known steps
    with options they take; a git_clone repository must be safe (steps.check_repository_url).
    Tokens are never written in a step: `access_token_env` names the variable holding one."""
    if not isinstance(steps, list):
        raise ValidationError("pull must be a list of steps.")
    for position, step in enumerate(steps, start=1):
        name = _step_name(step)
        if not name:
            raise ValidationError(f"pull step {position} must be a mapping of one step name to its options.")
        function = STEPS.get(name)
        if function is None:
            raise ValidationError(f"pull step {position} {name!r} is unknown (known: {', '.join(sorted(STEPS))}).")
        options = next(iter(step.values()))
        if not isinstance(options, dict):
            raise ValidationError(f"pull step {position} {name!r} takes a mapping of options.")
        try:
            inspect.signature(function).bind(Path(), **options)
        except TypeError as error:
            raise ValidationError(f"pull step {position} {name!r}: {error}.") from None
        if name == "git_clone":
            check_repository_url(options.get("repository"))
        directory = options.get("directory")
        if isinstance(directory, str) and (problem := relative_path_problem(directory)):
            raise ValidationError(f"pull step {position} {name!r}: the directory {directory!r} {problem}.")
        if name == "pull_from_remote_storage":
            check_storage_url(options.get("url"))


def local_workdir(steps: list[dict[str, Any]], project_dir: Path) -> Path:
    """Where the entrypoint is, here at deploy time: the project directory stands in for a
    git_clone's checkout (it is the repository), and set_working_directory steps apply."""
    workdir = project_dir
    for step in steps:
        name, options = _step_name(step), next(iter(step.values()))
        if name in ("git_clone", "pull_from_remote_storage"):  # the project stands in for the code it fetches
            workdir = project_dir / options.get("directory", "") if options.get("directory") else project_dir
        elif name == "set_working_directory":
            workdir = workdir / options["directory"]
    return workdir


def apply_deployment_spec(spec: DeploySpec, *, names: Iterable[str] | None = None) -> list[DeployResult]:
    """Deploy the spec's deployments, or only those named (NAME or FLOW/NAME is not needed:
    deployment names within one spec file). NotFound for a name the file does not hold."""
    chosen = spec.deployments
    if names is not None:
        wanted = list(dict.fromkeys(names))
        by_name = {d.name: d for d in spec.deployments}
        missing = [name for name in wanted if name not in by_name]
        if missing:
            known = ", ".join(sorted(by_name)) or "none"
            raise NotFound(f"{spec.source} has no deployment named {missing[0]!r} (it has: {known}).")
        chosen = [by_name[name] for name in wanted]
    return deploy_definitions(chosen, project_dir=spec.project_dir)
