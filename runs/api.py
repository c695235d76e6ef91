"""/api/flow-runs/: filtered, keyset-paginated lists; a run's state history, task runs and
logs nested under it; cancelling. And what engines and workers call with a worker key (the HTTP
transport of orchestrator.client): a run's execution view, set-state, heartbeat, process,
retries, batched logs, task runs and their states, cached results (/api/task-runs/)."""

from __future__ import annotations

from typing import Any

from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import get_object_or_404  # a malformed id is a 404 too
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from accounts.models import ApiKey, Scope
from accounts.permissions import pool_limit
from accounts.services import issue_run_token
from orchestrator.api import ApiViewSet, ReadApiViewSet, actor
from orchestrator.api_policy import CursorPagination
from orchestrator.core.errors import ValidationError
from orchestrator.core.results import read_result
from orchestrator.core.states import StateType
from orchestrator.input_policy import TimestampFilter
from runs import services
from runs.models import Artifact, ArtifactType, FlowRun, FlowRunQuerySet, FlowRunState, Log, RunCursor, TaskRun
from runs.records import flow_run_info, run_input_info
from runs.serializers import (
    AliveSerializer,
    ArtifactCreateSerializer,
    ArtifactSerializer,
    ArtifactUpdateSerializer,
    CachedResultSerializer,
    FlowRunInfoSerializer,
    FlowRunResultSerializer,
    FlowRunSerializer,
    FlowRunSetStateSerializer,
    FlowRunStateSerializer,
    LogCreateSerializer,
    LogSerializer,
    LogsStoredSerializer,
    PauseSerializer,
    ResultLocationSerializer,
    ResumeSerializer,
    RetriesSerializer,
    RunInputQuery,
    RunInputSerializer,
    RunProcessSerializer,
    RunTokenSerializer,
    TaskRunCreateSerializer,
    TaskRunSerializer,
    TaskRunSetStateSerializer,
)
from runs.services import request_cancellation

# What an engine and a worker do with a run (with a worker key: only runs of its pool).
ENGINE_ACTIONS = (
    "execution",
    "set_state",
    "heartbeat",
    "process",
    "retries",
    "result_location",
    "result",
    "pause",
    "run_input",
)
# What a run token (a run's own job) may do with its run, and with its subflow runs (accounts.permissions).
RUN_TOKEN_ACTIONS = (
    "execution",
    "set_state",
    "heartbeat",
    "retries",
    "result_location",
    "result",
    "pause",
    "run_input",
)


class FlowRunPagination(CursorPagination):
    """The runs list's keyset paging (FlowRunQuerySet.keyset_page, the dashboard's too) behind
    DRF's cursor interface: `cursor` is `o.<token>` for older runs, `n.<token>` for newer."""

    ordering = ("-expected_start_at", "-id")  # indexes: flowrun_time and the per-filter ones

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[FlowRun]:
        self.request = request
        self.base_url = request.build_absolute_uri()
        token = request.query_params.get(self.cursor_query_param, "")
        direction, _, raw = token.partition(".")
        cursors: dict[str, RunCursor] = {}
        if token:
            try:
                cursors["after" if direction == "o" else "before"] = RunCursor.decode(raw)
            except ValueError:
                raise NotFound(self.invalid_cursor_message) from None
            if direction not in ("o", "n"):
                raise NotFound(self.invalid_cursor_message)
        self.run_page = queryset.keyset_page(**cursors, size=self.get_page_size(request))
        return self.run_page.runs

    def _link(self, direction: str, cursor: RunCursor | None) -> str | None:
        if cursor is None:
            return None
        return replace_query_param(self.base_url, self.cursor_query_param, f"{direction}.{cursor.encode()}")

    def get_next_link(self) -> str | None:
        return self._link("o", self.run_page.older)

    def get_previous_link(self) -> str | None:
        return self._link("n", self.run_page.newer)


class FlowRunFilter(filters.FilterSet):
    # distinct=False: one column of the row itself cannot duplicate rows, and django-filter's
    # default SELECT DISTINCT over every column defeats the (state_type, expected_start_at)
    # index: seconds instead of milliseconds at a million runs.
    state = filters.MultipleChoiceFilter(
        field_name="state_type", choices=StateType.choices, help_text="Repeatable.", distinct=False
    )
    deployment = filters.UUIDFilter(field_name="deployment_id")
    pool = filters.CharFilter(field_name="work_pool__name", help_text="Work pool name.")
    queue = filters.CharFilter(field_name="work_queue__name", help_text="Work queue name.")
    tag = filters.CharFilter(method="filter_tag", help_text="Runs carrying this tag.")
    since = TimestampFilter(field_name="expected_start_at", lookup_expr="gte", help_text="Expected start from.")
    until = TimestampFilter(field_name="expected_start_at", lookup_expr="lt", help_text="Expected start before.")

    class Meta:
        model = FlowRun
        fields = ["state", "deployment", "pool", "queue", "tag", "since", "until"]

    def filter_tag(self, queryset: FlowRunQuerySet, name: str, value: str) -> FlowRunQuerySet:
        return queryset.with_tag(value) if value else queryset

    def filter_queryset(self, queryset: FlowRunQuerySet) -> FlowRunQuerySet:
        """The runs list's one query (FlowRunQuerySet.matching), as the dashboard and
        `flowrun ls` use it; the declarations above only parse and document the parameters."""
        data = self.form.cleaned_data
        return queryset.matching(
            states=data.get("state") or [],
            deployment=data.get("deployment"),
            pool=data.get("pool") or None,
            queue=data.get("queue") or "",
            tag=data.get("tag") or "",
            since=data.get("since"),
            until=data.get("until"),
        )


class FlowRunViewSet(ReadApiViewSet):
    queryset = FlowRun.objects.with_related()
    serializer_class = FlowRunSerializer
    input_serializers = {
        "set_state": FlowRunSetStateSerializer,
        "retries": RetriesSerializer,
        "process": RunProcessSerializer,
        "result_location": ResultLocationSerializer,
        "pause": PauseSerializer,
        "resume": ResumeSerializer,
    }
    filterset_class = FlowRunFilter
    pagination_class = FlowRunPagination
    required_scopes = {"cancel": Scope.TRIGGER, "resume": Scope.TRIGGER}
    worker_actions = (*ENGINE_ACTIONS, "token")
    run_actions = RUN_TOKEN_ACTIONS

    @extend_schema(request=None, responses=FlowRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Any, pk: str) -> Response:
        return self.respond(request_cancellation(self.get_object(), by=actor(request)))

    @extend_schema(responses=FlowRunInfoSerializer)
    @action(detail=True, methods=["get"])
    def execution(self, request: Any, pk: str) -> Response:
        """The run as the engine executes it: parameters, retries, its deployment's entrypoint,
        path and pull steps."""
        return Response(FlowRunInfoSerializer(flow_run_info(self.get_object())).data)

    @extend_schema(request=FlowRunSetStateSerializer, responses=FlowRunInfoSerializer)
    @action(detail=True, methods=["post"], url_path="set-state")
    def set_state(self, request: Any, pk: str) -> Response:
        """runs.services.set_state: a compare-and-swap from `expected` (409 when the run is in
        another state, or the move is not allowed)."""
        run, data = self.get_object(), self.parse(request)
        services.set_state(
            run,
            data["state_type"],
            expected=data["expected"],
            name=data["name"] or None,
            message=data["message"],
            retry=data["retry"],
        )
        return Response(FlowRunInfoSerializer(flow_run_info(run)).data)

    @extend_schema(request=None, responses=AliveSerializer)
    @action(detail=True, methods=["post"])
    def heartbeat(self, request: Any, pk: str) -> Response:
        """The run's process is alive; `alive` false tells it to stop."""
        return Response({"alive": services.record_run_heartbeat(self.get_object().pk)})

    @extend_schema(request=RunProcessSerializer, responses={204: None})
    @action(detail=True, methods=["post"])
    def process(self, request: Any, pk: str) -> Response:
        """Where the run's process lives (pid, host), so a restarted worker can find it."""
        run, data = self.get_object(), self.parse(request)
        services.record_run_process(run, pid=data["pid"], hostname=data["hostname"])
        return Response(status=204)

    @extend_schema(request=None, responses=RunTokenSerializer)
    @action(detail=True, methods=["post"])
    def token(self, request: Any, pk: str) -> Response:
        """A token for the run's job that acts on this run only (what a worker passes to a
        container or a remote process instead of its own key); it stops working once the run is
        final. Only for an unfinished run (400 otherwise)."""
        key, token = issue_run_token(self.get_object())
        return Response(RunTokenSerializer({"token": token, "expires_at": key.expires_at}).data, status=201)

    @extend_schema(request=ResumeSerializer, responses=FlowRunSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Any, pk: str) -> Response:
        """Resume a paused or suspended run with the input it waits for (checked against the
        flow's model: 400 with the fields' errors); 409 for a run that is not paused."""
        run, data = self.get_object(), self.parse(request)
        return self.respond(services.resume_flow_run(run, value=data["input"], by=actor(request)))

    @extend_schema(request=PauseSerializer, responses=RunInputSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Any, pk: str) -> Response:
        """The engine pauses (or suspends) the run for input (pause_flow_run in a flow)."""
        run, data = self.get_object(), self.parse(request)
        pause = services.pause_flow_run(run, **data)
        return Response(RunInputSerializer(run_input_info(pause, run)).data)

    @extend_schema(parameters=[RunInputQuery], responses=RunInputSerializer)
    @action(detail=True, methods=["get"], url_path="input")
    def run_input(self, request: Any, pk: str) -> Response:
        """A pause of the run (by key): whether its input was given, and the run's state."""
        run = self.get_object()
        query = RunInputQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        pause = services.read_flow_run_input(run, query.validated_data["key"])
        return Response(RunInputSerializer(run_input_info(pause, run)).data)

    @extend_schema(request=ResultLocationSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="result-location")
    def result_location(self, request: Any, pk: str) -> Response:
        """Where the run's persisted result is (the engine records it before COMPLETED)."""
        run, data = self.get_object(), self.parse(request)
        services.record_flow_run_result(run, result_uri=data["result_uri"])
        return Response(status=204)

    @extend_schema(responses=FlowRunResultSerializer)
    @action(detail=True, methods=["get"])
    def result(self, request: Any, pk: str) -> Response:
        """The run's persisted result, read from result storage: its JSON value, or (a value
        stored with cloudpickle) only where it is: the server never unpickles. 404 when the run
        has none."""
        run = self.get_object()
        serializer, value = read_result(run.result_uri, allow_pickle=False)
        return Response(
            FlowRunResultSerializer({"result_uri": run.result_uri, "serializer": serializer, "value": value}).data
        )

    @extend_schema(request=RetriesSerializer, responses={204: None})
    @action(detail=True, methods=["post"])
    def retries(self, request: Any, pk: str) -> Response:
        """How often a failed run is tried again, and after how long (the flow's own settings)."""
        run, data = self.get_object(), self.parse(request)
        services.set_flow_run_retries(run, retries=data["retries"], retry_delay_seconds=data["retry_delay_seconds"])
        return Response(status=204)


IN_RUN = extend_schema(parameters=[OpenApiParameter("run_pk", OpenApiTypes.UUID, OpenApiParameter.PATH)])


class InRunMixin:
    """For viewsets under /flow-runs/<run_pk>/: the run from the URL (404 if unknown; 403 for a
    worker key of another pool)."""

    kwargs: dict[str, Any]
    request: Any

    @property
    def run(self) -> FlowRun:
        if not hasattr(self, "_run"):
            run = get_object_or_404(FlowRun.objects.select_related("work_pool"), pk=self.kwargs["run_pk"])
            self.check_object_permissions(self.request, run)
            self._run = run
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
    input_serializers = {"create": TaskRunCreateSerializer}
    pagination_class = TaskRunPagination
    worker_actions = ("create",)
    run_actions = ("create",)

    def get_queryset(self) -> Any:
        return TaskRun.objects.filter(flow_run=self.run)

    @extend_schema(request=TaskRunCreateSerializer, responses={201: TaskRunSerializer})
    def create(self, request: Any, run_pk: str) -> Response:
        """A PENDING task run of the flow run (what the engine records for each task call)."""
        data = self.parse(request)
        return self.respond(services.create_task_run(self.run.pk, **data), status=201)


class CachedResultQuery(serializers.Serializer):
    cache_key = serializers.CharField(max_length=500)


class TaskRunDetailViewSet(mixins.RetrieveModelMixin, ApiViewSet):
    """/api/task-runs/<id>/: one task run, and moving it (the engine, through the HTTP client)."""

    queryset = TaskRun.objects.select_related("flow_run__work_pool")
    serializer_class = TaskRunSerializer
    input_serializers = {"set_state": TaskRunSetStateSerializer}
    worker_actions = ("retrieve", "set_state", "cached")
    run_actions = ("retrieve", "set_state", "cached")

    @extend_schema(request=TaskRunSetStateSerializer, responses=TaskRunSerializer)
    @action(detail=True, methods=["post"], url_path="set-state")
    def set_state(self, request: Any, pk: str) -> Response:
        """runs.services.set_task_run_state: a compare-and-swap from `expected` (409 otherwise);
        `result`, when present, is stored, and with a `cache_key` later runs may reuse it."""
        task_run, data = self.get_object(), self.parse(request)
        extra = {"result": data["result"]} if "result" in data else {}
        services.set_task_run_state(
            task_run,
            data["state_type"],
            expected=data["expected"],
            name=data["name"] or None,
            message=data["message"],
            cache_key=data["cache_key"],
            cache_expires_at=data["cache_expires_at"],
            **extra,
        )
        return self.respond(task_run)

    @extend_schema(parameters=[CachedResultQuery], responses={200: CachedResultSerializer, 204: None})
    @action(detail=False, methods=["get"])
    def cached(self, request: Any) -> Response:
        """The result stored under `cache_key` by the latest completed task run, while fresh;
        204 when there is none. A worker key or run token sees only results of its own pool's runs."""
        query = CachedResultQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        key = request.auth if isinstance(request.auth, ApiKey) else None
        task_run = services.find_cached_task_run(query.validated_data["cache_key"], pool=pool_limit(key))
        if task_run is None:
            return Response(status=204)
        body = {
            "task_run_id": str(task_run.pk),
            "task_run_name": task_run.name,
            "value": task_run.result,
            "result_uri": task_run.result_uri,
        }
        return Response(CachedResultSerializer(body).data)


MAX_LOG_BATCH = 5000


class LogPagination(CursorPagination):
    ordering = ("timestamp", "id")  # index log_run_time (flow_run, timestamp, id)
    page_size = 200
    max_page_size = 1000


class LogFilter(filters.FilterSet):
    level = filters.NumberFilter(
        field_name="level",
        lookup_expr="gte",
        help_text="At least this level: 10 DEBUG, 20 INFO, 30 WARNING, 40 ERROR, 50 CRITICAL.",
    )
    since = TimestampFilter(field_name="timestamp", lookup_expr="gte", help_text="Logged at or after.")

    class Meta:
        model = Log
        fields = ["level", "since"]


@IN_RUN
class LogViewSet(InRunMixin, mixins.ListModelMixin, ApiViewSet):
    queryset = Log.objects.none()  # for the schema; get_queryset has the run
    serializer_class = LogSerializer
    pagination_class = LogPagination
    filterset_class = LogFilter
    worker_actions = ("create",)
    run_actions = ("create",)
    run_final_actions = ("create",)  # the engine's last lines arrive just after the final state

    def get_queryset(self) -> Any:
        return Log.objects.filter(flow_run=self.run)

    @extend_schema(request=LogCreateSerializer(many=True), responses={201: LogsStoredSerializer})
    def create(self, request: Any, run_pk: str) -> Response:
        """Store a batch of the run's log lines (a JSON list) in one go."""
        batch = LogCreateSerializer(data=request.data, many=True, max_length=MAX_LOG_BATCH)
        batch.is_valid(raise_exception=True)
        records = [
            {
                **{k: v for k, v in line.items() if k != "task_run"},
                "flow_run_id": self.run.pk,
                "task_run_id": line["task_run"],
            }
            for line in batch.validated_data
        ]
        return Response({"stored": services.write_logs(records)}, status=201)


class ArtifactFilter(filters.FilterSet):
    key = filters.CharFilter(field_name="key")
    flow_run = filters.UUIDFilter(field_name="flow_run_id")
    type = filters.ChoiceFilter(field_name="type", choices=ArtifactType.choices)

    class Meta:
        model = Artifact
        fields = ["key", "flow_run", "type"]


class ArtifactPagination(CursorPagination):
    ordering = ("-created_at", "-id")


class ArtifactViewSet(ReadApiViewSet):
    """/api/artifacts/: what runs published, newest first (filter by key, flow_run, type);
    /api/artifacts/latest/?key=K the latest version of a key. Engines create artifacts and
    update progress ones (a worker key: for runs of its pool)."""

    queryset = Artifact.objects.select_related("flow_run__work_pool")
    serializer_class = ArtifactSerializer
    input_serializers = {"create": ArtifactCreateSerializer, "partial_update": ArtifactUpdateSerializer}
    filterset_class = ArtifactFilter
    pagination_class = ArtifactPagination
    worker_actions = ("create", "partial_update")
    run_actions = ("create", "partial_update")

    @extend_schema(request=ArtifactCreateSerializer, responses={201: ArtifactSerializer})
    def create(self, request: Any) -> Response:
        data = self.parse(request)
        run = get_object_or_404(FlowRun.objects.select_related("work_pool"), pk=data["flow_run"])
        self.check_object_permissions(request, run)
        artifact = services.create_artifact(
            run,
            type=data["type"],
            data=data["data"],
            key=data["key"],
            description=data["description"],
            task_run_id=data["task_run"],
        )
        return self.respond(artifact, status=201)

    @extend_schema(request=ArtifactUpdateSerializer, responses=ArtifactSerializer)
    def partial_update(self, request: Any, pk: str) -> Response:
        """New data for a progress artifact."""
        artifact, data = self.get_object(), self.parse(request)
        return self.respond(services.update_artifact(artifact, data=data["data"]))

    @extend_schema(parameters=[OpenApiParameter("key", str, required=True)], responses=ArtifactSerializer)
    @action(detail=False, methods=["get"])
    def latest(self, request: Any) -> Response:
        key = request.query_params.get("key", "")
        if not key:
            raise ValidationError("Give the artifact's key.", {"key": ["This field is required."]})
        return self.respond(services.latest_artifact(key))
