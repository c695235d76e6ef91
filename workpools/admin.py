from django.contrib import admin

from orchestrator.admin_utils import AuditedAdmin, RolePermissions, apply_each
from workpools import services
from workpools.models import Worker, WorkPool, WorkQueue


class WorkQueueInline(admin.TabularInline):
    model = WorkQueue
    extra = 0
    fields = ["name", "priority", "concurrency_limit", "tags", "paused", "last_polled_at"]
    readonly_fields = ["paused", "last_polled_at"]
    show_change_link = True


@admin.register(WorkPool)
class WorkPoolAdmin(AuditedAdmin, RolePermissions, admin.ModelAdmin):
    list_display = ["name", "type", "concurrency_limit", "paused", "created_at"]
    list_filter = ["type", "paused"]
    search_fields = ["name", "description"]
    readonly_fields = ["id", "paused", "created_at", "updated_at"]
    inlines = [WorkQueueInline]
    actions = ["pause", "resume"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new pool gets its default queue: the same service the CLI and API use.
        # The form checked the template and job variables already (WorkPool.clean).
        created = services.create_work_pool(
            obj.name,
            type=obj.type,
            concurrency_limit=obj.concurrency_limit,
            description=obj.description,
            base_job_template=obj.base_job_template or None,
            job_variables=obj.job_variables or {},
        )
        obj.pk = created.pk
        obj._state.adding = False
        obj.refresh_from_db()

    @admin.action(description="Pause selected work pools", permissions=["pause"])
    def pause(self, request, queryset):
        apply_each(self, request, queryset, lambda p: services.set_work_pool_paused(p, True), "Paused")

    @admin.action(description="Resume selected work pools", permissions=["pause"])
    def resume(self, request, queryset):
        apply_each(self, request, queryset, lambda p: services.set_work_pool_paused(p, False), "Resumed")


@admin.register(WorkQueue)
class WorkQueueAdmin(AuditedAdmin, RolePermissions, admin.ModelAdmin):
    list_display = ["name", "pool", "priority", "concurrency_limit", "tags", "paused", "last_polled_at"]
    list_filter = ["paused", "pool"]
    list_select_related = ["pool"]
    search_fields = ["name", "pool__name"]
    readonly_fields = ["id", "paused", "last_polled_at", "created_at", "updated_at"]
    actions = ["pause", "resume"]

    @admin.action(description="Pause selected work queues", permissions=["pause"])
    def pause(self, request, queryset):
        apply_each(self, request, queryset, lambda q: services.set_work_queue_paused(q, True), "Paused")

    @admin.action(description="Resume selected work queues", permissions=["pause"])
    def resume(self, request, queryset):
        apply_each(self, request, queryset, lambda q: services.set_work_queue_paused(q, False), "Resumed")


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["name", "pool", "hostname", "pid", "limit", "last_heartbeat_at", "stopped_at"]
    list_filter = ["pool"]
    list_select_related = ["pool"]
    search_fields = ["name", "hostname"]
    readonly_fields = [f.name for f in Worker._meta.fields]

    def has_add_permission(self, request):
        return False  # workers register themselves
