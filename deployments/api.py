"""/api/flows/, /api/deployments/ (with their schedules and the trigger), /api/webhooks/, and
the webhook receiver at /hooks/<slug>/."""

from __future__ import annotations

from typing import Any

from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, permissions
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404  # a malformed id is a 404 too
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope
from deployments import services, webhooks
from deployments.models import Deployment, DeploymentSchedule, Flow, Webhook
from deployments.serializers import (
    BackfillCreateSerializer,
    BackfillSerializer,
    DeploymentScheduleSerializer,
    DeploymentSerializer,
    DeploymentUpdateSerializer,
    FlowRunCreateSerializer,
    FlowSerializer,
    WebhookInputSerializer,
    WebhookSerializer,
)
from deployments.services import create_flow_run
from deployments.services.subflows import create_subflow_run
from orchestrator.api import ApiViewSet, ReadApiViewSet, actor
from orchestrator.core.errors import ValidationError
from orchestrator.input_policy import PolicyJSONParser
from orchestrator.validation import update_validated
from runs.api import IN_RUN, InRunMixin
from runs.records import flow_run_info
from runs.serializers import FlowRunInfoSerializer, FlowRunSerializer, SubflowRunCreateSerializer

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Headers a webhook sender may identify a delivery by; a repeat of one makes no second run.
DELIVERY_HEADERS = ("Idempotency-Key", "X-Delivery-Id", "X-GitHub-Delivery")


class FlowViewSet(ReadApiViewSet):
    queryset = Flow.objects.all()
    serializer_class = FlowSerializer


class DeploymentFilter(filters.FilterSet):
    flow = filters.CharFilter(field_name="flow__name", help_text="Flow name.")
    work_pool = filters.CharFilter(field_name="work_pool__name", help_text="Work pool name.")
    paused = filters.BooleanFilter()

    class Meta:
        model = Deployment
        fields = ["flow", "work_pool", "paused"]


class DeploymentViewSet(mixins.DestroyModelMixin, ReadApiViewSet):
    queryset = Deployment.objects.select_related("flow", "work_pool", "work_queue")
    serializer_class = DeploymentSerializer
    input_serializers = {
        "partial_update": DeploymentUpdateSerializer,
        "runs": FlowRunCreateSerializer,
        "backfill": BackfillCreateSerializer,
    }
    filterset_class = DeploymentFilter
    required_scopes = {"runs": Scope.TRIGGER}

    @extend_schema(request=DeploymentUpdateSerializer, responses=DeploymentSerializer)
    def partial_update(self, request: Any, pk: str) -> Response:
        deployment = self.get_object()
        return self.respond(services.update_deployment(deployment, **self.parse(request, deployment).validated_data))

    @extend_schema(request=None, responses=DeploymentSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Any, pk: str) -> Response:
        return self.respond(services.set_deployment_paused(self.get_object(), True))

    @extend_schema(request=None, responses=DeploymentSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Any, pk: str) -> Response:
        return self.respond(services.set_deployment_paused(self.get_object(), False))

    @extend_schema(
        summary="Make the runs the schedules would have made in a window (idempotent; dry_run lists them)",
        request=BackfillCreateSerializer,
        responses={200: BackfillSerializer},
    )
    @action(detail=True, methods=["post"])
    def backfill(self, request: Any, pk: str) -> Response:
        data = self.parse(request)
        result = services.backfill_deployment(
            self.get_object(),
            start=data["start"],
            end=data["end"],
            dry_run=data["dry_run"],
            max_runs=data["max_runs"],
            schedule_slugs=data["schedules"] or None,
            created_by=f"backfill:{actor(request)}",
        )
        return Response(BackfillSerializer(result).data, status=200 if result.dry_run else 201)

    @extend_schema(
        summary="Find a deployment by its FLOW/DEPLOYMENT name",
        responses={200: DeploymentSerializer, 404: OpenApiResponse(description="No such deployment")},
    )
    @action(detail=False, url_path=r"name/(?P<flow_name>[^/]+)/(?P<deployment_name>[^/]+)")
    def by_name(self, request: Any, flow_name: str, deployment_name: str) -> Response:
        return self.respond(services.get_deployment(f"{flow_name}/{deployment_name}"))

    @extend_schema(
        summary="Trigger a run with custom parameters",
        parameters=[OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER, required=False)],
        request=FlowRunCreateSerializer,
        responses={
            201: OpenApiResponse(FlowRunSerializer, description="Created"),
            200: OpenApiResponse(FlowRunSerializer, description="The run made earlier with this idempotency key"),
        },
    )
    @action(detail=True, methods=["post"])
    def runs(self, request: Any, pk: str) -> Response:
        deployment = self.get_object()
        data = self.parse(request)
        key = data.get("idempotency_key")
        header = request.headers.get(IDEMPOTENCY_HEADER)
        if key and header and key != header:
            raise ValidationError(
                "The Idempotency-Key header and the body's idempotency_key differ.",
                {"idempotency_key": ["Differs from the Idempotency-Key header; send one of them."]},
            )
        run, created = create_flow_run(
            deployment,
            parameters=data["parameters"],
            tags=data["tags"],
            name=data.get("name"),
            scheduled_at=data.get("scheduled_time"),
            idempotency_key=key or header or None,
            created_by=actor(request),
            job_variables=data["job_variables"],
        )
        return Response(FlowRunSerializer(run).data, status=201 if created else 200)


@extend_schema(parameters=[OpenApiParameter("deployment_pk", OpenApiTypes.UUID, OpenApiParameter.PATH)])
class DeploymentScheduleViewSet(mixins.ListModelMixin, ApiViewSet):
    """Read-only here: changing a schedule must also clear its future runs (scheduling)."""

    queryset = DeploymentSchedule.objects.none()  # for the schema; get_queryset has the deployment

    serializer_class = DeploymentScheduleSerializer

    def get_queryset(self) -> Any:
        deployment = get_object_or_404(Deployment, pk=self.kwargs["deployment_pk"])
        return DeploymentSchedule.objects.filter(deployment=deployment)

    def retrieve(self, request: Any, deployment_pk: str, pk: str) -> Response:
        return self.respond(self.get_object())


class WebhookViewSet(mixins.DestroyModelMixin, ReadApiViewSet):
    queryset = Webhook.objects.select_related("deployment__flow")
    serializer_class = WebhookSerializer
    input_serializers = {"create": WebhookInputSerializer, "partial_update": WebhookInputSerializer}

    @extend_schema(request=WebhookInputSerializer, responses={201: WebhookSerializer})
    def create(self, request: Any) -> Response:
        data = self.parse(request)
        return self.respond(webhooks.create_webhook(data.pop("deployment"), **data), status=201)

    @extend_schema(request=WebhookInputSerializer, responses=WebhookSerializer)
    def partial_update(self, request: Any, pk: str) -> Response:
        webhook = self.get_object()
        return self.respond(update_validated(webhook, **self.parse(request, webhook).validated_data))


class WebhookReceiveView(APIView):
    """POST /hooks/<slug>/: the secret slug is the credential, so no key is asked for."""

    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    parser_classes = [PolicyJSONParser]

    @extend_schema(exclude=True)
    def post(self, request: Any, slug: str) -> Response:
        delivery = next((request.headers[h] for h in DELIVERY_HEADERS if request.headers.get(h)), None)
        run, created = webhooks.receive_webhook(slug, request.data, delivery_id=delivery)
        return Response(FlowRunSerializer(run).data, status=201 if created else 200)


@IN_RUN
class SubflowRunViewSet(InRunMixin, ApiViewSet):
    """/api/flow-runs/<run_pk>/subflow-runs/: a flow called inside the run starts a child run
    (what the engine does for a subflow call, through the HTTP client)."""

    queryset = Flow.objects.none()  # for the schema; the run comes from the URL
    serializer_class = FlowRunInfoSerializer
    input_serializers = {"create": SubflowRunCreateSerializer}
    worker_actions = ("create",)
    run_actions = ("create",)  # a run token of the parent (or of an ancestor)

    @extend_schema(request=SubflowRunCreateSerializer, responses={201: FlowRunInfoSerializer})
    def create(self, request: Any, run_pk: str) -> Response:
        data = self.parse(request)
        child = create_subflow_run(self.run, data.pop("flow_name"), **data)
        return Response(FlowRunInfoSerializer(flow_run_info(child)).data, status=201)
