"""Base job templates: the one way a work pool's infrastructure is configured.

A template has two parts (the model users know from Prefect):

    {"variables": {"type": "object", "properties": {"image": {"type": "string", "default": "...",
                                                              "description": "..."}, ...}},
     "job_configuration": {"image": "{{ image }}", "env": "{{ env }}", ...}}

`variables` is a JSON schema (draft 2020-12) of what a deployment or a run may set;
`job_configuration` is what the pool's infrastructure type reads, with `{{ name }}`
placeholders naming variables. A value that is exactly one placeholder takes the variable's
value with its JSON type (a list stays a list); a placeholder inside a longer string is
replaced by the value's text.

The values a run gets, from weakest to strongest: the schema's defaults < the pool's
`job_variables` < the deployment's < the run's. `env` is merged key by key at every layer, so a
deployment can add one variable without repeating the pool's.

Everything about templates lives here: defaults per type (from the type's module, through the
registry), checking a template, checking variables against it (with field errors), merging the
layers and rendering. Services call these; surfaces only translate the ValidationError.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from orchestrator.core.errors import ValidationError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
WHOLE_PLACEHOLDER = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
TEMPLATE_KEYS = ("job_configuration", "variables")


def default_base_job_template(pool_type: str) -> dict[str, Any]:
    """A fresh copy of the default template of `pool_type` (ValidationError if unknown)."""
    from workpools.infrastructure.registry import infrastructure_class

    return copy.deepcopy(infrastructure_class(pool_type).default_base_job_template)


def effective_template(pool: Any) -> dict[str, Any]:
    """The pool's template; its type's default when it has none stored (pools made before
    templates existed)."""
    return pool.base_job_template or default_base_job_template(pool.type)


def _properties(template: dict[str, Any]) -> dict[str, Any]:
    return dict((template.get("variables") or {}).get("properties") or {})


def check_base_job_template(template: Any, *, field: str = "base_job_template") -> dict[str, Any]:
    """`template` if it is a usable template, else ValidationError naming what is wrong: not an
    object, unknown or missing keys, a `variables` section that is not a valid JSON schema of an
    object, a placeholder naming no variable, a default its own schema refuses."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    def bad(message: str, where: str = field) -> ValidationError:
        return ValidationError(f"{where}: {message}", {where: [message]})

    if not isinstance(template, dict):
        raise bad("must be a JSON object with job_configuration and variables.")
    unknown = sorted(set(template) - set(TEMPLATE_KEYS))
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)}; a template has only job_configuration and variables.")
    for key in TEMPLATE_KEYS:
        if not isinstance(template.get(key), dict):
            raise bad("must be a JSON object.", f"{field}.{key}")
    variables = template["variables"]
    if variables.get("type", "object") != "object" or not isinstance(variables.get("properties", {}), dict):
        raise bad('must be a JSON schema of an object: {"type": "object", "properties": {...}}.', f"{field}.variables")
    try:
        Draft202012Validator.check_schema(variables)
    except SchemaError as error:
        where = ".".join(str(part) for part in error.absolute_path)
        raise bad(
            f"is not a valid JSON schema: {error.message}" + (f" (at {where})" if where else ""), f"{field}.variables"
        ) from None
    names = set(_properties(template))
    missing = sorted({name for name in _placeholders(template["job_configuration"])} - names)
    if missing:
        raise bad(
            f"refers to undeclared variable(s) {', '.join(missing)}; declare them under variables.properties.",
            f"{field}.job_configuration",
        )
    defaults = {
        name: spec["default"]
        for name, spec in _properties(template).items()
        if isinstance(spec, dict) and "default" in spec
    }
    errors = _schema_errors(template, defaults, f"{field}.variables.properties", suffix=".default")
    if errors:
        raise ValidationError(_one_line(errors), errors)
    return template


def _one_line(errors: dict[str, list[str]]) -> str:
    """Every field error in one line (what the CLI prints)."""
    return "; ".join(f"{key}: {message}" for key, messages in errors.items() for message in messages)


def check_job_variables(template: dict[str, Any], variables: Any, *, field: str = "job_variables") -> dict[str, Any]:
    """`variables` if the template accepts them (each one declared, each value valid against
    its schema), else ValidationError with one message per offending variable, keyed
    `<field>.<name>`. Checks one layer on its own: required variables are not enforced here
    (the pool's defaults may supply them)."""
    if variables in (None, ""):
        return {}
    if not isinstance(variables, dict):
        raise ValidationError(f"{field}: must be a JSON object of job variables.", {field: ["Must be a JSON object."]})
    known = _properties(template)
    errors: dict[str, list[str]] = {}
    for name in variables:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            errors[f"{field}.{name}"] = [f"Unknown job variable {name!r} for this work pool (known: {listed})."]
    errors.update(_schema_errors(template, {k: v for k, v in variables.items() if k in known}, field))
    if errors:
        raise ValidationError(_one_line(errors), errors)
    return variables


def _schema_errors(
    template: dict[str, Any], values: dict[str, Any], field: str, *, suffix: str = ""
) -> dict[str, list[str]]:
    from jsonschema import Draft202012Validator

    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        schema = _properties(template).get(name)
        if not isinstance(schema, dict):
            continue
        for error in sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path)):
            inner = "".join(f"[{part!r}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
            errors.setdefault(f"{field}.{name}{suffix}{inner}", []).append(_sentence(error.message))
    return errors


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def merge_job_variables(layers: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """Later layers win; `env` is merged key by key (values as strings)."""
    merged: dict[str, Any] = {}
    env: dict[str, str] | None = None
    for layer in layers:
        for key, value in (layer or {}).items():
            if key == "env" and isinstance(value, dict):
                env = {**(env or {}), **{str(k): str(v) for k, v in value.items()}}
            else:
                merged[key] = copy.deepcopy(value)
    if env is not None:
        merged["env"] = env
    return merged


def template_defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {
        name: copy.deepcopy(spec["default"])
        for name, spec in _properties(template).items()
        if isinstance(spec, dict) and "default" in spec
    }


def render(value: Any, variables: dict[str, Any]) -> Any:
    """`value` (a job_configuration or any part of it) with its placeholders filled. A variable
    with no value renders as None (alone) or as nothing (inside a string)."""
    if isinstance(value, dict):
        return {key: render(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, variables) for item in value]
    if isinstance(value, str):
        whole = WHOLE_PLACEHOLDER.match(value)
        if whole:
            return copy.deepcopy(variables.get(whole.group(1)))
        return PLACEHOLDER.sub(lambda m: _text(variables.get(m.group(1))), value)
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, bool)):
        import json

        return json.dumps(value)
    return str(value)


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_placeholders(item) for item in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_placeholders(item) for item in value)) if value else set()
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    return set()


def job_variables_for(run: Any) -> dict[str, Any]:
    """The run's job variables: its pool's template defaults < the pool's job_variables <
    the deployment's < the run's own."""
    pool = run.work_pool if run.work_pool_id else None
    return merge_job_variables(
        [
            template_defaults(effective_template(pool)) if pool is not None else {},
            pool.job_variables if pool is not None else {},
            run.deployment.job_variables if run.deployment_id else {},
            run.job_variables or {},
        ]
    )


def job_configuration_for(run: Any) -> dict[str, Any]:
    """The run's job configuration: its pool's template rendered with job_variables_for(run)."""
    if not run.work_pool_id:
        return {}
    template = check_base_job_template(effective_template(run.work_pool))  # edited by hand since?
    return render(template["job_configuration"], job_variables_for(run))


def check_for_pool(pool: Any, variables: Any, *, field: str = "job_variables") -> dict[str, Any]:
    """check_job_variables against `pool`'s template; no pool, nothing to check."""
    if pool is None:
        return variables or {}
    return check_job_variables(effective_template(pool), variables, field=field)


def field_messages(error: ValidationError, field: str) -> list[str]:
    """A ValidationError's messages as one form field's list: "image: Must be a string."
    (for Django forms and model clean(), whose errors must name a real field)."""
    messages = []
    for key, items in (error.errors or {field: [str(error)]}).items():
        where = key[len(field) + 1 :] if key.startswith(field + ".") else ("" if key == field else key)
        messages.extend(f"{where}: {item}" if where else item for item in items)
    return messages
