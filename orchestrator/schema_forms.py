"""Forms generated from a JSON schema (as orchestrator.core.parameters builds it from a function's
signature, or pydantic from a model): one field per property, in order, with a widget for its
type, its default filled in and a mark when it is required. Used by the Custom Run form (a
deployment's parameters) and the input form of a paused run. The form judges nothing: it reads
the typed text the way every surface reads text (orchestrator.core.parameters.parameters_from_strings),
and the service decides what is valid; its errors are shown next to the fields they name.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django import forms

from orchestrator import input_policy
from orchestrator.core.errors import ValidationError as ServiceValidationError
from orchestrator.core.parameters import parameters_from_strings

PARAMETER_PREFIX = "parameters."
NON_FINITE = {"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def _resolve(prop: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """A property with its $ref (or single allOf $ref) replaced by the definition it names."""
    if not isinstance(prop, dict):
        return {}
    ref = prop.get("$ref") or next((p.get("$ref") for p in prop.get("allOf", []) if isinstance(p, dict)), None)
    if not ref:
        return prop
    target = defs.get(str(ref).rsplit("/", 1)[-1], {})
    return {**target, **{k: v for k, v in prop.items() if k not in ("$ref", "allOf")}}


def _describe(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The one shape a form can show for a property: Optional[x] (anyOf x, null) shows as x,
    a wider union as any JSON value."""
    prop = _resolve(prop, defs)
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "oneOf")}
    if "type" not in prop and "enum" not in prop:
        options = [_resolve(p, defs) for p in prop.get("anyOf") or prop.get("oneOf") or []]
        options = [p for p in options if p.get("type") != "null"]
        return {**options[0], **rest} if len(options) == 1 else rest
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return {**rest, "type": kind}


def _widget(shape: dict[str, Any]) -> tuple[type[forms.Field], forms.Widget]:
    kind, fmt = shape.get("type"), shape.get("format")
    if shape.get("enum"):
        choices = [("", "—")] + [(str(v), str(v)) for v in shape["enum"]]
        return forms.CharField, forms.Select(choices=choices)
    if kind == "boolean":
        return forms.BooleanField, forms.CheckboxInput()
    if kind == "integer":
        return forms.CharField, forms.NumberInput(attrs={"step": "1"})
    if kind == "number":
        return forms.CharField, forms.NumberInput(attrs={"step": "any"})
    if kind == "string":
        html_type = {"date": "date", "date-time": "datetime-local", "time": "time"}.get(fmt, "text")
        return forms.CharField, forms.TextInput(attrs={"type": html_type})
    return forms.CharField, forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "json"})


def _as_text(value: Any, shape: dict[str, Any]) -> Any:
    """A default as the field shows it: strings as they are, anything else as JSON."""
    if value is None or shape.get("type") == "boolean":
        return value
    if isinstance(value, str) and (shape.get("type") == "string" or shape.get("enum")):
        return value
    return json.dumps(value)


class SchemaForm(forms.Form):
    """A form with one field per property of `schema`, initial values from `defaults` (else
    the schema's defaults)."""

    def __init__(self, schema: Any, defaults: dict[str, Any] | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = schema if isinstance(schema, dict) else {}
        self.schema = schema
        defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        defaults = defaults or {}
        ordered = sorted(properties.items(), key=lambda item: _resolve(item[1], {}).get("position", math.inf))
        self.parameter_names: list[str] = []
        self.kinds: dict[str, str] = {}
        for name, prop in ordered:
            shape = _describe(prop if isinstance(prop, dict) else {}, defs)
            field_class, widget = _widget(shape)
            field = field_class(
                label=shape.get("title") or name, required=False, widget=widget, help_text=shape.get("description", "")
            )
            if isinstance(field, forms.CharField):
                field.strip = False
            field.initial = _as_text(defaults.get(name, shape.get("default")), shape)
            field.schema_required = name in required
            field.schema_type = shape.get("format") or shape.get("type") or "any"
            if name in required:
                widget.attrs["aria-required"] = "true"
            self.fields[PARAMETER_PREFIX + name] = field
            self.parameter_names.append(name)
            self.kinds[name] = shape.get("type") or "any"

    def parameter_fields(self) -> list[forms.BoundField]:
        return [self[PARAMETER_PREFIX + name] for name in self.parameter_names]

    def clean(self) -> dict[str, Any]:
        """Read the typed text into values; a field left empty is left out, so a default applies
        (a required one without a default is then reported by the service)."""
        data = super().clean()
        texts: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name in self.parameter_names:
            value = data.get(PARAMETER_PREFIX + name)
            if isinstance(value, bool):
                values[name] = value
            elif value not in (None, ""):
                texts[name] = value
        values.update(parameters_from_strings(self.schema, texts))
        for name, value in values.items():
            if not _storable(value, self.kinds[name], texts.get(name)):
                self.add_error(PARAMETER_PREFIX + name, "Enter a value without NaN or Infinity.")
            elif texts.get(name) is not None and (problem := _json_policy_problem(texts[name])):
                self.add_error(PARAMETER_PREFIX + name, problem)
        self.parameter_values = values
        return data

    def parameters(self) -> dict[str, Any]:
        return self.parameter_values

    def add_service_errors(self, error: ServiceValidationError) -> None:
        """Show the service's errors next to the parameters they name; others on top."""
        if not error.errors:
            self.add_error(None, str(error))
        for key, problems in error.errors.items():
            target = PARAMETER_PREFIX + key if key in self.parameter_names else None
            for problem in problems:
                self.add_error(target, problem if target else f"{key}: {problem}")


def _json_policy_problem(text: str) -> str | None:
    """What the input policy refuses in JSON typed into a field (too deep, a NUL or a lone
    surrogate inside), else None; text that is not JSON is a string value, not refused here."""
    try:
        input_policy.loads(text, field="value")
    except ServiceValidationError as refused:
        return next(iter(refused.errors.values()))[0] if refused.errors else str(refused)
    except ValueError:
        return None  # not JSON: the text is the value
    return None


def _storable(value: Any, kind: str, text: str | None) -> bool:
    """No database's JSON column takes NaN or Infinity, which Python's json reads and a
    number parameter would turn "inf" into."""
    if kind in ("number", "integer") and text is not None and text.strip().lower() in NON_FINITE:
        return False
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True
