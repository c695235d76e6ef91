"""Parameter mappings: take run parameters out of a JSON document (a webhook's body, an
automation's triggering event). A mapping is {parameter: source}; a source "$.a.b.0" reads
that path ("$" is the whole document), any other value is used as it is."""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors import ValidationError

_MISSING = object()


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and (value == "$" or value.startswith("$."))


def mapping_errors(mapping: Any) -> list[str]:
    """What is wrong with a parameter mapping, in words (empty when nothing)."""
    if not isinstance(mapping, dict):
        return ['Expected an object: parameter name -> "$.path" or a value.']
    return [
        f"{name!r}: {path!r} has an empty step."
        for name, path in mapping.items()
        if _is_path(path) and path != "$" and "" in path[2:].split(".")
    ]


def _lookup(body: Any, path: str) -> Any:
    value = body
    for step in path[2:].split(".") if path != "$" else []:
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return _MISSING
    return value


def map_parameters(mapping: dict[str, Any], body: Any) -> dict[str, Any]:
    """The run parameters `mapping` takes from `body`. Raises ValidationError naming each
    parameter whose path is not in the body."""
    parameters: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, source in mapping.items():
        value = _lookup(body, source) if _is_path(source) else source
        if value is _MISSING:
            errors[name] = [f"The body has no value at {source}."]
        else:
            parameters[name] = value
    if errors:
        first = next(iter(errors))
        raise ValidationError(f"Parameter {first!r}: {errors[first][0]}", errors)
    return parameters
