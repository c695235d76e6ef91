"""Deployment specs: what a person wrote (deployments.yaml, a .py spec file of `flow.to_deployment()`
objects, `manage.py deploy` flags, the wizard) read into DeploymentDefinitions, and written back.

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

Parsing checks shape and names the deployment and field at fault; deployments.services.deploying
checks meaning (the flow loads, the pool exists, ...) and writes.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.core.errors import NotFound, ValidationError
from orchestrator.engine import FlowLoadError, load_module

DEFAULT_SPEC_FILE = "deployments.yaml"


DEPLOYMENT_KEYS = {
    "name", "entrypoint", "description", "version", "tags", "parameters", "work_pool", "schedules", "schedule",
    "concurrency_limit", "enforce_parameter_schema", "pull", "overlap_policy", "max_lateness_seconds",
}


WORK_POOL_KEYS = {"name", "work_queue_name", "job_variables"}


SCHEDULE_KEYS = {
    "cron", "interval", "rrule", "timezone", "active", "parameters", "anchor_date", "slug", "catchup",
    "catchup_max_runs", "overlap_policy", "max_lateness_seconds",
}


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
    overlap_policy: str = "allow"
    max_lateness_seconds: int | None = None


@dataclass
class DeploySpec:
    """A spec file's content: top-level pull steps and the deployments."""
    deployments: list[DeploymentDefinition]
    project_dir: Path
    source: str = DEFAULT_SPEC_FILE


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
    overlap = item.get("overlap_policy") or "allow"
    lateness = item.get("max_lateness_seconds")
    if lateness is not None and (not isinstance(lateness, int) or isinstance(lateness, bool) or lateness < 0):
        raise bad("max_lateness_seconds", "must be a whole number of seconds, 0 or more.")
    return DeploymentDefinition(
        name=item["name"].strip(), entrypoint=item["entrypoint"].strip(), work_pool=pool["name"],
        work_queue=pool.get("work_queue_name") or None, job_variables=job_variables,
        description=str(item.get("description") or ""), version=str(item.get("version") or ""),
        tags=list(tags), parameters=parameters, schedules=schedules, concurrency_limit=limit,
        enforce_parameter_schema=enforce, pull_steps=steps, overlap_policy=str(overlap),
        max_lateness_seconds=lateness,
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
    for key in ("slug", "catchup", "catchup_max_runs", "overlap_policy", "max_lateness_seconds"):
        if raw.get(key) is not None:
            definition[key] = raw[key]
    return definition


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
