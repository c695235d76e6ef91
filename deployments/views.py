"""Deployments pages: the list, one deployment, Quick Run, the Custom Run form, pause/resume."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.roles import Action, role_required
from deployments.forms import CustomRunForm, QuickRunForm
from deployments.models import Deployment
from deployments.services import create_flow_run, set_deployment_paused
from orchestrator.core.errors import OrchestratorError, ValidationError
from runs.models import FlowRun

PAGE_SIZE = 50
RECENT_RUNS = 10


@login_required
def deployment_list(request: HttpRequest) -> HttpResponse:
    deployments = Deployment.objects.with_related().with_next_run()
    page = Paginator(deployments, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "deployments/deployment_list.html", {"page": page})


@login_required
def deployment_detail(request: HttpRequest, pk: UUID) -> HttpResponse:
    deployment = _get_deployment(pk)
    recent = FlowRun.objects.for_list().filter(deployment=deployment).order_by("-expected_start_at", "-id")
    return render(
        request,
        "deployments/deployment_detail.html",
        {"deployment": deployment, "recent_runs": recent[:RECENT_RUNS]},
    )


@login_required
@require_POST
@role_required(Action.TRIGGER)
def quick_run(request: HttpRequest, pk: UUID) -> HttpResponse:
    """Run with the default parameters. The button's own key makes a double click one run."""
    deployment = _get_deployment(pk)
    form = QuickRunForm(request.POST)
    if not form.is_valid():
        messages.error(request, "That Quick Run button is out of date; here is a fresh one.")
        return _back(request, deployment)
    try:
        run, created = create_flow_run(
            deployment,
            idempotency_key=form.cleaned_data["idempotency_key"],
            created_by=f"ui:{request.user.get_username()}",
        )
    except OrchestratorError as error:
        messages.error(request, f"Quick Run of {deployment.full_name} needs more: {error}")
        return redirect("deployments:custom_run", pk=deployment.pk)
    if created:
        messages.success(request, f"Scheduled {run.name}.")
    return redirect(run)


@login_required
@role_required(Action.TRIGGER)
def custom_run(request: HttpRequest, pk: UUID) -> HttpResponse:
    deployment = _get_deployment(pk)
    form = CustomRunForm(deployment, request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            run, created = create_flow_run(
                deployment,
                parameters=form.parameters(),
                name=form.cleaned_data["run_name"] or None,
                idempotency_key=form.cleaned_data["idempotency_key"],
                created_by=f"ui:{request.user.get_username()}",
            )
        except ValidationError as error:
            form.add_service_errors(error)
        except OrchestratorError as error:
            form.add_error(None, str(error))
        else:
            if created:
                messages.success(request, f"Scheduled {run.name}.")
            else:
                messages.info(request, "This form was already sent; here is the run it made.")
            return redirect(run)
    status = 400 if form.is_bound else 200
    return render(request, "deployments/custom_run.html", {"deployment": deployment, "form": form}, status=status)


@login_required
@require_POST
@role_required(Action.PAUSE)
def set_paused(request: HttpRequest, pk: UUID, paused: bool) -> HttpResponse:
    deployment = set_deployment_paused(_get_deployment(pk), paused)
    if request.htmx:
        row = Deployment.objects.with_related().with_next_run().get(pk=deployment.pk)
        context = {"deployment": row, "next": request.POST.get("next", "")}
        return render(request, "deployments/_deployment_row.html", context)
    messages.success(request, f"{deployment.full_name} {'paused' if paused else 'resumed'}.")
    return _back(request, deployment)


def _get_deployment(pk: UUID) -> Deployment:
    return get_object_or_404(Deployment.objects.with_related().with_next_run(), pk=pk)


def _back(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    """To the page the form was on (a `next` field on this site), else the deployment."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(deployment)
