from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.utils.html import format_html_join

from deployments import services
from deployments.models import Deployment, DeploymentSchedule, Flow, SchedulerPass, Webhook
from deployments.services import create_flow_run
from orchestrator.admin_utils import AuditedAdmin, RolePermissions, apply_each
from orchestrator.core.errors import ValidationError

SCHEDULE_FIELDS = [
    "slug",
    "kind",
    "cron",
    "interval_seconds",
    "anchor_at",
    "rrule",
    "timezone",
    "active",
    "parameters",
    "catchup",
    "catchup_max_runs",
    "overlap_policy",
    "max_lateness_seconds",
]
# Run-affecting fields of a deployment: its not-yet-started scheduled runs copied the old values.
RUN_FIELDS = {
    "parameters",
    "parameter_schema",
    "enforce_parameter_schema",
    "tags",
    "work_pool",
    "work_queue",
    "job_variables",
}


class BackfillWindowForm(forms.Form):
    backfill_start = forms.DateTimeField(required=False, label="Backfill from")
    backfill_end = forms.DateTimeField(required=False, label="to")
    backfill_dry_run = forms.BooleanField(required=False, label="dry run")


class DeploymentActionForm(ActionForm, BackfillWindowForm):
    """The action bar, with the window the backfill action uses (other actions ignore it)."""


class DeploymentScheduleForm(forms.ModelForm):
    """Checks the schedule with the same validator as every other surface, so a bad cron, rrule
    or timezone is an error at its field."""

    class Meta:
        model = DeploymentSchedule
        fields = SCHEDULE_FIELDS

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # `deployment` is a field of the standalone form and the parent of an inline one.
        values = {name: cleaned.get(name) for name in SCHEDULE_FIELDS}
        candidate = DeploymentSchedule(deployment=cleaned.get("deployment"), **values)
        try:
            services.validate_deployment_schedule(candidate)
        except ValidationError as error:
            for name, messages in error.errors.items():
                for message in messages:
                    self.add_error(name if name in self.fields else None, message)
        return cleaned


class DeploymentAdminForm(forms.ModelForm):
    """Default parameters checked against the flow's schema, as `deploy` and the API check them."""

    class Meta:
        model = Deployment
        fields = "__all__"

    def clean(self) -> dict:
        cleaned = super().clean()
        if "parameters" in cleaned and "parameter_schema" in cleaned:
            try:
                cleaned["parameters"] = services.check_default_parameters(
                    cleaned["parameter_schema"],
                    cleaned["parameters"],
                    enforce=cleaned.get("enforce_parameter_schema", True),
                )
            except ValidationError as error:
                self.add_error("parameters", str(error))
        return cleaned


class ScheduleWords:
    """Read-only columns showing a schedule to people: in words, and its next five times."""

    @admin.display(description="In words")
    def description(self, obj: DeploymentSchedule) -> str:
        return obj.describe() if obj.pk else "-"

    @admin.display(description="Next runs")
    def upcoming(self, obj: DeploymentSchedule) -> str:
        if obj.pk is None:
            return "-"
        try:
            times = obj.next_fire_times(5)
        except Exception:  # a row saved before validation existed: show it, do not fail the page
            return "-"
        return format_html_join("", "<div>{}</div>", ((f"{t:%Y-%m-%d %H:%M:%S %Z}",) for t in times)) or "never"


class DeploymentScheduleInline(ScheduleWords, admin.StackedInline):
    """Stacked: eleven fields and the next run times side by side made the page 3,000 px wide."""

    model = DeploymentSchedule
    form = DeploymentScheduleForm
    extra = 0
    fields = [*SCHEDULE_FIELDS, "description", "upcoming"]
    readonly_fields = ["description", "upcoming"]


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["id", "created_at", "updated_at"]


@admin.register(Deployment)
class DeploymentAdmin(AuditedAdmin, RolePermissions, admin.ModelAdmin):
    form = DeploymentAdminForm
    list_display = [
        "__str__",
        "work_pool",
        "work_queue",
        "tags",
        "paused",
        "concurrency_limit",
        "overlap_policy",
        "updated_at",
    ]
    list_filter = ["paused", "work_pool"]
    list_select_related = ["flow", "work_pool", "work_queue"]
    search_fields = ["name", "flow__name"]
    readonly_fields = ["id", "paused", "created_at", "updated_at"]
    autocomplete_fields = ["flow"]
    inlines = [DeploymentScheduleInline]
    actions = ["quick_run", "pause", "resume", "backfill"]
    action_form = DeploymentActionForm

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and RUN_FIELDS & set(form.changed_data):
            services.reschedule_deployment(obj)

    def save_formset(self, request, form, formset, change):
        if formset.model is not DeploymentSchedule:
            return super().save_formset(request, form, formset, change)
        # Through the services, so an edit replaces the schedule's future runs.
        for schedule in formset.save(commit=False):
            services.save_deployment_schedule(schedule)
        for schedule in formset.deleted_objects:
            services.delete_deployment_schedule(schedule)

    @admin.action(description="Quick run selected deployments (default parameters)", permissions=["trigger"])
    def quick_run(self, request, queryset):
        who = f"admin:{request.user.get_username()}"
        apply_each(self, request, queryset, lambda d: create_flow_run(d, created_by=who), "Created a run for")

    @admin.action(description="Backfill selected deployments (the window beside the action)", permissions=["change"])
    def backfill(self, request, queryset):  # type: ignore[no-untyped-def]
        form = BackfillWindowForm(request.POST)
        window = form.cleaned_data if form.is_valid() else {}
        start, end = window.get("backfill_start"), window.get("backfill_end")
        if not start or not end:
            self.message_user(request, "Give the backfill window: a start and an end date and time.", messages.ERROR)
            return
        dry_run = bool(window.get("backfill_dry_run"))
        who = f"backfill:admin:{request.user.get_username()}"

        def one(deployment: Deployment) -> None:
            result = services.backfill_deployment(deployment, start=start, end=end, dry_run=dry_run, created_by=who)
            made = len(result.missing) if dry_run else len(result.created)
            verb = "would create" if dry_run else "created"
            times = ", ".join(slot.fire_at.isoformat(timespec="minutes") for slot in result.missing[:10])
            self.message_user(request, f"{deployment}: {verb} {made} run(s){': ' + times if times else ''}.")

        apply_each(self, request, queryset, one, "Backfilled" if not dry_run else "Checked")

    @admin.action(description="Pause selected deployments", permissions=["pause"])
    def pause(self, request, queryset):
        apply_each(self, request, queryset, lambda d: services.set_deployment_paused(d, True), "Paused")

    @admin.action(description="Resume selected deployments", permissions=["pause"])
    def resume(self, request, queryset):
        apply_each(self, request, queryset, lambda d: services.set_deployment_paused(d, False), "Resumed")


@admin.register(DeploymentSchedule)
class DeploymentScheduleAdmin(ScheduleWords, admin.ModelAdmin):
    form = DeploymentScheduleForm
    list_display = ["deployment", "slug", "kind", "description", "active", "catchup"]
    list_filter = ["kind", "active", "catchup"]
    list_select_related = ["deployment__flow"]
    search_fields = ["slug", "deployment__name", "deployment__flow__name"]
    fields = ["deployment", *SCHEDULE_FIELDS, "description", "upcoming", "scheduled_through_at"]
    readonly_fields = ["description", "upcoming", "scheduled_through_at"]
    autocomplete_fields = ["deployment"]

    def save_model(self, request, obj, form, change):
        services.save_deployment_schedule(obj)

    def delete_model(self, request, obj):
        services.delete_deployment_schedule(obj)

    def delete_queryset(self, request, queryset):
        for schedule in queryset:
            services.delete_deployment_schedule(schedule)


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


@admin.register(SchedulerPass)
class SchedulerPassAdmin(admin.ModelAdmin):
    """The last full scheduler pass (what /metrics reports), read-only."""

    list_display = ["name", "finished_at", "duration_seconds", "runs_created"]
    readonly_fields = ["name", "finished_at", "duration_seconds", "runs_created"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
