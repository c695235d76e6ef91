from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.defaults import page_not_found

from orchestrator.health import RETRY_AFTER_SECONDS, check_broker, check_database
from runs.charts import hourly_window, recent_history_chart
from runs.models import FlowRun
from runs.timeline import build_duration_scatter
from workpools.overview import pool_overview

# The duration scatter draws at most this many runs of the window (the newest).
SCATTER_MAX_RUNS = 1000

ATTENTION_ROWS = 8


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Runs of the last 24 hours by state and by hour, runs that need someone, pool health."""
    now = timezone.now()
    runs = FlowRun.objects.for_list()
    view = "scatter" if request.GET.get("chart") == "scatter" else "bars"
    day = hourly_window(now)
    context = {
        "chart": recent_history_chart(now),
        "chart_view": view,
        "scatter": build_duration_scatter(
            list(
                FlowRun.objects.between(*day)
                .filter(started_at__isnull=False)
                .only("id", "name", "state_type", "started_at", "ended_at")[:SCATTER_MAX_RUNS]
            ),
            *day,
        )
        if view == "scatter"
        else None,
        "late_runs": runs.late(now, after=timedelta(seconds=settings.LATE_RUN_SECONDS)).order_by(
            "next_scheduled_start_at"
        )[:ATTENTION_ROWS],
        "failed_runs": runs.failed_since(now - timedelta(hours=24)).order_by("-expected_start_at")[:ATTENTION_ROWS],
        "pools": pool_overview(now=now),
    }
    return render(request, "home.html", context)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: the API (and webhook receiver) answers JSON, like its other errors, even for a
    path no route matches (a name with a slash, a typo); the dashboard keeps its HTML page."""
    if request.path.startswith(("/api/", "/hooks/")):
        return JsonResponse({"detail": f"Not found: no API endpoint or object at {request.path}."}, status=404)
    return page_not_found(request, exception or Http404())


def healthz(request: HttpRequest) -> JsonResponse:
    """For process supervisors and load balancers: 200 when the database and the broker answer,
    else 503 with Retry-After; each dependency is reported on its own, so the answer says which
    one is down."""
    checks = {"database": check_database(), "broker": check_broker()}
    ok = all(check.ok for check in checks.values())
    body = {"status": "ok" if ok else "unavailable", **{name: check.as_dict() for name, check in checks.items()}}
    response = JsonResponse(body, status=200 if ok else 503)
    if not ok:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
