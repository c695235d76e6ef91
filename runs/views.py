"""Flow runs pages: the filtered list and a run's detail, live while the run goes on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.roles import Action, role_required
from orchestrator.core.errors import OrchestratorError, ValidationError
from orchestrator.core.states import StateType
from runs.forms import RunFilterForm, RunInputForm
from runs.models import FlowRun, RunCursor
from runs.services import request_cancellation, resume_flow_run, waiting_input
from runs.timeline import build_gantt, with_subflow_task_runs

PAGE_SIZE = 50
TASK_RUNS_SHOWN = 500
LOG_LINES_SHOWN = 500
ARTIFACTS_SHOWN = 100
# Logs may arrive in a last batch just after the run ends: keep polling them a little longer.
LOG_TAIL = timedelta(seconds=5)


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    form = RunFilterForm(request.GET)
    cursors = {}
    for direction in ("after", "before"):
        token = request.GET.get(direction)
        if token:
            try:
                cursors[direction] = RunCursor.decode(token)
            except ValueError:
                messages.warning(request, "That page link has expired; showing the newest runs.")
    runs = FlowRun.objects.for_list().matching(**form.filters(timezone.now()))
    page = runs.keyset_page(**cursors, size=PAGE_SIZE)
    return render(request, "runs/run_list.html", {"form": form, "page": page})


@login_required
def run_detail(request: HttpRequest, pk: UUID) -> HttpResponse:
    run = _get_run(pk)
    return render(request, "runs/run_detail.html", {**_detail(run), **_input(run)})


@login_required
@require_POST
@role_required(Action.PAUSE)
def resume(request: HttpRequest, pk: UUID) -> HttpResponse:
    """Resume a paused run with the input its form was filled with; the form comes back with
    the service's errors next to its fields."""
    run = _get_run(pk)
    waiting = waiting_input(run)
    if waiting is None:
        messages.error(request, f"{run.name} is not paused.")
        return redirect(run)
    form = RunInputForm(waiting.schema, None, request.POST)
    if form.is_valid():
        try:
            resume_flow_run(
                run, value=form.parameters() if waiting.schema else None, by=f"ui:{request.user.get_username()}"
            )
        except ValidationError as error:
            form.add_service_errors(error)
        except OrchestratorError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"{run.name} resumed.")
            return redirect(run)
    context = {**_detail(run), "waiting": waiting, "input_form": form, "input_live": False}
    return render(request, "runs/run_detail.html", context, status=400)


@login_required
@require_POST
@role_required(Action.CANCEL)
def cancel(request: HttpRequest, pk: UUID) -> HttpResponse:
    run = _get_run(pk)
    try:
        request_cancellation(run, by=f"ui:{request.user.get_username()}")
    except OrchestratorError as error:
        messages.error(request, str(error))
    else:
        done = f"{run.name} cancelled." if run.is_terminal else f"Cancellation of {run.name} requested."
        messages.success(request, done)
    return redirect(run)


def _detail(run: FlowRun) -> dict[str, object]:
    """Everything the run page shows but the input form."""
    return {
        **_header(run),
        **_timeline(run),
        **_task_runs(run),
        **_logs(run),
        **_relations(run),
        **_artifacts(run),
    }


def _get_run(pk: UUID) -> FlowRun:
    return get_object_or_404(FlowRun.objects.with_related(), pk=pk)


def _header(run: FlowRun) -> dict[str, object]:
    return {"run": run, "header_live": not run.is_terminal}


def _timeline(run: FlowRun) -> dict[str, object]:
    return {"run": run, "states": list(run.states.all()), "timeline_live": not run.is_terminal}


def _task_runs(run: FlowRun) -> dict[str, object]:
    task_runs = list(run.task_runs.prefetch_related("child_flow_runs").order_by("created_at")[: TASK_RUNS_SHOWN + 1])
    return {
        "run": run,
        "task_runs": task_runs[:TASK_RUNS_SHOWN],
        "gantt": build_gantt(with_subflow_task_runs(task_runs[:TASK_RUNS_SHOWN], limit=TASK_RUNS_SHOWN)),
        "more_task_runs": len(task_runs) > TASK_RUNS_SHOWN,
        "task_runs_live": not run.is_terminal,
    }


def _relations(run: FlowRun) -> dict[str, object]:
    """The run's parent (a subflow) and its own subflow runs, linked both ways."""
    children = list(run.child_runs.select_related("flow").order_by("created_at")[: TASK_RUNS_SHOWN + 1])
    return {"child_runs": children[:TASK_RUNS_SHOWN], "more_child_runs": len(children) > TASK_RUNS_SHOWN}


def _input(run: FlowRun) -> dict[str, object]:
    """The input form of a paused run; while the run may still pause, a part that polls for it."""
    waiting = waiting_input(run)
    form = RunInputForm(waiting.schema, None) if waiting is not None else None
    may_pause = run.state_type in (StateType.PENDING, StateType.RUNNING)
    return {"run": run, "waiting": waiting, "input_form": form, "input_live": waiting is None and may_pause}


def _artifacts(run: FlowRun) -> dict[str, object]:
    shown = list(run.artifacts.select_related("task_run").order_by("created_at")[:ARTIFACTS_SHOWN])
    return {"run": run, "artifacts": shown, "artifacts_live": not run.is_terminal}


def _logs(run: FlowRun) -> dict[str, object]:
    newest = list(run.logs.select_related("task_run").order_by("-timestamp", "-id")[: LOG_LINES_SHOWN + 1])
    just_ended = run.ended_at is not None and timezone.now() - run.ended_at <= LOG_TAIL
    return {
        "run": run,
        "logs": newest[:LOG_LINES_SHOWN][::-1],
        "more_logs": len(newest) > LOG_LINES_SHOWN,
        "logs_live": not run.is_terminal or just_ended,
    }


# --- live fragments: each polls itself every 2 s until the run has finished -----------------


def _fragment(template: str, part: Callable[[FlowRun], dict[str, Any]]) -> Callable[..., HttpResponse]:
    """The view of one live part of a run's page: the part's template alone."""

    @login_required
    def view(request: HttpRequest, pk: UUID) -> HttpResponse:
        return render(request, template, part(_get_run(pk)))

    return view


header_fragment = _fragment("runs/_run_header.html", _header)
timeline_fragment = _fragment("runs/_run_timeline.html", _timeline)
task_runs_fragment = _fragment("runs/_run_task_runs.html", _task_runs)
logs_fragment = _fragment("runs/_run_logs.html", _logs)
artifacts_fragment = _fragment("runs/_run_artifacts.html", _artifacts)
input_fragment = _fragment("runs/_run_input.html", _input)
