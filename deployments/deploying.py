"""Deploying flows: a deployment spec (deployments.yaml, `manage.py deploy` flags, the wizard,
`my_flow.deploy(...)`) checked as a whole, then written in one transaction.

    pull:
      - git_clone: {repository: https://github.com/org/flows.git, branch: main, access_token_env: GIT_TOKEN}
      - set_working_directory: {directory: sub}
    deployments:
      - name: leonardo-deployment
        entrypoint: flows/hello.py:leonardo_dicapriflow
        parameters: {name: Leo}
        tags: [tutorial, test]
        work_pool: {name: my-process-pool, work_queue_name: null, job_variables: {}}
        schedules:
          - cron: "0 9 * * 1-5"
            timezone: Europe/Berlin

Every surface builds DeploymentDefinitions and calls `deploy_definitions`: it loads each
entrypoint (importing the user's file, as the engine will), checks it is a flow, that the pool and
queue exist, the parameters fit the flow's signature, the schedules and pull steps are valid and
any repository URL is safe; only then does it write, all deployments in one transaction, so a bad
spec saves nothing.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction

from deployments import scheduling
from deployments.models import Deployment
from deployments.parameters import parameters_from_strings, validate_parameters
from deployments.services import SyncResult, get_or_create_flow, reschedule_deployment, sync_schedules
from deployments.steps import STEPS, check_repository_url
from runs.errors import NotFound, ValidationError

DEFAULT_SPEC_FILE = "deployments.yaml"
DEPLOYMENT_KEYS = {
    "name", "entrypoint", "description", "version", "tags", "parameters", "work_pool", "schedules", "schedule",
    "concurrency_limit", "enforce_parameter_schema", "pull",
}
WORK_POOL_KEYS = {"name", "work_queue_name", "job_variables"}
SCHEDULE_KEYS = {
    "cron", "interval", "rrule", "timezone", "active", "parameters", "anchor_date", "slug", "catchup",
    "catchup_max_runs",
}
# Fields whose change alters the runs a deployment's schedules already made.
RUN_FIELDS = ("parameters", "tags", "work_pool_id", "work_queue_id", "job_variables", "enforce_parameter_schema")


@dataclass
class DeploymentDefinition:
    """One deployment as a person described it. `parameter_strings` are `--param k=v` texts,
    read for the flow's schema once it is loaded; `pull_steps` None means "no pull steps"."""

    name: str
    entrypoint: str
    work_pool: str
    work_queue: str | None = None
    job_variables: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    version: str = ""
    tags: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    parameter_strings: dict[str, str] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limit: int | None = None
    enforce_parameter_schema: bool = True
    pull_steps: list[dict[str, Any]] | None = None


@dataclass
class DeploySpec:
    """A spec file's content: top-level pull steps and the deployments."""

    deployments: list[DeploymentDefinition]
    project_dir: Path
    source: str = DEFAULT_SPEC_FILE


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


# --- the service --------------------------------------------------------------------------------


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

    if not isinstance(definition.name, str) or not definition.name.strip() or "/" in definition.name:
        raise ValidationError(f"A deployment needs a name without '/', not {definition.name!r}.")
    pull_steps = definition.pull_steps or []
    try:
        check_pull_steps(pull_steps)
    except ValidationError as error:
        raise fail(str(error)) from None
    if not definition.entrypoint:
        raise fail("it needs an entrypoint (path/to/file.py:function).")
    definition.entrypoint = _relative_entrypoint(definition.entrypoint, project_dir, fail)
    flow = _load_flow(definition.entrypoint, local_workdir(pull_steps, project_dir), fail)

    from workpools.services import get_work_pool, get_work_queue

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
    if definition.enforce_parameter_schema:
        # Defaults may leave required parameters to each run: check only what is given.
        try:
            parameters = validate_parameters({**schema, "required": []}, parameters)
        except ValidationError as error:
            raise fail(str(error)) from None
    for position, schedule in enumerate(definition.schedules, start=1):
        spec = scheduling.ScheduleSpec(
            kind=schedule.get("kind", ""), cron=schedule.get("cron") or "",
            interval_seconds=schedule.get("interval_seconds"), rrule=schedule.get("rrule") or "",
            timezone=schedule.get("timezone") or "UTC",
        )
        try:
            scheduling.validate_schedule(spec)
        except ValidationError as error:
            raise fail(f"schedule {position}: {error}") from None
    if definition.concurrency_limit is not None and (
        not isinstance(definition.concurrency_limit, int) or definition.concurrency_limit < 0
    ):
        raise fail("concurrency_limit must be a whole number, 0 or more.")
    fetches_code = any(_step_name(step) == "git_clone" for step in pull_steps)
    return _Prepared(
        definition=definition, flow_name=flow.name, flow_description=flow.description,
        parameter_schema=schema, parameters=parameters, pool=pool, queue=queue,
        path="" if fetches_code else str(project_dir), pull_steps=pull_steps,
    )


def _write(item: _Prepared) -> DeployResult:
    definition = item.definition
    flow = get_or_create_flow(item.flow_name, description=item.flow_description)
    values = {
        "description": definition.description or "", "version": definition.version or "",
        "entrypoint": definition.entrypoint, "path": item.path, "pull_steps": item.pull_steps,
        "parameters": item.parameters, "parameter_schema": item.parameter_schema,
        "enforce_parameter_schema": definition.enforce_parameter_schema,
        "tags": list(dict.fromkeys(definition.tags or [])), "work_pool_id": item.pool.pk,
        "work_queue_id": item.queue.pk if item.queue else None, "job_variables": definition.job_variables or {},
        "concurrency_limit": definition.concurrency_limit,
    }
    deployment = Deployment.objects.select_for_update().filter(flow=flow, name=definition.name).first()
    created = deployment is None
    runs_change = False
    if deployment is None:
        deployment = Deployment(flow=flow, name=definition.name)
    else:
        runs_change = any(getattr(deployment, name) != values[name] for name in RUN_FIELDS)
    for name, value in values.items():
        setattr(deployment, name, value)
    deployment.save(force_insert=created)
    if runs_change:
        reschedule_deployment(deployment)
    try:
        result = sync_schedules(deployment, definition.schedules)
    except ValidationError as error:
        raise ValidationError(f"Deployment {definition.name!r}: {error}", error.errors) from None
    return DeployResult(deployment=deployment, created=created, schedules=result)


def _relative_entrypoint(entrypoint: str, project_dir: Path, fail: Any) -> str:
    """An entrypoint whose file is an absolute path (a flow's own file, from to_deployment)
    relative to the project directory; others unchanged."""
    path, sep, function = entrypoint.rpartition(":")
    if not sep or not Path(path).is_absolute():
        return entrypoint
    try:
        return f"{Path(path).resolve().relative_to(project_dir).as_posix()}:{function}"
    except ValueError:
        raise fail(f"{path} is not inside the project directory {project_dir}; deploy from the project's root.") from None


def _load_flow(entrypoint: str, workdir: Path, fail: Any) -> Any:
    from orchestrator.engine import FlowLoadError, load_flow

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
    return bool(file) and str(Path(file).resolve()).startswith(str(directory))


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


def local_workdir(steps: list[dict[str, Any]], project_dir: Path) -> Path:
    """Where the entrypoint is, here at deploy time: the project directory stands in for a
    git_clone's checkout (it is the repository), and set_working_directory steps apply."""
    workdir = project_dir
    for step in steps:
        name, options = _step_name(step), next(iter(step.values()))
        if name == "git_clone":
            workdir = project_dir / options.get("directory", "") if options.get("directory") else project_dir
        elif name == "set_working_directory":
            workdir = workdir / options["directory"]
    return workdir


# --- spec files ---------------------------------------------------------------------------------


def load_spec_file(path: Path) -> DeploySpec:
    """Read a spec file. ValidationError for a missing file, YAML syntax (with the line) and
    schema errors (naming the deployment and the field)."""
    import yaml

    if path.suffix == ".py":
        return load_python_spec(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NotFound(f"No spec file {str(path)!r} (pass another with --file).") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValidationError(f"Cannot read {path}: {error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValidationError(f"{path.name}{where}: invalid YAML: {problem}") from None
    return parse_spec(data, project_dir=path.resolve().parent, source=path.name)


def load_python_spec(path: Path) -> DeploySpec:
    """A spec written in Python: the DeploymentDefinitions a .py file holds at module level
    (made with `my_flow.to_deployment(...)`), importing it as the engine imports flows."""
    from orchestrator.engine import FlowLoadError, load_module

    if not path.is_file():
        raise NotFound(f"No spec file {str(path)!r} (pass another with --file).")
    saved_path = list(sys.path)
    try:
        module = load_module(path.name, path.resolve().parent)
    except FlowLoadError as error:
        raise ValidationError(f"{path.name}: {error}") from None
    finally:
        sys.path[:] = saved_path
    found: list[DeploymentDefinition] = []
    for value in vars(module).values():
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, DeploymentDefinition) and item not in found:
                found.append(item)
    if not found:
        raise ValidationError(f"{path.name} defines no deployment: assign my_flow.to_deployment(...) to a name.")
    return DeploySpec(deployments=found, project_dir=path.resolve().parent, source=path.name)


def parse_spec(data: Any, *, project_dir: Path, source: str = DEFAULT_SPEC_FILE) -> DeploySpec:
    def fail(message: str) -> ValidationError:
        return ValidationError(f"{source}: {message}")

    if not isinstance(data, dict):
        raise fail("expected a mapping with `deployments:` (and optionally `pull:`).")
    unknown = sorted(set(data) - {"pull", "deployments", "name", "prefect-version", "build", "push"})
    if unknown:
        raise fail(f"unknown top-level key {unknown[0]!r} (known: pull, deployments).")
    pull = data.get("pull") or []
    if not isinstance(pull, list):
        raise fail("`pull` must be a list of steps.")
    items = data.get("deployments")
    if not isinstance(items, list) or not items:
        raise fail("`deployments` must be a list with at least one deployment.")
    definitions = []
    for position, item in enumerate(items, start=1):
        definitions.append(_parse_deployment(item, position, pull, fail))
    return DeploySpec(deployments=definitions, project_dir=project_dir, source=source)


def _parse_deployment(item: Any, position: int, pull: list[Any], fail: Any) -> DeploymentDefinition:
    if not isinstance(item, dict):
        raise fail(f"deployment {position} must be a mapping.")
    label = f"deployment {item.get('name')!r}" if item.get("name") else f"deployment {position}"

    def bad(field_name: str, message: str) -> ValidationError:
        return fail(f"{label}, field {field_name!r}: {message}")

    unknown = sorted(set(item) - DEPLOYMENT_KEYS)
    if unknown:
        raise bad(unknown[0], f"unknown field (known: {', '.join(sorted(DEPLOYMENT_KEYS))}).")
    for key in ("name", "entrypoint"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise bad(key, "required, a non-empty string.")
    for key in ("description", "version"):
        if item.get(key) is not None and not isinstance(item[key], str | int | float):
            raise bad(key, "must be text.")
    tags = item.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise bad("tags", "must be a list of strings.")
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise bad("parameters", "must be a mapping of parameter names to values.")
    pool = item.get("work_pool")
    if isinstance(pool, str):
        pool = {"name": pool}
    if not isinstance(pool, dict) or not isinstance(pool.get("name"), str) or not pool["name"]:
        raise bad("work_pool", "required: a mapping with `name` (and optionally work_queue_name, job_variables).")
    if unknown := sorted(set(pool) - WORK_POOL_KEYS):
        raise bad(f"work_pool.{unknown[0]}", f"unknown field (known: {', '.join(sorted(WORK_POOL_KEYS))}).")
    job_variables = pool.get("job_variables") or {}
    if not isinstance(job_variables, dict):
        raise bad("work_pool.job_variables", "must be a mapping.")
    raw_schedules = item.get("schedules")
    if raw_schedules is None and item.get("schedule") is not None:
        raw_schedules = [item["schedule"]]
    raw_schedules = raw_schedules or []
    if not isinstance(raw_schedules, list):
        raise bad("schedules", "must be a list.")
    schedules = []
    for number, raw in enumerate(raw_schedules, start=1):
        try:
            schedules.append(schedule_definition(raw))
        except ValidationError as error:
            raise bad(f"schedules[{number}]", str(error)) from None
    limit = item.get("concurrency_limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise bad("concurrency_limit", "must be a whole number, 0 or more.")
    enforce = item.get("enforce_parameter_schema", True)
    if not isinstance(enforce, bool):
        raise bad("enforce_parameter_schema", "must be true or false.")
    steps = item.get("pull", pull)
    if not isinstance(steps, list):
        raise bad("pull", "must be a list of steps.")
    return DeploymentDefinition(
        name=item["name"].strip(), entrypoint=item["entrypoint"].strip(), work_pool=pool["name"],
        work_queue=pool.get("work_queue_name") or None, job_variables=job_variables,
        description=str(item.get("description") or ""), version=str(item.get("version") or ""),
        tags=list(tags), parameters=parameters, schedules=schedules, concurrency_limit=limit,
        enforce_parameter_schema=enforce, pull_steps=steps,
    )


def schedule_definition(raw: Any) -> dict[str, Any]:
    """A spec file's schedule (`cron: "0 9 * * *"` / `interval: 600` / `rrule: ...`, with
    timezone, active, parameters, anchor_date, slug, catchup) as sync_schedules takes it."""
    if not isinstance(raw, dict):
        raise ValidationError("a schedule is a mapping with one of cron, interval or rrule.")
    if unknown := sorted(set(raw) - SCHEDULE_KEYS):
        raise ValidationError(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(SCHEDULE_KEYS))}).")
    kinds = [kind for kind in ("cron", "interval", "rrule") if raw.get(kind) not in (None, "")]
    if len(kinds) != 1:
        raise ValidationError("give exactly one of cron, interval (seconds) or rrule.")
    kind = kinds[0]
    definition: dict[str, Any] = {"kind": kind, "timezone": raw.get("timezone") or "UTC"}
    if kind == "interval":
        seconds = raw["interval"]
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 1 or seconds != int(seconds):
            raise ValidationError("interval is a whole number of seconds, at least 1.")
        definition["interval_seconds"] = int(seconds)
    else:
        definition[kind] = str(raw[kind])
    if "active" in raw:
        if not isinstance(raw["active"], bool):
            raise ValidationError("active must be true or false.")
        definition["active"] = raw["active"]
    if raw.get("parameters") is not None:
        if not isinstance(raw["parameters"], dict):
            raise ValidationError("parameters must be a mapping.")
        definition["parameters"] = raw["parameters"]
    if raw.get("anchor_date") is not None:
        definition["anchor_at"] = str(raw["anchor_date"])
    for key in ("slug", "catchup", "catchup_max_runs"):
        if raw.get(key) is not None:
            definition[key] = raw[key]
    return definition


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


def spec_entry(definition: DeploymentDefinition) -> dict[str, Any]:
    """A definition as a spec file entry (what the wizard saves)."""
    entry: dict[str, Any] = {"name": definition.name, "entrypoint": definition.entrypoint}
    if definition.description:
        entry["description"] = definition.description
    if definition.version:
        entry["version"] = definition.version
    if definition.tags:
        entry["tags"] = list(definition.tags)
    if definition.parameters:
        entry["parameters"] = dict(definition.parameters)
    pool: dict[str, Any] = {"name": definition.work_pool}
    if definition.work_queue:
        pool["work_queue_name"] = definition.work_queue
    entry["work_pool"] = pool
    if definition.schedules:
        entry["schedules"] = [_schedule_entry(s) for s in definition.schedules]
    return entry


def _schedule_entry(definition: Mapping[str, Any]) -> dict[str, Any]:
    kind = definition["kind"]
    entry: dict[str, Any] = {"interval": definition["interval_seconds"]} if kind == "interval" else {kind: definition[kind]}
    entry["timezone"] = definition.get("timezone") or "UTC"
    return entry


def save_to_spec_file(path: Path, definition: DeploymentDefinition, pull_steps: list[dict[str, Any]]) -> None:
    """Add `definition` to the spec file at `path` (replacing one of the same name), creating
    the file if needed; `pull_steps` become its top-level pull section when it has none."""
    import yaml

    data: dict[str, Any] = {}
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValidationError(f"{path.name} is not a spec file (a mapping); not changing it.")
        data = loaded
    entry = spec_entry(definition)
    if pull_steps and not data.get("pull"):
        data["pull"] = pull_steps
    elif (data.get("pull") or []) != pull_steps:
        entry["pull"] = pull_steps  # this deployment gets its code another way than the file's others
    entries = [e for e in data.get("deployments") or [] if not (isinstance(e, dict) and e.get("name") == definition.name)]
    entries.append(entry)
    data["deployments"] = entries
    path.write_text(yaml.safe_dump(data, sort_keys=False))




def flow_deployment(
    flow: Any, name: str, *, work_pool_name: str, work_queue_name: str | None = None,
    parameters: dict[str, Any] | None = None, tags: list[str] | None = None, description: str | None = None,
    version: str = "", cron: str | None = None, interval: int | None = None, rrule: str | None = None,
    timezone: str = "UTC", schedules: list[dict[str, Any]] | None = None, entrypoint: str | None = None,
    pull_steps: list[dict[str, Any]] | None = None, job_variables: dict[str, Any] | None = None,
    concurrency_limit: int | None = None, enforce_parameter_schema: bool = True,
) -> DeploymentDefinition:
    """A deployment of a flow object, as `my_flow.to_deployment(...)` describes it. The
    entrypoint defaults to the file defining the flow (made relative to the project directory
    when deployed); `cron` / `interval` / `rrule` add a schedule in `timezone`, `schedules`
    takes spec-file schedules (`{"cron": ..., "timezone": ...}`)."""
    if entrypoint is None:
        source = inspect.getsourcefile(flow.fn)
        if source is None:
            raise ValidationError(f"Cannot tell which file defines {flow.name!r}; pass entrypoint=.")
        entrypoint = f"{Path(source).resolve()}:{flow.fn.__name__}"
    definitions = [schedule_definition(raw) for raw in schedules or []]
    for kind, value in (("cron", cron), ("interval", interval), ("rrule", rrule)):
        if value is not None:
            definitions.append(schedule_definition({kind: value, "timezone": timezone}))
    return DeploymentDefinition(
        name=name, entrypoint=entrypoint, work_pool=work_pool_name, work_queue=work_queue_name,
        job_variables=job_variables or {}, description=flow.description if description is None else description,
        version=version, tags=list(tags or []), parameters=dict(parameters or {}), schedules=definitions,
        concurrency_limit=concurrency_limit, enforce_parameter_schema=enforce_parameter_schema, pull_steps=pull_steps,
    )
