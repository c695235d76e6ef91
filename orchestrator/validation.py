"""Saving a model through its own validation (fields, clean(), constraints), for services whose
rules are the model's: the error comes back as a ValidationError with a message per field."""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.utils.deconstruct import deconstructible

from accounts import audit
from orchestrator.core.errors import ValidationError
from orchestrator.core.names import check_name

M = TypeVar("M", bound=models.Model)


def save_validated(obj: M) -> M:
    """full_clean() then save(). Raises orchestrator.core.errors.ValidationError (fields -> messages)."""
    try:
        obj.full_clean()
    except DjangoValidationError as error:
        errors = {
            ("non_field_errors" if field == NON_FIELD_ERRORS else field): list(messages)
            for field, messages in error.message_dict.items()
        }
        field, messages = next(iter(errors.items()))
        raise ValidationError(
            messages[0] if field == "non_field_errors" else f"{field}: {messages[0]}", errors
        ) from None
    obj.save()
    return obj


def update_validated(obj: M, **fields: object) -> M:
    """Set `fields` on `obj`, then save_validated(obj), with an audit entry of what changed."""
    before, after = audit.changes(obj, fields)
    for name, value in fields.items():
        setattr(obj, name, value)
    with transaction.atomic():
        save_validated(obj)
        if after:
            audit.record(f"{obj._meta.model_name}.update", obj, before=before, after=after)
    return obj


@deconstructible
class NameValidator:
    """A model field validator applying orchestrator.core.names (the one naming rule), so the
    admin's forms and full_clean() refuse what the services refuse, with the same message."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __call__(self, value: object) -> None:
        try:
            check_name(value, self.what)
        except ValidationError as error:
            raise DjangoValidationError(str(error), code="invalid_name") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NameValidator) and other.what == self.what

    def __hash__(self) -> int:
        return hash(self.what)
