"""Forms that start runs from the dashboard.

The Custom Run form is generated from the deployment's parameter schema (JSON schema, as built
from the flow function's signature). It only turns text into typed values; which parameters are
required or allowed is decided by create_flow_run (resolve_parameters), whose errors the form
shows next to the fields they name. No rule lives twice.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms

from deployments.models import Deployment
from runs.errors import ValidationError as ServiceValidationError

PARAMETER_PREFIX = "parameters."
NOT_GIVEN = object()


def new_idempotency_key() -> str:
    return f"ui-{uuid.uuid4().hex}"


class QuickRunForm(forms.Form):
    """Quick Run carries only the key of the button that was rendered: a double click posts the
    same key twice and makes one run."""

    idempotency_key = forms.CharField(min_length=8, max_length=100)


class JSONValueField(forms.JSONField):
    """A parameter typed in as JSON; `kind` (list or dict) is the shape it must have."""

    def __init__(self, *, kind: type | None = None, **kwargs: Any) -> None:
        self.kind = kind
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}))
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        value = _finite(super().to_python(value))
        if self.kind is not None and value not in self.empty_values and not isinstance(value, self.kind):
            shape = "a JSON list, like [1, 2]" if self.kind is list else 'a JSON object, like {"key": "value"}'
            raise forms.ValidationError(f"Enter {shape}.")
        return value


class LooseValueField(forms.CharField):
    """A parameter of no declared type: JSON when it parses as JSON, else the text itself."""

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if text in self.empty_values:
            return text
        try:
            value = json.loads(text)
        except ValueError:
            return text
        return _finite(value)

    def prepare_value(self, value: Any) -> Any:
        return value if isinstance(value, str) else json.dumps(value)


def _finite(value: Any) -> Any:
    """Python's json reads NaN and Infinity, which no database's JSON column takes."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        raise forms.ValidationError("Enter JSON without NaN or Infinity.") from None
    return value


def _declared_type(prop: dict[str, Any]) -> str | None:
    """The JSON type of a schema property; Optional[x] (a list or anyOf with null) gives x."""
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        for option in prop.get("anyOf") or prop.get("oneOf") or []:
            if isinstance(option, dict) and option.get("type") not in (None, "null"):
                return _declared_type(option)
    return kind if isinstance(kind, str) else None


def parameter_field(prop: dict[str, Any], *, label: str, required: bool) -> forms.Field:
    """One form field for one schema property. Never `required` itself: the service says so."""
    options: dict[str, Any] = {"label": label, "required": False, "help_text": prop.get("description", "")}
    kind = _declared_type(prop)
    field: forms.Field
    if prop.get("enum"):
        values = {str(v): v for v in prop["enum"]}
        field = forms.TypedChoiceField(
            choices=[("", "—")] + [(k, k) for k in values], coerce=lambda k: values[k], empty_value="", **options
        )
    elif kind == "string":
        field = forms.CharField(strip=False, **options)
    elif kind == "integer":
        field = forms.IntegerField(**options)
    elif kind == "number":
        field = forms.FloatField(widget=forms.NumberInput(attrs={"step": "any"}), **options)
    elif kind == "boolean":
        field = forms.BooleanField(**options)
    elif kind == "array":
        field = JSONValueField(kind=list, **options)
    elif kind == "object":
        field = JSONValueField(kind=dict, **options)
    else:
        field = LooseValueField(**options)
    field.schema_required = required  # type: ignore[attr-defined]
    field.schema_type = kind or "any"  # type: ignore[attr-defined]
    if required:
        field.widget.attrs["aria-required"] = "true"
    return field


class CustomRunForm(forms.Form):
    run_name = forms.CharField(
        required=False, max_length=200, label="Run name", help_text="Leave empty for a generated name."
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput, min_length=8, max_length=100)

    def __init__(self, deployment: Deployment, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["idempotency_key"].initial = new_idempotency_key()
        schema = deployment.parameter_schema or {}
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        defaults = {name: prop["default"] for name, prop in properties.items() if "default" in prop}
        defaults.update(deployment.parameters or {})
        self.parameter_names: list[str] = []
        for name, prop in properties.items():
            prop = prop if isinstance(prop, dict) else {}
            field = parameter_field(prop, label=prop.get("title") or name, required=name in required)
            field.initial = defaults.get(name)
            self.fields[PARAMETER_PREFIX + name] = field
            self.parameter_names.append(name)

    def parameter_fields(self) -> list[forms.BoundField]:
        return [self[PARAMETER_PREFIX + name] for name in self.parameter_names]

    def option_fields(self) -> list[forms.BoundField]:
        return [self["run_name"]]

    def parameters(self) -> dict[str, Any]:
        """The parameters given; a field left empty is left out, so the deployment's default
        applies (and a required one without a default is reported by the service)."""
        given = {}
        for name in self.parameter_names:
            value = self.cleaned_data.get(PARAMETER_PREFIX + name, NOT_GIVEN)
            if value is NOT_GIVEN or value in ("", None):
                continue
            given[name] = value
        return given

    def add_service_errors(self, error: ServiceValidationError) -> None:
        """Show the service's errors next to the parameters they name; others on top."""
        if not error.errors:
            self.add_error(None, str(error))
        for key, problems in error.errors.items():
            target = PARAMETER_PREFIX + key if key in self.parameter_names else None
            for problem in problems:
                self.add_error(target, problem if target else f"{key}: {problem}")
