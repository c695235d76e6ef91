"""The business rules of deployments, by concern:

- deployments.py  find, pause, delete deployments; flows
- runs.py         runs of a deployment (parameters, tags, queue routing), one at a time or in bulk
- schedules.py    a deployment's schedules: validate, save, sync, and the future runs a change removes
- scheduler.py    the scheduler's pass: upcoming runs of every active schedule, idempotently
- editing.py      editing a deployment after deploy (API, admin): the same checks as deploy
- deploying.py    deploying definitions (flags, spec files, the wizard, flow.deploy()) in one transaction
- backfill.py     the runs the schedules would have made in a past window, with the scheduler's keys
"""

from deployments.services.backfill import BackfillResult, backfill_deployment
from deployments.services.deployments import (
    delete_deployment,
    get_deployment,
    get_or_create_flow,
    set_deployment_paused,
)
from deployments.services.editing import check_default_parameters, update_deployment
from deployments.services.runs import build_flow_runs, create_flow_run, create_local_flow_run, resolve_parameters
from deployments.services.scheduler import Window, schedule_deployments
from deployments.services.schedules import (
    SyncResult,
    default_schedule_slug,
    delete_deployment_schedule,
    delete_future_runs,
    reschedule_deployment,
    save_deployment_schedule,
    schedule_soon,
    sync_schedules,
    validate_deployment_schedule,
)

__all__ = [
    "BackfillResult",
    "SyncResult",
    "Window",
    "backfill_deployment",
    "build_flow_runs",
    "check_default_parameters",
    "update_deployment",
    "create_flow_run",
    "create_local_flow_run",
    "default_schedule_slug",
    "delete_deployment",
    "delete_deployment_schedule",
    "delete_future_runs",
    "get_deployment",
    "get_or_create_flow",
    "reschedule_deployment",
    "resolve_parameters",
    "save_deployment_schedule",
    "schedule_deployments",
    "schedule_soon",
    "set_deployment_paused",
    "sync_schedules",
    "validate_deployment_schedule",
]
