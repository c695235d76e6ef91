"""One input policy for everything a person or a client sends: JSON bodies (the API, webhooks),
JSON values typed into the dashboard, timestamps in query strings and forms, URL paths.

What no database or code path downstream can take is refused up front with a 400 naming the
field, never found later as a 500:
- JSON nested deeper than MAX_JSON_DEPTH levels (Python's parser and the code that walks a
  value recurse; PostgreSQL's jsonb has its own limit);
- a NUL character (PostgreSQL's text and jsonb refuse it) or a lone UTF-16 surrogate such as
  "\\ud800" (no UTF-8 can hold it), in any string or key, however deep;
- a timestamp with a UTC offset beyond ±15:59 (PostgreSQL refuses it) or one whose UTC time
  falls outside years 1-9999 (Python cannot convert it).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError as FormValidationError
from django_filters import filters
from django_filters.fields import IsoDateTimeField
from rest_framework import exceptions, parsers, serializers

from orchestrator.core.errors import ValidationError

MAX_JSON_DEPTH = 64
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """(where, what) for the first thing in `value` the policy refuses, else None. `where` is a
    dotted path ("parameters.a.0"); the walk is iterative, so a deep value cannot blow the stack."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return path, f"Nested deeper than {max_depth} levels."
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and (problem := text_problem(key)):
                    return _join(path, key), f"A key {problem}"
                stack.append((child, _join(path, key), depth + 1))
        elif isinstance(item, str) and (problem := text_problem(item)):
            return path, f"The text {problem}"
    return None


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored (a NUL, a lone surrogate), else None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000)."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (such as \\ud800), which is not a character."
    return None


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def check_json(value: Any, *, field: str) -> Any:
    """`value` if the policy accepts it; else ValidationError naming `field` (and the path
    inside it)."""
    problem = json_problem(value)
    if problem is not None:
        where, what = problem
        name = _join(field, where) if field else where or "body"
        raise ValidationError(f"{name}: {what}", {name: [what]})
    return value


def loads(text: str, *, field: str) -> Any:
    """json.loads under the policy: ValidationError (naming `field`) for what it refuses,
    including nesting too deep for the parser itself."""
    try:
        value = json.loads(text)
    except RecursionError:  # far deeper than the limit: where exactly is not worth finding out
        what = f"Nested deeper than {MAX_JSON_DEPTH} levels."
        name = field or "body"
        raise ValidationError(f"{name}: {what}", {name: [what]}) from None
    return check_json(value, field=field)


class PolicyJSONParser(parsers.JSONParser):
    """DRF's JSON parser under the policy: a refused body is a 400 naming the field."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            return loads(text, field="")
        except ValidationError as refused:
            raise exceptions.ValidationError(refused.errors) from None
        except ValueError as error:  # not JSON at all (json.JSONDecodeError, UnicodeDecodeError)
            raise exceptions.ParseError(f"JSON parse error - {error}") from None


# --- timestamps -------------------------------------------------------------------------------


def timestamp_problem(value: datetime) -> str | None:
    """Why `value` cannot be stored or compared (an offset PostgreSQL refuses, a UTC time
    outside years 1-9999), else None. A naive value is read in the current time zone later."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        return "The UTC offset must be between -15:59 and +15:59."
    try:
        if offset is not None:
            value.astimezone(UTC)
        else:
            (value - timedelta(days=1), value + timedelta(days=1))  # room for any time zone
    except OverflowError:
        return "The time is out of range (years 1 to 9999)."
    return None


def _checked(value: datetime | None, fail: Callable[[str], Any]) -> datetime | None:
    if value is not None and (problem := timestamp_problem(value)):
        fail(problem)
    return value


def _form_fail(problem: str) -> None:
    raise FormValidationError(problem, code="out_of_range")


class TimestampFormField(forms.DateTimeField):
    """A form's date and time (the dashboard), under the policy."""

    def to_python(self, value: Any) -> datetime | None:
        try:
            parsed = super().to_python(value)
        except OverflowError:
            _form_fail("The time is out of range (years 1 to 9999).")
        return _checked(parsed, _form_fail)


class TimestampQueryField(IsoDateTimeField):
    """An ISO 8601 timestamp in a query string, under the policy."""

    def to_python(self, value: Any) -> datetime | None:
        try:
            parsed = super().to_python(value)
        except OverflowError:
            _form_fail("The time is out of range (years 1 to 9999).")
        return _checked(parsed, _form_fail)


class TimestampFilter(filters.IsoDateTimeFilter):
    """An API list filter on a timestamp (since, until), under the policy."""

    field_class = TimestampQueryField


class TimestampField(serializers.DateTimeField):
    """A timestamp in an API body, under the policy (checked before DRF converts it to UTC,
    which would hide its offset)."""

    def enforce_timezone(self, value: datetime) -> datetime:
        problem = timestamp_problem(value)
        if problem:
            raise exceptions.ValidationError(problem)
        return super().enforce_timezone(value)
