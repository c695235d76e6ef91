"""API keys in the admin: listed and revoked here; created with `manage.py apikey create`,
which is the only place the key is ever shown."""

from django.contrib import admin

from accounts.models import ApiKey
from accounts.services import revoke_api_key
from orchestrator.admin_utils import apply_each


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "scope", "pool", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope", "pool"]
    list_select_related = ["pool"]
    search_fields = ["name", "prefix"]
    readonly_fields = [f.name for f in ApiKey._meta.fields]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        apply_each(self, request, queryset, lambda key: revoke_api_key(key.name), "Revoked")
