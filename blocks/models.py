"""Variables and secrets: named values that flows read at run time, kept in the orchestrator
rather than in code. A secret's value is stored encrypted (blocks.crypto) and never shown."""

from __future__ import annotations

import uuid

from django.core.validators import RegexValidator
from django.db import models

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$"
name_validator = RegexValidator(
    NAME_PATTERN, "Use up to 100 letters, digits, '_', '-' and '.', starting with a letter, digit or '_'."
)


class Variable(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    value = models.JSONField(
        null=True, blank=True, help_text="Any JSON value: a string, a number, a list, an object..."
    )
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Secret(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    encrypted_value = models.TextField(editable=False, help_text="Fernet token; the clear value is never stored.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
