"""Flow parameters: the JSON schema of a flow function's signature, and validation.

One module for every surface: `deploy` stores `parameter_schema(fn)` with a deployment;
`resolve_parameters` (every way of creating a run) checks and coerces values against that stored
schema with `validate_parameters`; the engine checks them once more against the function itself
with `validate_call_parameters` right before calling it, since the code may have changed since
it was deployed. Pydantic does the checking in both cases, so a value is accepted or refused
the same way, with the same messages, wherever it comes from.

Errors are orchestrator.core.errors.ValidationError: a one-line message naming the first bad parameter, and
`errors` mapping each bad parameter to its messages.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from orchestrator.core.errors import ValidationError

if TYPE_CHECKING:
    import pydantic
    import pydantic_core
else:

    class _Lazy:
        """A module imported on first use: pydantic costs a few hundred milliseconds of start-up
        that processes importing this module only to reach a name (commands, the web app's URL
        modules) never need."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attribute: str) -> Any:
            import importlib

            return getattr(importlib.import_module(self._name), attribute)

    pydantic = _Lazy("pydantic")
    pydantic_core = _Lazy("pydantic_core")

__all__ = [
    "parameter_schema",
    "validate_parameters",
    "validate_call_parameters",
    "parameters_from_strings",
    "jsonable_parameters",
    "call_arguments",
]


# --- schema from a signature ----------------------------------------------------------------


@lru_cache(maxsize=1)
def _lenient_schema() -> type:
    """Types with no JSON form (a client object, a DataFrame) become "any value" rather than
    an error: the parameter still shows up, it just is not checked from the schema."""
    from pydantic.json_schema import GenerateJsonSchema

    class LenientSchema(GenerateJsonSchema):
        def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> dict[str, Any]:
            return {}

        def encode_default(self, dft: Any) -> Any:
            try:
                return super().encode_default(dft)
            except (pydantic_core.PydanticSerializationError, TypeError, ValueError):
                return repr(dft)

    return LenientSchema


def _model_config(extra: str) -> pydantic.ConfigDict:
    return pydantic.ConfigDict(
        extra=extra,  # type: ignore[typeddict-item]  # a str from our own two callers, not the Literal the TypedDict names
        arbitrary_types_allowed=True,
        populate_by_name=False,
        title="Parameters",
    )


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """`fn`'s signature with string annotations (`from __future__ import annotations`)
    resolved; one that cannot be resolved (a name local to a function) counts as Any."""
    try:
        return inspect.signature(fn, eval_str=True)
    except Exception:
        signature = inspect.signature(fn)
        return signature.replace(
            parameters=[
                p.replace(annotation=Any) if isinstance(p.annotation, str) else p for p in signature.parameters.values()
            ]
        )


def _usable(annotation: Any) -> Any:
    """The annotation if pydantic can check values against it, else Any."""
    if annotation is inspect.Parameter.empty:
        return Any
    try:
        pydantic.TypeAdapter(annotation)
    except Exception:
        try:  # a class pydantic knows nothing about: checked with isinstance
            pydantic.TypeAdapter(annotation, config=pydantic.ConfigDict(arbitrary_types_allowed=True))
        except Exception:
            return Any
    return annotation


@lru_cache(maxsize=512)
def _signature_model(fn: Callable[..., Any]) -> type[pydantic.BaseModel]:
    """A pydantic model with one field per parameter of `fn`. Fields get neutral names and
    the parameter's name as alias, so parameters called `model_config`, `json` or `_x` work."""
    fields: dict[str, Any] = {}
    extra = "forbid"
    for index, param in enumerate(_signature(fn).parameters.values()):
        if param.kind is param.VAR_KEYWORD:
            extra = "allow"
            continue
        annotation = _usable(param.annotation)
        if param.kind is param.VAR_POSITIONAL:
            annotation = list[annotation]  # type: ignore[valid-type]  # a type built at run time from a signature
            default: Any = []
        else:
            default = ... if param.default is param.empty else param.default
        fields[f"p{index}"] = (annotation, pydantic.Field(default, alias=param.name, title=param.name))
    return pydantic.create_model(
        f"{getattr(fn, '__name__', 'flow')}_parameters", __config__=_model_config(extra), **fields
    )


def parameter_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """The JSON schema of `fn`'s parameters: one property per parameter (type from its
    annotation, default from its default), `required` for those without a default, and no
    other properties unless it takes **kwargs."""
    schema = _signature_model(fn).model_json_schema(by_alias=True, schema_generator=_lenient_schema())
    schema.setdefault("properties", {})
    # JSONB (PostgreSQL) does not keep key order: say where each parameter goes in a form.
    for position, prop in enumerate(schema["properties"].values()):
        prop["position"] = position
    schema["additionalProperties"] = schema.get("additionalProperties", False) is not False
    return schema


# --- schema back to a model -----------------------------------------------------------------

_STRING_FORMATS: dict[str, Any] = {
    "date-time": dt.datetime,
    "date": dt.date,
    "time": dt.time,
    "duration": dt.timedelta,
    "uuid": uuid.UUID,
}
_SIMPLE_TYPES: dict[str, Any] = {"integer": int, "number": float, "boolean": bool, "null": type(None)}
_CONSTRAINTS = {
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "minItems": "min_length",
    "maxItems": "max_length",
}


class _SchemaTranslator:
    """Turns the JSON schema stored with a deployment back into a pydantic model, so stored
    schemas are checked by the same rules as the function's own signature. Covers what
    parameter_schema produces (and what people write by hand): types, formats, enums,
    unions, arrays, objects, $ref/$defs and common constraints. Anything else is "any"."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = {**schema.get("definitions", {}), **schema.get("$defs", {})}
        self.models: dict[str, Any] = {}

    def model(self, schema: dict[str, Any], name: str, *, top: bool = False) -> type[pydantic.BaseModel]:
        required = set(schema.get("required", []))
        fields: dict[str, Any] = {}
        properties = {k: p if isinstance(p, dict) else {} for k, p in (schema.get("properties") or {}).items()}
        ordered = sorted(properties.items(), key=lambda item: item[1].get("position", len(properties)))
        for index, (key, prop) in enumerate(ordered):
            default = ... if key in required else None
            fields[f"p{index}"] = (self.type_of(prop), pydantic.Field(default, alias=key, title=key))
        # The parameters object itself refuses unknown names unless the schema says otherwise
        # (a flow takes only its own parameters); nested objects follow JSON schema's default.
        extra = "forbid" if schema.get("additionalProperties", not top) is False else "allow"
        return pydantic.create_model(name, __config__=_model_config(extra), **fields)

    def type_of(self, prop: dict[str, Any]) -> Any:
        if "$ref" in prop:
            return self.ref(prop["$ref"])
        if "const" in prop:
            return Literal[prop["const"]]
        if "enum" in prop and prop["enum"]:
            return Literal[tuple(prop["enum"])]
        for key in ("anyOf", "oneOf"):
            if prop.get(key):
                return self.union([self.type_of(p) for p in prop[key] if isinstance(p, dict)])
        if isinstance(prop.get("allOf"), list) and len(prop["allOf"]) == 1:
            return self.type_of(prop["allOf"][0])
        kind = prop.get("type")
        if isinstance(kind, list):
            return self.union([self.type_of({**prop, "type": k}) for k in kind])
        return self.constrained(self.base_type(kind, prop), prop)

    def base_type(self, kind: Any, prop: dict[str, Any]) -> Any:
        if kind == "string":
            return _STRING_FORMATS.get(prop.get("format", ""), str)
        if kind in _SIMPLE_TYPES:
            return _SIMPLE_TYPES[kind]
        if kind == "array":
            items = prop.get("items")
            return list[self.type_of(items) if isinstance(items, dict) else Any]  # type: ignore[misc]  # a type built at run time from a JSON schema
        if kind == "object":
            if prop.get("properties"):
                return self.model(prop, prop.get("title") or "Object")
            values = prop.get("additionalProperties")
            return dict[str, self.type_of(values) if isinstance(values, dict) else Any]  # type: ignore[misc]  # a type built at run time from a JSON schema
        return Any

    def constrained(self, base: Any, prop: dict[str, Any]) -> Any:
        constraints = {_CONSTRAINTS[k]: v for k, v in prop.items() if k in _CONSTRAINTS}
        if not constraints or base is Any:
            return base
        try:
            from typing import Annotated

            return Annotated[base, pydantic.Field(**constraints)]
        except TypeError:
            return base

    def ref(self, ref: str) -> Any:
        name = ref.rsplit("/", 1)[-1]
        if name in self.models:
            return self.models[name]
        target = self.defs.get(name)
        if not isinstance(target, dict):
            return Any
        self.models[name] = Any  # a self-referencing definition stops here, as "any"
        self.models[name] = self.type_of(target)
        return self.models[name]

    @staticmethod
    def union(types: list[Any]) -> Any:
        if not types:
            return Any
        if len(types) == 1:
            return types[0]
        if type(None) in types:
            rest = [t for t in types if t is not type(None)]
            return Optional[Union[tuple(rest)]] if rest else type(None)  # noqa: UP007, UP045  (Optional[Union[...]] of a runtime tuple; no `|` spelling)
        return Union[tuple(types)]  # noqa: UP007  (a Union of a runtime tuple)


@lru_cache(maxsize=256)
def _schema_model(schema_json: str) -> type[pydantic.BaseModel]:
    schema = json.loads(schema_json)
    return _SchemaTranslator(schema).model(schema, "Parameters", top=True)


# --- validation -----------------------------------------------------------------------------


def _raise_invalid(error: pydantic.ValidationError) -> None:
    errors: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        loc = [str(part) for part in item["loc"]]
        key = loc[0] if loc else "parameters"
        if item["type"] == "missing":
            text = "This parameter is required."
        elif item["type"] == "extra_forbidden":
            text = f"The flow takes no parameter {key!r}."
        else:
            where = f" (at {'.'.join(loc[1:])})" if len(loc) > 1 else ""
            text = f"{item['msg']}{where}; got {item['input']!r}."
        errors.setdefault(key, []).append(text)
    first = next(iter(errors))
    raise ValidationError(f"Invalid parameter {first!r}: {errors[first][0]}", errors) from None


def _require_object(values: Any) -> None:
    if not isinstance(values, dict):
        raise ValidationError("Parameters must be a JSON object.", {"parameters": ["Expected an object."]})


def validate_parameters(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Check `values` against a stored parameter schema and coerce them ("3" for an integer
    becomes 3). Returns JSON-ready values: only those given, never the schema's defaults.
    Raises ValidationError naming each bad, unknown or missing parameter."""
    _require_object(values)
    if not isinstance(schema, dict) or "properties" not in schema:
        return dict(values)
    model = _schema_model(json.dumps(schema))
    try:
        checked = model.model_validate(values)
    except pydantic.ValidationError as error:
        _raise_invalid(error)
    return checked.model_dump(mode="json", by_alias=True, exclude_unset=True)


def validate_call_parameters(fn: Callable[..., Any], values: dict[str, Any]) -> dict[str, Any]:
    """Check `values` against `fn`'s signature and coerce them to its annotations (a dict
    for a pydantic model parameter becomes the model, "2024-01-02" for a date a date).
    Returns the Python values to call `fn` with (only those given; its defaults apply to the
    rest). Raises ValidationError naming each bad, unknown or missing parameter."""
    _require_object(values)
    model = _signature_model(fn)
    try:
        checked = model.model_validate(values)
    except pydantic.ValidationError as error:
        _raise_invalid(error)
    given = checked.model_fields_set
    result = {
        field.alias or name: getattr(checked, name) for name, field in model.model_fields.items() if name in given
    }
    result.update(checked.model_extra or {})
    return result


def call_arguments(fn: Callable[..., Any], values: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments that call `fn` with the parameters `values` (as
    stored on a run: positional-only and *args parameters cannot be passed by name)."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    rest = dict(values)
    for param in inspect.signature(fn).parameters.values():
        if param.name not in rest:
            continue
        if param.kind is param.POSITIONAL_ONLY:
            args.append(rest.pop(param.name))
        elif param.kind is param.VAR_POSITIONAL:
            args.extend(rest.pop(param.name))
    kwargs.update(rest)
    return args, kwargs


def jsonable_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """`values` as JSON for storing on a run; a value with no JSON form is stored as its repr."""
    return pydantic_core.to_jsonable_python(values, fallback=repr)


def _accepts_plain_strings(prop: Any) -> bool:
    if not isinstance(prop, dict) or not prop:
        return False
    if prop.get("type") == "string" and "format" not in prop:
        return True
    return any(_accepts_plain_strings(p) for p in prop.get("anyOf", []) + prop.get("oneOf", []))


def parameters_from_strings(schema: dict[str, Any], pairs: dict[str, str]) -> dict[str, Any]:
    """Values typed as text (`--param k=v`, a form field) read for `schema`: a parameter that
    takes a string keeps the text as it is (so `zip=02134` stays a string); any other reads
    it as JSON when it is valid JSON (`n=3`, `tags=["a","b"]`), else keeps the text and lets
    validation say what is wrong with it."""
    properties = (schema or {}).get("properties", {}) if isinstance(schema, dict) else {}
    values: dict[str, Any] = {}
    for key, text in pairs.items():
        if _accepts_plain_strings(properties.get(key)):
            values[key] = text
            continue
        try:
            values[key] = json.loads(text)
        except (ValueError, RecursionError):  # too deep for the parser: the caller's policy says so
            values[key] = text
    return values
