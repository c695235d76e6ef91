"""Variables and secrets: the rules every surface (admin, API, CLI, the client's transports)
goes through."""

from __future__ import annotations

import json
import re
from typing import Any

from django.db import IntegrityError, transaction

from blocks.crypto import decrypt, encrypt
from blocks.models import NAME_PATTERN, Secret, Variable
from orchestrator.core.errors import NotFound, ValidationError

MAX_VARIABLE_BYTES = 64 * 1024
MAX_SECRET_CHARS = 64 * 1024


def check_name(name: str, kind: str = "variable") -> str:
    name = (name or "").strip()
    if not re.match(NAME_PATTERN, name):
        raise ValidationError(
            f"{name!r} is not a valid {kind} name: use up to 100 letters, digits, '_', '-' and '.'.",
            {"name": ["Use up to 100 letters, digits, '_', '-' and '.', starting with a letter, digit or '_'."]},
        )
    return name


# --- variables ---


def set_variable(name: str, value: Any, *, tags: list[str] | None = None) -> tuple[Variable, bool]:
    """Create or overwrite the variable `name` (any JSON value up to 64 KiB). Returns it and
    whether it was created."""
    name = check_name(name)
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise ValidationError("A variable's value must be JSON.", {"value": ["Not a JSON value."]}) from None
    if size > MAX_VARIABLE_BYTES:
        raise ValidationError(
            f"A variable's value is at most {MAX_VARIABLE_BYTES} bytes of JSON (this one is {size}).",
            {"value": [f"At most {MAX_VARIABLE_BYTES} bytes of JSON."]},
        )
    defaults: dict[str, Any] = {"value": value}
    if tags is not None:
        defaults["tags"] = list(tags)
    try:
        with transaction.atomic():
            return Variable.objects.update_or_create(name=name, defaults=defaults)
    except IntegrityError:  # created by another request at the same moment: overwrite it
        with transaction.atomic():
            return Variable.objects.update_or_create(name=name, defaults=defaults)


def get_variable(name: str) -> Variable:
    variable = Variable.objects.filter(name=(name or "").strip()).first()
    if variable is None:
        raise NotFound(f"No variable named {name!r}.")
    return variable


def delete_variable(name: str) -> None:
    get_variable(name).delete()


def parse_value(text: str) -> Any:
    """A value typed on the command line: JSON when it reads as JSON (`42`, `[1, 2]`,
    `{"a": 1}`, `"quoted"`), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


# --- secrets ---


def check_secret_value(value: Any) -> str:
    """ValidationError unless `value` is a non-empty text of at most 64 KiB; SecretsKeyError
    when there is no usable key to encrypt it with. Returns it encrypted."""
    if not isinstance(value, str) or not value:
        raise ValidationError("A secret needs a value.", {"value": ["This field may not be blank."]})
    if len(value) > MAX_SECRET_CHARS:
        raise ValidationError("A secret is at most 64 KiB.", {"value": [f"At most {MAX_SECRET_CHARS} characters."]})
    return encrypt(value)


def set_secret(name: str, value: str) -> tuple[Secret, bool]:
    """Create or overwrite the secret `name`, stored encrypted. Returns it and whether it was created."""
    name = check_name(name, "secret")
    token = check_secret_value(value)
    with transaction.atomic():
        return Secret.objects.update_or_create(name=name, defaults={"encrypted_value": token})


def save_secret(secret: Secret, value: str | None) -> Secret:
    """Save `secret` as edited (its name, say), with a new value when one is given; a new
    secret needs one."""
    check_name(secret.name, "secret")
    if value is not None or not secret.encrypted_value:
        secret.encrypted_value = check_secret_value(value)
    secret.save()
    return secret


def get_secret(name: str) -> Secret:
    secret = Secret.objects.filter(name=(name or "").strip()).first()
    if secret is None:
        raise NotFound(f"No secret named {name!r}.")
    return secret


def read_secret_value(name: str) -> str:
    """The clear value of the secret `name` (callers decide who may: accounts.permissions)."""
    return decrypt(get_secret(name).encrypted_value)


def delete_secret(name: str) -> None:
    get_secret(name).delete()
