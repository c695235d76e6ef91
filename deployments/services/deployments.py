"""Deployments and flows: find, pause, delete, parameters resolved against a deployment's schema."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from accounts import audit
from deployments.models import Deployment, Flow
from deployments.services.schedules import delete_future_runs, schedule_soon
from orchestrator.core.errors import NotFound, ValidationError
from orchestrator.core.states import StateType
from runs.models import FlowRun

log = logging.getLogger(__name__)


def get_deployment(full_name: str) -> Deployment:
    """Find a deployment by `flow/deployment` name."""
    flow_name, sep, name = (full_name or "").partition("/")
    if not sep or not flow_name or not name:
        raise NotFound(f"{full_name!r} is not a deployment name; use FLOW/DEPLOYMENT.")
    try:
        return Deployment.objects.select_related("flow", "work_pool", "work_queue").get(flow__name=flow_name, name=name)
    except Deployment.DoesNotExist:
        raise NotFound(f"No deployment named {full_name!r}.") from None


def set_deployment_paused(deployment: Deployment, paused: bool) -> Deployment:
    """Pause or resume a deployment. Pausing deletes the runs its schedules made that have not
    started (a paused deployment gets no scheduled runs); resuming schedules it again at once,
    from now: slots that passed while paused are not caught up.

    Concurrency: the UPDATE waits for a scheduler tick holding the deployment, which then has
    committed the runs this deletes; a later tick reads it paused."""
    with transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(paused=paused)
        audit.record(
            "deployment.pause" if paused else "deployment.resume",
            deployment,
            before={"paused": deployment.paused},
            after={"paused": paused},
        )
        deployment.paused = paused
        if paused:
            delete_future_runs(deployment.pk)
        else:
            schedule_soon(deployment.pk)
    return deployment


def delete_deployment(deployment: Deployment) -> int:
    """Delete a deployment with its schedules and its runs that have not started (returns how
    many); runs that ended stay, for their history. Refused while one of its runs is claimed or
    running: stop or cancel it first.

    Concurrency: the deployment is locked, so a scheduler tick waits and then finds it gone;
    runs a worker is claiming at this moment are seen as active and refuse the delete."""
    with transaction.atomic():
        Deployment.objects.select_for_update().filter(pk=deployment.pk).first()
        active = FlowRun.objects.filter(deployment=deployment).active().count()
        if active:
            raise ValidationError(
                f"Deployment '{deployment.full_name}' has {active} run(s) in flight; cancel them or let them finish first."
            )
        waiting = list(
            FlowRun.objects.filter(deployment=deployment, state_type=StateType.SCHEDULED).values_list("pk", flat=True)
        )
        for start in range(0, len(waiting), 500):
            FlowRun.objects.filter(pk__in=waiting[start : start + 500]).delete()
        audit.record("deployment.delete", deployment, before={"name": deployment.full_name})
        deployment.delete()
    return len(waiting)


def get_or_create_flow(name: str, *, description: str = "") -> Flow:
    """The flow named `name`, created on first use (a script's first run). Two processes
    creating it at once both get the same row: the unique name decides."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("A flow needs a name.", {"name": ["This field may not be blank."]})
    flow = Flow.objects.filter(name=name).first()
    if flow is not None:
        return flow
    try:
        with transaction.atomic():
            return Flow.objects.create(name=name, description=description)
    except IntegrityError:
        # Lost the race with another process creating the same flow: theirs is the row.
        return Flow.objects.get(name=name)
