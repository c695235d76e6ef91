"""/api/work-pools/ (by name), with their queues and workers nested under each pool."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from orchestrator.api import ApiViewSet, ReadApiViewSet
from orchestrator.core.states import StateType as S
from runs.models import FlowRun
from workpools import services
from workpools.health import with_online_workers
from workpools.models import Worker, WorkPool, WorkQueue
from workpools.records import claimed_run, held_run, worker_info
from workpools.serializers import (
    ClaimedRunsSerializer,
    ClaimSerializer,
    HeldRunSerializer,
    WorkerInfoSerializer,
    WorkerRegisterSerializer,
    WorkerSerializer,
    WorkPoolCreateSerializer,
    WorkPoolSerializer,
    WorkPoolUpdateSerializer,
    WorkQueueCreateSerializer,
    WorkQueueSerializer,
    WorkQueueUpdateSerializer,
)

NAME_IN_URL = r"[^/]+"


class WorkPoolViewSet(mixins.DestroyModelMixin, ReadApiViewSet):  # delete: 409 while a deployment uses it
    serializer_class = WorkPoolSerializer
    input_serializers = {"create": WorkPoolCreateSerializer, "partial_update": WorkPoolUpdateSerializer}
    lookup_field = "name"
    lookup_value_regex = NAME_IN_URL
    worker_actions = ("retrieve",)

    def get_queryset(self) -> Any:
        return with_online_workers(WorkPool.objects.all()).order_by("name")

    @extend_schema(request=WorkPoolCreateSerializer, responses={201: WorkPoolSerializer})
    def create(self, request: Any) -> Response:
        pool = services.create_work_pool(**self.parse(request))
        return self.respond(self.get_queryset().get(pk=pool.pk), status=201)

    @extend_schema(request=WorkPoolUpdateSerializer, responses=WorkPoolSerializer)
    def partial_update(self, request: Any, name: str) -> Response:
        pool = self.get_object()
        data = self.get_serializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.update_work_pool(pool, **data.validated_data)
        return self.respond(self.get_object())

    @extend_schema(request=None, responses=WorkPoolSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Any, name: str) -> Response:
        return self.respond(services.set_work_pool_paused(self.get_object(), True))

    @extend_schema(request=None, responses=WorkPoolSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Any, name: str) -> Response:
        return self.respond(services.set_work_pool_paused(self.get_object(), False))


class InPoolMixin:
    """For viewsets under /work-pools/<pool_name>/: the pool from the URL (404 if unknown)."""

    kwargs: dict[str, Any]

    @property
    def pool(self) -> WorkPool:
        if not hasattr(self, "_pool"):
            self._pool = services.get_work_pool(self.kwargs["pool_name"])  # NotFound: 404 naming it
        return self._pool


class WorkQueueViewSet(InPoolMixin, mixins.ListModelMixin, ApiViewSet):
    queryset = WorkQueue.objects.none()  # for the schema; get_queryset has the pool
    serializer_class = WorkQueueSerializer
    input_serializers = {"create": WorkQueueCreateSerializer, "partial_update": WorkQueueUpdateSerializer}
    lookup_field = "name"
    lookup_value_regex = NAME_IN_URL
    worker_actions = ("list", "retrieve")

    def get_queryset(self) -> Any:
        return WorkQueue.objects.filter(pool=self.pool).select_related("pool")

    def retrieve(self, request: Any, pool_name: str, name: str) -> Response:
        return self.respond(self.get_object())

    @extend_schema(request=WorkQueueCreateSerializer, responses={201: WorkQueueSerializer})
    def create(self, request: Any, pool_name: str) -> Response:
        queue = services.create_work_queue(self.pool, **self.parse(request))
        return self.respond(queue, status=201)

    @extend_schema(request=WorkQueueUpdateSerializer, responses=WorkQueueSerializer)
    def partial_update(self, request: Any, pool_name: str, name: str) -> Response:
        return self.respond(self.parse(request, self.get_object()).save())

    def destroy(self, request: Any, pool_name: str, name: str) -> Response:
        services.delete_work_queue(self.get_object())
        return Response(status=204)

    @extend_schema(request=None, responses=WorkQueueSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Any, pool_name: str, name: str) -> Response:
        return self.respond(services.set_work_queue_paused(self.get_object(), True))

    @extend_schema(request=None, responses=WorkQueueSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Any, pool_name: str, name: str) -> Response:
        return self.respond(services.set_work_queue_paused(self.get_object(), False))


class HeldRunsFilter(serializers.Serializer):
    state = serializers.ListField(
        child=serializers.ChoiceField(choices=[S.PENDING, S.RUNNING, S.CANCELLING, S.PAUSED]),
        required=False,
        help_text="Repeatable; default: every unfinished state.",
    )


class WorkerViewSet(InPoolMixin, mixins.ListModelMixin, ApiViewSet):
    """A pool's workers. The worker endpoints (register, heartbeat, claim, held runs, stopped)
    are what `runworker --api-url` calls, with a worker key of the pool."""

    queryset = Worker.objects.none()  # for the schema; get_queryset has the pool
    serializer_class = WorkerSerializer
    input_serializers = {"create": WorkerRegisterSerializer, "claim": ClaimSerializer}
    lookup_field = "name"
    lookup_value_regex = NAME_IN_URL
    worker_actions = ("list", "retrieve", "create", "heartbeat", "stopped", "claim", "runs")

    def get_queryset(self) -> Any:
        return Worker.objects.filter(pool=self.pool).select_related("pool")

    def retrieve(self, request: Any, pool_name: str, name: str) -> Response:
        return self.respond(self.get_object())

    @extend_schema(request=WorkerRegisterSerializer, responses=WorkerInfoSerializer, summary="Register a worker")
    def create(self, request: Any, pool_name: str) -> Response:
        """Register (or re-register, by name) a worker of the pool."""
        data = self.parse(request)
        queues = services.get_work_queues(self.pool, data["queues"]) if data["queues"] else None
        worker, _ = services.register_worker(
            self.pool.name,
            name=data["name"],
            limit=data["limit"],
            create_pool=False,
            hostname=data["hostname"] or None,
            pid=data["pid"],
        )
        info = worker_info(worker, queue_ids=None if queues is None else [q.pk for q in queues])
        return Response(WorkerInfoSerializer(info).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def heartbeat(self, request: Any, pool_name: str, name: str) -> Response:
        services.record_worker_heartbeat(self.get_object())
        return Response(status=204)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def stopped(self, request: Any, pool_name: str, name: str) -> Response:
        """The worker stopped on purpose: it shows OFFLINE at once."""
        services.mark_worker_stopped(self.get_object())
        return Response(status=204)

    @extend_schema(request=ClaimSerializer, responses=ClaimedRunsSerializer)
    @action(detail=True, methods=["post"])
    def claim(self, request: Any, pool_name: str, name: str) -> Response:
        """The runs the worker should start now (workpools.services.runs_to_start); with
        `wait_seconds`, the answer waits until a run is due or the time is up (long poll)."""
        worker = self.get_object()
        data = self.parse(request)
        runs = services.runs_to_start(
            worker,
            queue_ids=data["queue_ids"],
            prefetch_seconds=data["prefetch_seconds"],
            wait_seconds=data["wait_seconds"],
            max_runs=data["max_runs"],
        )
        return Response(ClaimedRunsSerializer({"runs": [claimed_run(run) for run in runs]}).data)

    @extend_schema(parameters=[HeldRunsFilter], responses=HeldRunSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def runs(self, request: Any, pool_name: str, name: str) -> Response:
        """The worker's unfinished runs (or those in `state`), and where their processes live."""
        worker = self.get_object()
        query = HeldRunsFilter(
            data={"state": request.query_params.getlist("state")} if "state" in request.query_params else {}
        )
        query.is_valid(raise_exception=True)
        held = FlowRun.objects.held_by(worker).order_by("state_at")
        if query.validated_data.get("state"):
            held = held.filter(state_type__in=query.validated_data["state"])
        return Response(HeldRunSerializer([held_run(run) for run in held], many=True).data)
