"""The runs list's filter form: it parses the query string into FlowRunQuerySet.matching()."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms

from deployments.models import Deployment
from orchestrator.core.states import StateType
from orchestrator.input_policy import TimestampFormField
from orchestrator.schema_forms import SchemaForm
from workpools.models import WorkPool

WINDOWS: dict[str, tuple[str, timedelta | None]] = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "all": ("Any time, upcoming too", None),
}
DEFAULT_WINDOW = "7d"


class RunFilterForm(forms.Form):
    state = forms.MultipleChoiceField(choices=StateType.choices, required=False, widget=forms.CheckboxSelectMultiple)
    deployment = forms.ModelChoiceField(
        queryset=Deployment.objects.select_related("flow"), required=False, empty_label="Any deployment"
    )
    pool = forms.ModelChoiceField(
        queryset=WorkPool.objects.order_by("name"), to_field_name="name", required=False, empty_label="Any pool"
    )
    tag = forms.CharField(required=False, max_length=100, widget=forms.TextInput(attrs={"placeholder": "Any tag"}))
    window = forms.ChoiceField(choices=[(k, label) for k, (label, _) in WINDOWS.items()], required=False)
    since = TimestampFormField(
        required=False, label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = TimestampFormField(required=False, label="To", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def __init__(self, data: Any, **kwargs: Any) -> None:
        data = data.copy()
        if not data.get("window"):
            data["window"] = DEFAULT_WINDOW
        super().__init__(data, **kwargs)

    def filters(self, now: datetime) -> dict[str, Any]:
        """Keyword arguments for FlowRun.objects.matching(). A field that did not parse is left
        out (the page shows its error), so a bad value narrows nothing and breaks nothing."""
        self.is_valid()
        data = self.cleaned_data
        since, until = data.get("since"), data.get("until")
        if since is None and until is None:
            span = WINDOWS.get(data.get("window") or DEFAULT_WINDOW, WINDOWS[DEFAULT_WINDOW])[1]
            if span is not None:
                since, until = now - span, now
        return {
            "states": data.get("state") or [],
            "deployment": data.get("deployment"),
            "pool": data.get("pool"),
            "tag": (data.get("tag") or "").strip(),
            "since": since,
            "until": until,
        }


class RunInputForm(SchemaForm):
    """The input a paused run waits for: one field per field of the flow's model."""
