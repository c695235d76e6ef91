from django.contrib import admin

from deployments import services
from deployments.models import Deployment, DeploymentSchedule, Flow, Webhook
from orchestrator.admin_utils import apply_each
from runs.services import create_flow_run


class DeploymentScheduleInline(admin.TabularInline):
    model = DeploymentSchedule
    extra = 0
    fields = ["slug", "kind", "cron", "interval_seconds", "anchor_at", "rrule", "timezone", "active", "parameters"]


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["id", "created_at", "updated_at"]


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["__str__", "work_pool", "work_queue", "tags", "paused", "concurrency_limit", "updated_at"]
    list_filter = ["paused", "work_pool"]
    list_select_related = ["flow", "work_pool", "work_queue"]
    search_fields = ["name", "flow__name"]
    readonly_fields = ["id", "paused", "created_at", "updated_at"]
    autocomplete_fields = ["flow"]
    inlines = [DeploymentScheduleInline]
    actions = ["quick_run", "pause", "resume"]

    @admin.action(description="Quick run selected deployments (default parameters)")
    def quick_run(self, request, queryset):  # type: ignore[no-untyped-def]
        who = f"admin:{request.user.get_username()}"
        apply_each(self, request, queryset, lambda d: create_flow_run(d, created_by=who), "Created a run for")

    @admin.action(description="Pause selected deployments")
    def pause(self, request, queryset):  # type: ignore[no-untyped-def]
        apply_each(self, request, queryset, lambda d: services.set_deployment_paused(d, True), "Paused")

    @admin.action(description="Resume selected deployments")
    def resume(self, request, queryset):  # type: ignore[no-untyped-def]
        apply_each(self, request, queryset, lambda d: services.set_deployment_paused(d, False), "Resumed")


@admin.register(DeploymentSchedule)
class DeploymentScheduleAdmin(admin.ModelAdmin):
    list_display = ["deployment", "slug", "kind", "describe_definition", "timezone", "active"]
    list_filter = ["kind", "active"]
    list_select_related = ["deployment__flow"]
    search_fields = ["slug", "deployment__name", "deployment__flow__name"]


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["name", "deployment", "active", "created_at"]
    list_filter = ["active"]
    list_select_related = ["deployment__flow"]
    search_fields = ["name", "deployment__name", "deployment__flow__name"]
    readonly_fields = ["id", "slug", "hook_url", "created_at"]
    autocomplete_fields = ["deployment"]

    @admin.display(description="URL")
    def hook_url(self, webhook: Webhook) -> str:
        return webhook.get_absolute_url() if webhook.pk else "(after saving)"
