"""Runs in the admin: everything about state is read-only; cancelling goes through the service."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from orchestrator.admin_utils import EstimatedCountPaginator, RolePermissions, apply_each
from runs.models import Artifact, FlowRun, FlowRunInput, FlowRunState, Log, TaskRun, TaskRunState
from runs.services import request_cancellation


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class FlowRunStateInline(ReadOnlyInline):
    model = FlowRunState
    fields = ["timestamp", "type", "name", "message"]
    verbose_name_plural = "State history"


class TaskRunStateInline(ReadOnlyInline):
    model = TaskRunState
    fields = ["timestamp", "type", "name", "message"]
    verbose_name_plural = "State history"


class TaskRunInline(ReadOnlyInline):
    model = TaskRun
    fields = ["name", "state_name", "started_at", "ended_at", "run_count", "state_message"]
    show_change_link = True


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(FlowRun)
class FlowRunAdmin(RolePermissions, admin.ModelAdmin):
    list_display = [
        "name",
        "state_name",
        "flow",
        "deployment",
        "work_pool",
        "work_queue",
        "worker",
        "expected_start_at",
        "started_at",
        "ended_at",
    ]
    list_filter = ["state_type", "work_pool", "created_at"]
    list_select_related = ["flow", "deployment__flow", "work_pool", "work_queue__pool", "worker"]
    search_fields = ["name", "=id"]
    date_hierarchy = None
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = [
        "id",
        "name",
        "flow",
        "deployment",
        "work_pool",
        "work_queue",
        "worker",
        "state_type",
        "state_name",
        "state_at",
        "state_message",
        "parameters",
        "job_variables",
        "tags",
        "expected_start_at",
        "next_scheduled_start_at",
        "started_at",
        "ended_at",
        "run_count",
        "retries",
        "retry_delay_seconds",
        "idempotency_key",
        "created_by",
        "heartbeat_at",
        "pid",
        "hostname",
        "created_at",
        "updated_at",
        "logs",
    ]
    readonly_fields = [f for f in fields if f not in ("name", "tags")]
    inlines = [FlowRunStateInline, TaskRunInline]
    actions = ["cancel"]

    def has_add_permission(self, request):
        return False  # runs are created by Quick Run on a deployment, the API, schedules, ...

    @admin.display(description="Logs")
    def logs(self, run: FlowRun) -> str:
        url = reverse("admin:runs_log_changelist") + f"?flow_run__id__exact={run.pk}"
        return format_html('<a href="{}">View the logs of this run</a>', url)

    @admin.action(description="Cancel selected flow runs", permissions=["cancel"])
    def cancel(self, request, queryset):
        who = f"admin:{request.user.get_username()}"
        apply_each(self, request, queryset, lambda r: request_cancellation(r, by=who), "Cancelled")


@admin.register(FlowRunState)
class FlowRunStateAdmin(ReadOnlyAdmin):
    list_display = ["flow_run", "type", "name", "timestamp", "message"]
    list_filter = ["type"]
    list_select_related = ["flow_run"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    list_display = ["name", "flow_run", "state_name", "started_at", "ended_at", "run_count"]
    list_filter = ["state_type"]
    list_select_related = ["flow_run"]
    search_fields = ["name", "task_key"]
    inlines = [TaskRunStateInline]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(TaskRunState)
class TaskRunStateAdmin(ReadOnlyAdmin):
    list_display = ["task_run", "type", "name", "timestamp", "message"]
    list_filter = ["type"]
    list_select_related = ["task_run"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(Log)
class LogAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "flow_run", "task_run", "level", "logger", "message"]
    list_filter = ["level"]
    list_select_related = ["flow_run", "task_run"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    list_display = ["key", "type", "flow_run", "task_run", "created_at"]
    list_filter = ["type"]
    search_fields = ["key", "flow_run__name"]
    list_select_related = ["flow_run", "task_run"]


@admin.register(FlowRunInput)
class FlowRunInputAdmin(ReadOnlyAdmin):
    """What paused runs wait for; resume them from the run page or the API (checked input)."""

    list_display = ["flow_run", "key", "timeout_at", "provided_at", "provided_by"]
    list_select_related = ["flow_run"]
