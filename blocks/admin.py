"""Variables edited as JSON; secrets written through a password field and never shown."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from blocks import services
from blocks.models import Secret, Variable
from orchestrator.core.errors import OrchestratorError


@admin.register(Variable)
class VariableAdmin(admin.ModelAdmin):
    list_display = ["name", "short_value", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="Value")
    def short_value(self, obj: Variable) -> str:
        text = repr(obj.value)
        return text if len(text) <= 80 else text[:77] + "..."

    def save_model(self, request: Any, obj: Variable, form: Any, change: bool) -> None:
        saved, _ = services.set_variable(obj.name, obj.value, tags=obj.tags)
        obj.pk = saved.pk


class SecretForm(forms.ModelForm):
    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        strip=False,
        max_length=services.MAX_SECRET_CHARS,
        help_text="Stored encrypted; never shown again. Leave empty to keep the current value.",
    )

    class Meta:
        model = Secret
        fields = ["name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:  # (a new secret has its uuid already)
            self.fields["value"].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        value = data.get("value")
        if value:
            try:
                services.check_secret_value(value)
            except OrchestratorError as error:
                self.add_error("value", str(error))
        return data


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    form = SecretForm
    list_display = ["name", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["created_at", "updated_at"]

    def save_model(self, request: Any, obj: Secret, form: Any, change: bool) -> None:
        services.save_secret(obj, form.cleaned_data.get("value") or None)
