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
from typing import Any, ClassVar, Self

import pydantic

from orchestrator.core.errors import NotFound, ValidationError
from orchestrator.engine import FlowLoadError, load_module
from workpools.services.pools import check_concurrency_limit

DEFAULT_SPEC_FILE = "deployments.yaml"


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


class _Entry(pydantic.BaseModel):
    """A mapping of a spec file, checked by pydantic: unknown keys are errors, values keep their
    JSON types (no coercion: `tags: yes` is refused, not turned into a string)."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    # What to say about a field when pydantic refuses its value (the field is named beside it).
    messages: ClassVar[dict[str, str]] = {}

    @classmethod
    def parse(cls, raw: Any) -> Self:
        """The entry, or ValidationError(message, {field: [message]}) for the first field at
        fault, an unknown key first; the field is dotted for nested mappings."""
        try:
            return cls.model_validate(raw)
        except pydantic.ValidationError as error:
            problems = sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden")
            problem = problems[0]
            # The field at fault: the first part of the location (the rest names union members).
            top = where = str(problem["loc"][0]) if problem["loc"] else ""
            if problem["type"] == "extra_forbidden":
                message = f"unknown field (known: {', '.join(sorted(cls.known(top, where)))})."
            elif problem["type"] == "value_error":
                message = str(problem["ctx"]["error"])
            else:
                message = cls.messages.get(top, problem["msg"])
            raise ValidationError(message, {where: [message]}) from None

    @classmethod
    def known(cls, top: str, where: str) -> set[str]:
        return set(cls.model_fields)


class _Schedule(_Entry):
    cron: str | None = None
    interval: int | float | None = None
    rrule: str | None = None
    timezone: str | None = None
    active: bool | None = None
    parameters: dict[str, Any] | None = None
    anchor_date: Any = None
    slug: str | None = None
    catchup: str | None = None
    catchup_max_runs: int | None = None
    overlap_policy: str | None = None
    max_lateness_seconds: int | None = None

    messages: ClassVar[dict[str, str]] = {
        "active": "active must be true or false.",
        "parameters": "parameters must be a mapping.",
        "interval": "interval is a whole number of seconds, at least 1.",
        "max_lateness_seconds": "max_lateness_seconds must be a whole number of seconds, 0 or more.",
    }

    @pydantic.model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [kind for kind in ("cron", "interval", "rrule") if getattr(self, kind) not in (None, "")]
        if len(kinds) != 1:
            raise ValueError("give exactly one of cron, interval (seconds) or rrule.")
        seconds = self.interval
        if seconds is not None and (isinstance(seconds, bool) or seconds < 1 or seconds != int(seconds)):
            raise ValueError("interval is a whole number of seconds, at least 1.")
        return self


class _WorkPool(_Entry):
    name: str = pydantic.Field(min_length=1)
    work_queue_name: str | None = None
    job_variables: dict[str, Any] | None = None

    messages: ClassVar[dict[str, str]] = {"job_variables": "must be a mapping."}


class _Deployment(_Entry):
    name: str = pydantic.Field(min_length=1)
    entrypoint: str = pydantic.Field(min_length=1)
    description: str | int | float | None = None
    version: str | int | float | None = None
    tags: list[str] | None = None
    parameters: dict[str, Any] | None = None
    work_pool: Any = None
    schedules: Any = None  # a list, checked below: an empty value of any kind means none
    schedule: Any = None
    concurrency_limit: Any = None
    enforce_parameter_schema: bool = True
    pull: list[Any] | None = None
    overlap_policy: str = "allow"
    max_lateness_seconds: int | None = pydantic.Field(default=None, ge=0)

    messages: ClassVar[dict[str, str]] = {
        "name": "required, a non-empty string.",
        "entrypoint": "required, a non-empty string.",
        "description": "must be text.",
        "version": "must be text.",
        "tags": "must be a list of strings.",
        "parameters": "must be a mapping of parameter names to values.",
        "work_pool": "required: a mapping with `name` (and optionally work_queue_name, job_variables).",
        "schedules": "must be a list.",
        "enforce_parameter_schema": "must be true or false.",
        "pull": "must be a list of steps.",
        "overlap_policy": "must be text: allow, skip, buffer_one or cancel_running.",
        "max_lateness_seconds": "must be a whole number of seconds, 0 or more.",
    }

    @pydantic.field_validator("name", "entrypoint")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("required, a non-empty string.")
        return value.strip()

    @pydantic.field_validator("tags")
    @classmethod
    def _no_empty_tag(cls, value: list[str] | None) -> list[str] | None:
        if value and not all(value):
            raise ValueError("must be a list of strings.")
        return value

    @pydantic.field_validator("concurrency_limit")
    @classmethod
    def _limit(cls, value: Any) -> Any:
        try:
            check_concurrency_limit(value)
        except ValidationError:
            raise ValueError("must be a whole number, 0 or more.") from None
        return value


class _SpecFile(_Entry):
    # `name`, `prefect-version`, `build` and `push` are accepted so a Prefect prefect.yaml reads.
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    pull: list[Any] | None = None
    deployments: list[Any] = pydantic.Field(min_length=1)
    name: Any = None
    prefect_version: Any = pydantic.Field(default=None, alias="prefect-version")
    build: Any = None
    push: Any = None

    messages: ClassVar[dict[str, str]] = {
        "pull": "`pull` must be a list of steps.",
        "deployments": "`deployments` must be a list with at least one deployment.",
    }

    @classmethod
    def known(cls, top: str, where: str) -> set[str]:
        return {"pull", "deployments"}


def parse_spec(data: Any, *, project_dir: Path, source: str = DEFAULT_SPEC_FILE) -> DeploySpec:
    """A spec file's content (parsed YAML or the mapping a .py spec builds) as DeploymentDefinitions.
    Raises ValidationError naming the file, the deployment and the field at fault."""
    if not isinstance(data, dict):
        raise ValidationError(f"{source}: expected a mapping with `deployments:` (and optionally `pull:`).")
    try:
        spec = _SpecFile.parse(data)
    except ValidationError as error:
        field_name = next(iter(error.errors))
        text = (
            f"unknown top-level key {field_name!r} (known: pull, deployments)."
            if str(error).startswith("unknown field")
            else str(error)
        )
        raise ValidationError(f"{source}: {text}") from None
    definitions = [
        _parse_deployment(item, position, spec.pull or [], source)
        for position, item in enumerate(spec.deployments, start=1)
    ]
    return DeploySpec(deployments=definitions, project_dir=project_dir, source=source)


def _parse_deployment(item: Any, position: int, pull: list[Any], source: str) -> DeploymentDefinition:
    if not isinstance(item, dict):
        raise ValidationError(f"{source}: deployment {position} must be a mapping.")
    label = f"deployment {item.get('name')!r}" if item.get("name") else f"deployment {position}"

    def bad(field_name: str, message: str) -> ValidationError:
        return ValidationError(f"{source}: {label}, field {field_name!r}: {message}")

    try:
        entry = _Deployment.parse(item)
    except ValidationError as error:
        raise bad(next(iter(error.errors)), str(error)) from None
    raw_pool = {"name": entry.work_pool} if isinstance(entry.work_pool, str) else entry.work_pool
    if not isinstance(raw_pool, dict) or not raw_pool.get("name"):
        raise bad("work_pool", _Deployment.messages["work_pool"])
    try:
        pool = _WorkPool.parse(raw_pool)
    except ValidationError as error:
        field_name = next(iter(error.errors))
        raise bad(
            f"work_pool.{field_name}",
            str(error) if field_name in raw_pool or "unknown" in str(error) else _Deployment.messages["work_pool"],
        ) from None
    raw_schedules = (
        entry.schedules if entry.schedules is not None else ([entry.schedule] if entry.schedule is not None else [])
    )
    raw_schedules = raw_schedules or []
    if not isinstance(raw_schedules, list):
        raise bad("schedules", _Deployment.messages["schedules"])
    schedules = []
    for number, raw in enumerate(raw_schedules, start=1):
        try:
            schedules.append(schedule_definition(raw))
        except ValidationError as error:
            raise bad(f"schedules[{number}]", str(error)) from None
    return DeploymentDefinition(
        name=entry.name,
        entrypoint=entry.entrypoint,
        work_pool=pool.name,
        work_queue=pool.work_queue_name or None,
        job_variables=pool.job_variables or {},
        description=str(entry.description or ""),
        version=str(entry.version or ""),
        tags=list(entry.tags or []),
        parameters=entry.parameters or {},
        schedules=schedules,
        concurrency_limit=entry.concurrency_limit,
        enforce_parameter_schema=entry.enforce_parameter_schema,
        pull_steps=entry.pull if "pull" in item else pull,
        overlap_policy=entry.overlap_policy,
        max_lateness_seconds=entry.max_lateness_seconds,
    )


def schedule_definition(raw: Any) -> dict[str, Any]:
    """A spec file's schedule (`cron: "0 9 * * *"` / `interval: 600` / `rrule: ...`, with
    timezone, active, parameters, anchor_date, slug, catchup) as sync_schedules takes it."""
    if not isinstance(raw, dict):
        raise ValidationError("a schedule is a mapping with one of cron, interval or rrule.")
    try:
        entry = _Schedule.parse(raw)
    except ValidationError as error:
        field_name = next(iter(error.errors))
        if str(error).startswith("unknown field"):
            raise ValidationError(str(error).replace("unknown field", f"unknown field {field_name!r}", 1)) from None
        raise
    kind = next(kind for kind in ("cron", "interval", "rrule") if getattr(entry, kind) not in (None, ""))
    definition: dict[str, Any] = {"kind": kind, "timezone": entry.timezone or "UTC"}
    if kind == "interval":
        definition["interval_seconds"] = int(entry.interval or 0)
    else:
        definition[kind] = str(getattr(entry, kind))
    if entry.active is not None:
        definition["active"] = entry.active
    if entry.parameters is not None:
        definition["parameters"] = entry.parameters
    if entry.anchor_date is not None:
        definition["anchor_at"] = str(entry.anchor_date)
    for key in ("slug", "catchup", "catchup_max_runs", "overlap_policy", "max_lateness_seconds"):
        if getattr(entry, key) is not None:
            definition[key] = getattr(entry, key)
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
    entry: dict[str, Any] = (
        {"interval": definition["interval_seconds"]} if kind == "interval" else {kind: definition[kind]}
    )
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
    entries = [
        e for e in data.get("deployments") or [] if not (isinstance(e, dict) and e.get("name") == definition.name)
    ]
    entries.append(entry)
    data["deployments"] = entries
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def flow_deployment(
    flow: Any,
    name: str,
    *,
    work_pool_name: str,
    work_queue_name: str | None = None,
    parameters: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    description: str | None = None,
    version: str = "",
    cron: str | None = None,
    interval: int | None = None,
    rrule: str | None = None,
    timezone: str = "UTC",
    schedules: list[dict[str, Any]] | None = None,
    entrypoint: str | None = None,
    pull_steps: list[dict[str, Any]] | None = None,
    job_variables: dict[str, Any] | None = None,
    concurrency_limit: int | None = None,
    enforce_parameter_schema: bool = True,
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
        name=name,
        entrypoint=entrypoint,
        work_pool=work_pool_name,
        work_queue=work_queue_name,
        job_variables=job_variables or {},
        description=flow.description if description is None else description,
        version=version,
        tags=list(tags or []),
        parameters=dict(parameters or {}),
        schedules=definitions,
        concurrency_limit=concurrency_limit,
        enforce_parameter_schema=enforce_parameter_schema,
        pull_steps=pull_steps,
    )
