"""The one API router, included at /api/ (orchestrator/urls.py)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts.api import AuditEntryViewSet
from automations.api import AutomationViewSet
from deployments.api import DeploymentScheduleViewSet, DeploymentViewSet, FlowViewSet, WebhookViewSet
from runs.api import FlowRunStateViewSet, FlowRunViewSet, LogViewSet, TaskRunDetailViewSet, TaskRunViewSet
from workpools.api import WorkerViewSet, WorkPoolViewSet, WorkQueueViewSet


class Router(DefaultRouter):
    # Pool and queue names may hold dots: no ".json" suffix routes to confuse them with.
    include_format_suffixes = False


router = Router()
router.register("work-pools", WorkPoolViewSet, basename="work-pools")
router.register(r"work-pools/(?P<pool_name>[^/]+)/queues", WorkQueueViewSet, basename="work-queues")
router.register(r"work-pools/(?P<pool_name>[^/]+)/workers", WorkerViewSet, basename="workers")
router.register("flows", FlowViewSet, basename="flows")
router.register("deployments", DeploymentViewSet, basename="deployments")
router.register(
    r"deployments/(?P<deployment_pk>[^/.]+)/schedules", DeploymentScheduleViewSet, basename="deployment-schedules"
)
router.register("flow-runs", FlowRunViewSet, basename="flow-runs")
router.register(r"flow-runs/(?P<run_pk>[^/.]+)/states", FlowRunStateViewSet, basename="flow-run-states")
router.register(r"flow-runs/(?P<run_pk>[^/.]+)/task-runs", TaskRunViewSet, basename="task-runs")
router.register(r"flow-runs/(?P<run_pk>[^/.]+)/logs", LogViewSet, basename="logs")
router.register("task-runs", TaskRunDetailViewSet, basename="task-run")
router.register("webhooks", WebhookViewSet, basename="webhooks")
router.register("automations", AutomationViewSet, basename="automations")
router.register("audit-log", AuditEntryViewSet, basename="audit-log")

app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    *router.urls,
]
