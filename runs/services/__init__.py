"""The business rules of flow runs, by concern. Every surface (API, dashboard, admin, commands,
worker, engine, Celery tasks) calls these functions; none of them writes run state on its own.

- state.py         set_state (the one writer of run state), heartbeats, cancellation
- creation.py      inserting runs with their first state (runs of a deployment: deployments.services.runs)
- task_runs.py     task runs and their states, cached results
- subflows.py      child flow runs of a flow run
- pausing.py       pausing and suspending for input, resuming
- artifacts.py     what runs publish: markdown, tables, links, progress
- logs.py          log batches
- housekeeping.py  late runs, retention
- replays.py      was a write stored before its connection died? (retries after a restart)
"""

from runs.services.artifacts import create_artifact, latest_artifact, update_artifact
from runs.services.creation import (
    create_adhoc_flow_run,
    generate_run_name,
    insert_flow_run,
    insert_flow_runs,
    new_flow_run,
)
from runs.services.housekeeping import delete_old_runs, mark_late_runs
from runs.services.logs import LOG_FIELDS, write_logs
from runs.services.pausing import (
    fail_expired_pauses,
    pause_flow_run,
    read_flow_run_input,
    resume_flow_run,
    waiting_input,
)
from runs.services.replays import (
    applied_flow_run_state,
    applied_task_run_state,
    created_task_run,
    stored_log_batch,
)
from runs.services.state import (
    find_flow_run,
    record_run_heartbeat,
    record_run_process,
    request_cancellation,
    set_flow_run_retries,
    set_state,
)
from runs.services.subflows import insert_subflow_run, record_flow_run_result, unfinished_children
from runs.services.task_runs import (
    crash_unfinished_task_runs,
    create_task_run,
    find_cached_task_run,
    set_task_run_state,
)

__all__ = [
    "create_artifact",
    "latest_artifact",
    "update_artifact",
    "fail_expired_pauses",
    "pause_flow_run",
    "read_flow_run_input",
    "resume_flow_run",
    "waiting_input",
    "insert_subflow_run",
    "record_flow_run_result",
    "unfinished_children",
    "LOG_FIELDS",
    "applied_flow_run_state",
    "applied_task_run_state",
    "created_task_run",
    "stored_log_batch",
    "create_adhoc_flow_run",
    "crash_unfinished_task_runs",
    "create_task_run",
    "delete_old_runs",
    "find_cached_task_run",
    "find_flow_run",
    "generate_run_name",
    "insert_flow_run",
    "insert_flow_runs",
    "mark_late_runs",
    "new_flow_run",
    "record_run_heartbeat",
    "record_run_process",
    "request_cancellation",
    "set_flow_run_retries",
    "set_state",
    "set_task_run_state",
    "write_logs",
]
