"""The flow-run state machine as plain data: state types, terminal states, allowed moves.

No ORM here; `runs.services.set_state` is the only code that applies these rules.

| type       | names                           | entered from                                   |
|------------|---------------------------------|------------------------------------------------|
| SCHEDULED  | Scheduled, Late, AwaitingRetry  | creation; SCHEDULED (rename); FAILED/CRASHED   |
|            |                                 | when retries are left (AwaitingRetry only)     |
| PENDING    | Pending                         | SCHEDULED (claimed by a worker)                |
| RUNNING    | Running, Retrying               | PENDING; PAUSED (resumed)                      |
| COMPLETED  | Completed                       | RUNNING                                        |
| FAILED     | Failed                          | RUNNING; PENDING (pull step or import error)   |
| CRASHED    | Crashed                         | PENDING/RUNNING (process died, heartbeat lost) |
| CANCELLING | Cancelling                      | PENDING/RUNNING/PAUSED (cancel requested)      |
| CANCELLED  | Cancelled                       | SCHEDULED; CANCELLING; PAUSED (Suspended)      |
| PAUSED     | Paused, Suspended               | RUNNING                                        |

A Paused run's process waits for it to be resumed (-> RUNNING); a Suspended one has no process:
resuming it makes it SCHEDULED again for a worker to run (the flow starts over and finds its
input). A pause that times out -> FAILED.
"""

from __future__ import annotations

from django.db import models


class StateType(models.TextChoices):
    SCHEDULED = "SCHEDULED", "Scheduled"
    PENDING = "PENDING", "Pending"
    RUNNING = "RUNNING", "Running"
    COMPLETED = "COMPLETED", "Completed"
    FAILED = "FAILED", "Failed"
    CRASHED = "CRASHED", "Crashed"
    CANCELLING = "CANCELLING", "Cancelling"
    CANCELLED = "CANCELLED", "Cancelled"
    PAUSED = "PAUSED", "Paused"


S = StateType

# The state names each type may carry; the first is the default.
STATE_NAMES: dict[StateType, tuple[str, ...]] = {
    S.SCHEDULED: ("Scheduled", "Late", "AwaitingRetry"),
    S.PENDING: ("Pending",),
    S.RUNNING: ("Running", "Retrying"),
    S.COMPLETED: ("Completed",),
    S.FAILED: ("Failed",),
    S.CRASHED: ("Crashed",),
    S.CANCELLING: ("Cancelling",),
    S.CANCELLED: ("Cancelled",),
    S.PAUSED: ("Paused", "Suspended"),
}

SUSPENDED_STATE_NAME = "Suspended"

TERMINAL: frozenset[StateType] = frozenset({S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLED})

# A run in one of these holds a slot of its worker, queue, pool and deployment.
ACTIVE: frozenset[StateType] = frozenset({S.PENDING, S.RUNNING, S.CANCELLING, S.PAUSED})

# from-state -> the states it may move to. FAILED/CRASHED -> SCHEDULED is further limited to
# the AwaitingRetry name on a run with retries left (checked in set_state, which has the run).
ALLOWED: dict[StateType, frozenset[StateType]] = {
    S.SCHEDULED: frozenset({S.SCHEDULED, S.PENDING, S.CANCELLED}),
    S.PENDING: frozenset({S.RUNNING, S.FAILED, S.CRASHED, S.CANCELLING}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLING, S.PAUSED}),
    S.PAUSED: frozenset({S.RUNNING, S.CANCELLING, S.SCHEDULED, S.CANCELLED, S.FAILED}),
    S.CANCELLING: frozenset({S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset({S.SCHEDULED}),
    S.CRASHED: frozenset({S.SCHEDULED}),
    S.CANCELLED: frozenset(),
}

RETRY_STATE_NAME = "AwaitingRetry"


def default_name(state_type: StateType) -> str:
    return STATE_NAMES[StateType(state_type)][0]


def is_allowed(from_type: StateType, to_type: StateType) -> bool:
    return StateType(to_type) in ALLOWED[StateType(from_type)]


def is_terminal(state_type: StateType | str) -> bool:
    return StateType(state_type) in TERMINAL


# Task runs live inside one flow run and are driven by one engine, so their machine is simpler:
# no claiming, no cancelling handshake. A task's retry is SCHEDULED/AwaitingRetry followed by
# RUNNING/Retrying; a cache hit goes straight from PENDING to COMPLETED/Cached.
TASK_STATE_NAMES: dict[StateType, tuple[str, ...]] = {
    S.PENDING: ("Pending",),
    S.RUNNING: ("Running", "Retrying"),
    S.SCHEDULED: ("AwaitingRetry",),
    S.COMPLETED: ("Completed", "Cached"),
    S.FAILED: ("Failed",),
    S.CRASHED: ("Crashed",),
    S.CANCELLED: ("Cancelled",),
}

TASK_ALLOWED: dict[StateType, frozenset[StateType]] = {
    S.PENDING: frozenset({S.RUNNING, S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLED, S.SCHEDULED}),
    S.SCHEDULED: frozenset({S.RUNNING, S.FAILED, S.CRASHED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CRASHED: frozenset(),
    S.CANCELLED: frozenset(),
}


def parse_state_filter(text: str) -> tuple[StateType | None, str | None]:
    """What a person typed to pick runs by state: a state type in any case (`failed`) or a state
    name (`Late`, `awaitingretry`). Returns (type, None) or (None, name); raises ValueError
    naming what is accepted."""
    if text.upper() in StateType.values:
        return StateType(text.upper()), None
    names = {name.lower(): name for names in STATE_NAMES.values() for name in names}
    if text.lower() in names:
        return None, names[text.lower()]
    accepted = ", ".join([*StateType.values, *sorted({n for n in names.values() if n.upper() not in StateType.values})])
    raise ValueError(f"Unknown state {text!r}: use one of {accepted}.")
