"""Forms that start runs from the dashboard.

The Custom Run form is generated from the deployment's parameter schema (orchestrator.schema_forms:
one field per parameter, defaults filled in); create_flow_run decides what is valid and its
errors are shown next to the fields they name. No rule lives twice.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms

from deployments.models import Deployment
from orchestrator.schema_forms import PARAMETER_PREFIX, SchemaForm

__all__ = ["PARAMETER_PREFIX", "CustomRunForm", "QuickRunForm", "new_idempotency_key"]


def new_idempotency_key() -> str:
    return f"ui-{uuid.uuid4().hex}"


class QuickRunForm(forms.Form):
    """Quick Run carries only the key of the button that was rendered: a double click posts the
    same key twice and makes one run."""

    idempotency_key = forms.CharField(min_length=8, max_length=100)


class CustomRunForm(SchemaForm):
    run_name = forms.CharField(
        required=False, max_length=200, label="Run name", help_text="Leave empty for a generated name."
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput, min_length=8, max_length=100)

    def __init__(self, deployment: Deployment, *args: Any, **kwargs: Any) -> None:
        super().__init__(deployment.parameter_schema, deployment.parameters, *args, **kwargs)
        self.fields["idempotency_key"].initial = new_idempotency_key()

    def option_fields(self) -> list[forms.BoundField]:
        return [self["run_name"]]
