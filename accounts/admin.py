"""API keys in the admin: listed and revoked here; created with `manage.py apikey create`,
which is the only place the key is ever shown."""

from django.contrib import admin

from accounts.models import ApiKey, AuditEntry
from accounts.services import revoke_api_key
from orchestrator.admin_utils import EstimatedCountPaginator, apply_each


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

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        apply_each(self, request, queryset, lambda key: revoke_api_key(key.name), "Revoked")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit log, read-only: entries are appended by the services and never edited here."""

    list_display = ["at", "actor", "source", "action", "object_type", "object_repr"]
    list_filter = ["source", "action", "object_type"]
    search_fields = ["actor", "action", "object_repr", "object_id"]
    readonly_fields = [f.name for f in AuditEntry._meta.fields]
    date_hierarchy = "at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
