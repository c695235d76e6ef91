"""Work pools pages: pools, their queues and workers, live; pause and resume."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import Action, role_required
from workpools.models import WorkPool, WorkQueue
from workpools.overview import pool_overview
from workpools.services import set_work_pool_paused, set_work_queue_paused


@login_required
def pool_list(request: HttpRequest) -> HttpResponse:
    return render(request, "workpools/pool_list.html", {"pools": pool_overview()})


@login_required
def pools_fragment(request: HttpRequest) -> HttpResponse:
    """The pools panel alone; the page polls it so health changes show without a reload."""
    return render(request, "workpools/_pools.html", {"pools": pool_overview()})


@login_required
@require_POST
@role_required(Action.PAUSE)
def set_pool_paused(request: HttpRequest, pk: UUID, paused: bool) -> HttpResponse:
    pool = set_work_pool_paused(get_object_or_404(WorkPool, pk=pk), paused)
    return _after_change(request, f"Work pool {pool.name} {'paused' if paused else 'resumed'}.")


@login_required
@require_POST
@role_required(Action.PAUSE)
def set_queue_paused(request: HttpRequest, pk: UUID, paused: bool) -> HttpResponse:
    queue = set_work_queue_paused(get_object_or_404(WorkQueue.objects.select_related("pool"), pk=pk), paused)
    return _after_change(request, f"Work queue {queue} {'paused' if paused else 'resumed'}.")


def _after_change(request: HttpRequest, done: str) -> HttpResponse:
    """htmx swaps in the fresh panel; a plain form post goes back to the page."""
    if request.htmx:
        return pools_fragment(request)
    messages.success(request, done)
    return redirect("workpools:list")
