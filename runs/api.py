"""/api/flow-runs/: filtered, keyset-paginated lists; a run's state history, task runs and
logs nested under it; cancelling."""

from __future__ import annotations

from typing import Any

from rest_framework.generics import get_object_or_404  # a malformed id is a 404 too
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Scope
from orchestrator.api import ApiViewSet, ReadApiViewSet, actor
from orchestrator.api_policy import CursorPagination
from runs.models import FlowRun, FlowRunQuerySet, FlowRunState, Log, TaskRun
from runs.serializers import FlowRunSerializer, FlowRunStateSerializer, LogSerializer, TaskRunSerializer
from runs.services import request_cancellation
from runs.states import StateType


class FlowRunPagination(CursorPagination):
    ordering = ("-expected_start_at", "-id")  # indexes: flowrun_time and the per-filter ones


class FlowRunFilter(filters.FilterSet):
    state = filters.MultipleChoiceFilter(field_name="state_type", choices=StateType.choices, help_text="Repeatable.")
    deployment = filters.UUIDFilter(field_name="deployment_id")
    pool = filters.CharFilter(field_name="work_pool__name", help_text="Work pool name.")
    queue = filters.CharFilter(field_name="work_queue__name", help_text="Work queue name.")
    tag = filters.CharFilter(method="filter_tag", help_text="Runs carrying this tag.")
    since = filters.IsoDateTimeFilter(field_name="expected_start_at", lookup_expr="gte", help_text="Expected start from.")
    until = filters.IsoDateTimeFilter(field_name="expected_start_at", lookup_expr="lt", help_text="Expected start before.")

    class Meta:
        model = FlowRun
        fields = ["state", "deployment", "pool", "queue", "tag", "since", "until"]

    def filter_tag(self, queryset: FlowRunQuerySet, name: str, value: str) -> FlowRunQuerySet:
        return queryset.with_tag(value) if value else queryset


class FlowRunViewSet(ReadApiViewSet):
    queryset = FlowRun.objects.with_related()
    serializer_class = FlowRunSerializer
    filterset_class = FlowRunFilter
    pagination_class = FlowRunPagination
    required_scopes = {"cancel": Scope.TRIGGER}

    @extend_schema(request=None, responses=FlowRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Any, pk: str) -> Response:
        return self.respond(request_cancellation(self.get_object(), by=actor(request)))


IN_RUN = extend_schema(parameters=[OpenApiParameter("run_pk", OpenApiTypes.UUID, OpenApiParameter.PATH)])


class InRunMixin:
    """For viewsets under /flow-runs/<run_pk>/: the run from the URL (404 if unknown)."""

    kwargs: dict[str, Any]

    @property
    def run(self) -> FlowRun:
        if not hasattr(self, "_run"):
            self._run = get_object_or_404(FlowRun.objects.only("pk", "work_pool"), pk=self.kwargs["run_pk"])
        return self._run


@IN_RUN
class FlowRunStateViewSet(InRunMixin, mixins.ListModelMixin, ApiViewSet):
    """The run's state history, oldest first (short: no pages)."""

    queryset = FlowRunState.objects.none()  # for the schema; get_queryset has the run
    serializer_class = FlowRunStateSerializer
    pagination_class = None

    def get_queryset(self) -> Any:
        return self.run.states.order_by("id")


class TaskRunPagination(CursorPagination):
    ordering = ("created_at", "id")  # index taskrun_run (flow_run, created_at)


@IN_RUN
class TaskRunViewSet(InRunMixin, mixins.ListModelMixin, ApiViewSet):
    queryset = TaskRun.objects.none()  # for the schema; get_queryset has the run
    serializer_class = TaskRunSerializer
    pagination_class = TaskRunPagination

    def get_queryset(self) -> Any:
        return TaskRun.objects.filter(flow_run=self.run)


class LogPagination(CursorPagination):
    ordering = ("timestamp", "id")  # index log_run_time (flow_run, timestamp, id)
    page_size = 200
    max_page_size = 1000


class LogFilter(filters.FilterSet):
    level = filters.NumberFilter(
        field_name="level", lookup_expr="gte",
        help_text="At least this level: 10 DEBUG, 20 INFO, 30 WARNING, 40 ERROR, 50 CRITICAL.",
    )
    since = filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte", help_text="Logged at or after.")

    class Meta:
        model = Log
        fields = ["level", "since"]


@IN_RUN
class LogViewSet(InRunMixin, mixins.ListModelMixin, ApiViewSet):
    queryset = Log.objects.none()  # for the schema; get_queryset has the run
    serializer_class = LogSerializer
    pagination_class = LogPagination
    filterset_class = LogFilter

    def get_queryset(self) -> Any:
        return Log.objects.filter(flow_run=self.run)
