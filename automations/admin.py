"""Automations are edited here (the same validation as the API: the model's rules); their firings
are read-only."""

from django.contrib import admin

from automations.models import Automation, AutomationFiring


@admin.register(Automation)
class AutomationAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "deployment", "tag", "state_type", "action", "target_deployment", "url"]
    list_filter = ["enabled", "action", "state_type"]
    list_select_related = ["deployment__flow", "target_deployment__flow"]
    search_fields = ["name", "tag", "url"]
    autocomplete_fields = ["deployment", "target_deployment"]


@admin.register(AutomationFiring)
class AutomationFiringAdmin(admin.ModelAdmin):
    list_display = ["created_at", "automation", "flow_run", "state", "status", "attempts", "last_error"]
    list_filter = ["status", "automation"]
    list_select_related = ["automation", "flow_run", "state"]
    readonly_fields = [f.name for f in AutomationFiring._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
