"""/metrics in the Prometheus text format (prometheus_client).

A custom collector reads the database at each scrape with bounded queries: unfinished runs by
state and deployment (a set the scheduler keeps small), finished runs of the last
METRICS_WINDOW_SECONDS, due runs per queue, workers online per pool, the last scheduler pass;
pickup latency and run duration histograms over the runs of that window (at most
METRICS_MAX_SAMPLES of them). API request counts and latency are counted in this process by
ApiMetricsMiddleware (each web process reports its own, as prometheus_client does without its
multiprocess mode).

Who may scrape: a client address in METRICS_ALLOWED_IPS (addresses or networks, e.g.
10.0.0.0/8), or a request with `Authorization: Bearer <key>` whose key has the `metrics` scope.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from accounts.models import Scope
from accounts.services import authenticate_api_key
from deployments.models import SchedulerPass
from orchestrator.core.states import TERMINAL, StateType
from runs.models import FlowRun
from workpools.health import with_online_workers
from workpools.models import WorkPool, WorkQueue

PICKUP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
DURATION_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0)
UNFINISHED = [state for state in StateType if state not in TERMINAL]

REGISTRY = CollectorRegistry()
API_REQUESTS = Counter(
    "orchestrator_api_requests",
    "API requests answered by this process.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
API_LATENCY = Histogram(
    "orchestrator_api_request_duration_seconds",
    "Time to answer an API request, in this process.",
    ["method", "route"],
    registry=REGISTRY,
)


def _deployment_label(flow_name: str | None, deployment_name: str | None) -> str:
    return f"{flow_name}/{deployment_name}" if deployment_name else ""


def _histogram(name: str, documentation: str, values: list[float], buckets: tuple[float, ...]) -> Metric:
    counts = [sum(1 for v in values if v <= bound) for bound in buckets]
    pairs = [(repr(bound), count) for bound, count in zip(buckets, counts)] + [("+Inf", len(values))]
    return HistogramMetricFamily(name, documentation, buckets=pairs, sum_value=sum(values))


class OrchestratorCollector(Collector):
    """Figures read from the database at each scrape (see the module's docstring)."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        since = now - timedelta(seconds=settings.METRICS_WINDOW_SECONDS)

        unfinished = GaugeMetricFamily(
            "orchestrator_flow_runs_unfinished",
            "Flow runs not yet finished, by state and deployment.",
            labels=["state", "deployment"],
        )
        for row in (
            FlowRun.objects.filter(state_type__in=UNFINISHED)
            .values("state_type", "deployment__flow__name", "deployment__name")
            .annotate(n=Count("id"))
        ):
            label = _deployment_label(row["deployment__flow__name"], row["deployment__name"])
            unfinished.add_metric([row["state_type"], label], row["n"])
        yield unfinished

        finished = GaugeMetricFamily(
            "orchestrator_flow_runs_finished_recent",
            "Finished flow runs expected to start within the last METRICS_WINDOW_SECONDS, by state and deployment.",
            labels=["state", "deployment"],
        )
        for row in (
            FlowRun.objects.filter(state_type__in=TERMINAL, expected_start_at__gte=since)
            .values("state_type", "deployment__flow__name", "deployment__name")
            .annotate(n=Count("id"))
        ):
            label = _deployment_label(row["deployment__flow__name"], row["deployment__name"])
            finished.add_metric([row["state_type"], label], row["n"])
        yield finished

        yield from self._queues(now)
        yield from self._histograms(since)

        online = GaugeMetricFamily("orchestrator_workers_online", "Workers online, per work pool.", labels=["pool"])
        for pool in with_online_workers(WorkPool.objects.order_by("name"), now=now):
            online.add_metric([pool.name], getattr(pool, "online_workers", 0))
        yield online

        last = SchedulerPass.objects.filter(name="scheduler").first()
        duration = GaugeMetricFamily(
            "orchestrator_scheduler_pass_duration_seconds", "How long the last full scheduler pass took."
        )
        finished_at = GaugeMetricFamily(
            "orchestrator_scheduler_pass_timestamp_seconds", "When the last full scheduler pass finished (Unix time)."
        )
        created = GaugeMetricFamily(
            "orchestrator_scheduler_pass_runs_created", "Runs the last full scheduler pass created."
        )
        if last is not None:
            duration.add_metric([], last.duration_seconds)
            finished_at.add_metric([], last.finished_at.timestamp())
            created.add_metric([], last.runs_created)
        yield from (duration, finished_at, created)

    def _queues(self, now: Any) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "orchestrator_work_queue_depth",
            "Runs due now and not yet claimed, per work queue.",
            labels=["pool", "queue"],
        )
        oldest = GaugeMetricFamily(
            "orchestrator_work_queue_oldest_due_seconds",
            "How long the oldest due run of each work queue has waited (0 when none is due).",
            labels=["pool", "queue"],
        )
        due = {
            row["work_queue_id"]: row
            for row in FlowRun.objects.filter(state_type=StateType.SCHEDULED, next_scheduled_start_at__lte=now)
            .values("work_queue_id")
            .annotate(n=Count("id"), oldest=Min("next_scheduled_start_at"))
        }
        for queue in WorkQueue.objects.select_related("pool").order_by("pool__name", "name"):
            row = due.get(queue.pk)
            depth.add_metric([queue.pool.name, queue.name], row["n"] if row else 0)
            waited = (now - row["oldest"]).total_seconds() if row else 0.0
            oldest.add_metric([queue.pool.name, queue.name], max(0.0, waited))
        yield depth
        yield oldest

    def _histograms(self, since: Any) -> Iterator[Metric]:
        rows = list(
            FlowRun.objects.filter(expected_start_at__gte=since, started_at__isnull=False)
            .order_by("-expected_start_at")
            .values_list("next_scheduled_start_at", "started_at", "ended_at", "state_type")[
                : settings.METRICS_MAX_SAMPLES
            ]
        )
        pickups = [
            max(0.0, (started - due).total_seconds()) for due, started, _, _ in rows if due is not None and started
        ]
        durations = [
            max(0.0, (ended - started).total_seconds())
            for _, started, ended, state in rows
            if ended is not None and started is not None and state in TERMINAL
        ]
        yield _histogram(
            "orchestrator_flow_run_pickup_latency_seconds",
            "From when a run was due to when it started running, for runs of the last METRICS_WINDOW_SECONDS.",
            pickups,
            PICKUP_BUCKETS,
        )
        yield _histogram(
            "orchestrator_flow_run_duration_seconds",
            "How long finished runs of the last METRICS_WINDOW_SECONDS ran.",
            durations,
            DURATION_BUCKETS,
        )


REGISTRY.register(OrchestratorCollector())


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item, strict=False) for item in settings.METRICS_ALLOWED_IPS]


def _from_allowed_address(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in allowed_networks())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus scrape: 401 without a credential, 403 with a key of another scope."""
    if not _from_allowed_address(request):
        keyword, _, token = request.headers.get("Authorization", "").partition(" ")
        if keyword.lower() != "bearer" or not token.strip():
            response = HttpResponse(
                "Send a metrics key: Authorization: Bearer <key>.\n", status=401, content_type="text/plain"
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        key = authenticate_api_key(token.strip())
        if key is None:
            return HttpResponse("Invalid or revoked API key.\n", status=401, content_type="text/plain")
        if key.scope != Scope.METRICS:
            return HttpResponse(
                f"This API key has scope {str(key.scope)!r}; /metrics needs a 'metrics' key.\n",
                status=403,
                content_type="text/plain",
            )
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


class ApiMetricsMiddleware:
    """Counts API requests and their latency by method, route (the URL pattern's name, never the
    raw path: ids would make a series per object) and status."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        began = time.perf_counter()
        response = self.get_response(request)
        try:
            route = resolve(request.path_info).url_name or "unknown"
        except Resolver404:
            route = "not_found"
        method = request.method if request.method in _METHODS else "OTHER"
        API_REQUESTS.labels(method, route, str(response.status_code)).inc()
        API_LATENCY.labels(method, route).observe(time.perf_counter() - began)
        return response


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
