"""/api/work-pools/ (by name), with their queues and workers nested under each pool."""

from __future__ import annotations

from typing import Any

from rest_framework.generics import get_object_or_404  # a malformed id is a 404 too
from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.response import Response

from orchestrator.api import ApiViewSet, ReadApiViewSet
from workpools import services
from workpools.health import with_online_workers
from workpools.models import WorkPool, WorkQueue, Worker
from workpools.serializers import (
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
        self.parse(request, self.get_object()).save()
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
            self._pool = get_object_or_404(WorkPool, name=self.kwargs["pool_name"])
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


class WorkerViewSet(InPoolMixin, mixins.ListModelMixin, ApiViewSet):
    queryset = Worker.objects.none()  # for the schema; get_queryset has the pool
    serializer_class = WorkerSerializer
    lookup_field = "name"
    lookup_value_regex = NAME_IN_URL
    worker_actions = ("list", "retrieve")

    def get_queryset(self) -> Any:
        return Worker.objects.filter(pool=self.pool).select_related("pool")

    def retrieve(self, request: Any, pool_name: str, name: str) -> Response:
        return self.respond(self.get_object())
