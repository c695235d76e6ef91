"""Who may do what through the API.

- No key and no logged-in session: 401.
- A logged-in user (the browsable API) reads everything and changes what their role allows
  (accounts.roles: viewer nothing, operator trigger/cancel/pause/resume, admin everything).
- A key needs the scope its view asks for: read < trigger < write. A view names what each
  action needs in `required_scopes` ({"action": "trigger"}); by default reading needs
  `read` and anything else `write`.
- Secret values are read only with a flow run's credential (a worker key; a run token) or a
  key of scope `secrets` (or a logged-in superuser): `may_read_secrets`, the one place that decides.
- A worker key acts only on its own pool and the runs in it, and only through actions its view
  lists in `worker_actions`. `can_act_on_pool` is the check: on the pool named in the URL here,
  on each object a view reads (`has_object_permission`), and on the run of a nested URL.
- A run token (scope `run`, issued by a worker for one run's job) acts only on its own run,
  only through actions its view lists in `run_actions` (the engine's: the run's execution
  view, set-state, heartbeat, retries, task runs, logs, cached results), and only while the
  run is unfinished; log lines are still taken for RUN_TOKEN_LOG_GRACE_SECONDS after the end.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from rest_framework import permissions

from accounts.models import ApiKey, Scope
from accounts.roles import Action, may, role_of
from orchestrator.core.states import is_terminal


def pool_of(obj: Any) -> Any:
    """The work pool an API object belongs to: the pool itself, a queue's or worker's pool,
    a run's or deployment's work pool, a task run's flow run's. None when it has none.
    (Told apart by their fields, so that this app needs none of the others.)"""
    label = obj._meta.label if hasattr(obj, "_meta") else ""
    if label == "workpools.WorkPool":
        return obj
    if hasattr(obj, "pool_id"):
        return obj.pool
    if label in ("runs.TaskRun", "runs.Artifact"):
        return pool_of(obj.flow_run)
    if label == "runs.FlowRun" and obj.work_pool_id is None and obj.parent_flow_run_id is not None:
        return pool_of(obj.parent_flow_run)  # a subflow run acts in its parent's pool
    return getattr(obj, "work_pool", None)


def pool_limit(key: ApiKey | None) -> Any:
    """The work pool a request holding `key` is limited to when it reads across runs (cached
    results): a worker key's own pool, a run token's run's pool; None (no limit) otherwise."""
    if key is None:
        return None
    if key.scope == Scope.WORKER:
        return key.pool
    if key.scope == Scope.RUN and key.flow_run is not None:
        return pool_of(key.flow_run)
    return None


def can_act_on_pool(key: ApiKey | None, pool: Any) -> bool:
    """Whether a request holding `key` (None: a logged-in session) may act on `pool` (a
    WorkPool or a pool name). Only worker keys are limited to a pool: their own."""
    if key is None or key.scope != Scope.WORKER:
        return True
    if pool is None:
        return False
    if isinstance(pool, str):
        return key.pool is not None and key.pool.name == pool
    return key.pool_id == pool.pk


def role_action(view_action: str | None, scope: str) -> Action:
    """The role action an API change is: pausing and resuming, cancelling, triggering (what a
    trigger key may do), or any other change."""
    if view_action in ("pause", "resume"):
        return Action.PAUSE
    if view_action == "cancel":
        return Action.CANCEL
    if scope == Scope.TRIGGER:
        return Action.TRIGGER
    return Action.CHANGE


def run_id_of(obj: Any) -> Any:
    """The flow run an API object belongs to (a run, a task run, a log line), or None. (By the
    model's name: accounts sits below runs and imports nothing of it.)"""
    if getattr(getattr(obj, "_meta", None), "label", "") == "runs.FlowRun":
        return obj.pk
    return getattr(obj, "flow_run_id", None)


def _url_run_id(view: Any) -> str | None:
    run_pk = view.kwargs.get("run_pk")
    if run_pk is None and getattr(view, "basename", None) == "flow-runs":
        run_pk = view.kwargs.get("pk")
    return None if run_pk is None else str(run_pk)


MAX_SUBFLOW_DEPTH = 20


def _same_run(key: ApiKey, run_id: Any) -> bool:
    """Whether `run_id` is the token's run, or one of its subflow runs (a child, a grandchild,
    ...: they run in the token's process)."""
    try:
        wanted, current = uuid.UUID(str(key.flow_run_id)), uuid.UUID(str(run_id))
    except ValueError:
        return False
    runs = ApiKey._meta.get_field("flow_run").related_model._default_manager  # runs.FlowRun, by relation
    for _ in range(MAX_SUBFLOW_DEPTH):
        if current == wanted:
            return True
        parent = runs.filter(pk=current).values_list("parent_flow_run_id", flat=True).first()
        if parent is None:
            return False
        current = parent
    return False


def run_token_refusal(key: ApiKey, view: Any) -> str:
    """Why a run token may not do what `view` is asked to do ("" when it may)."""
    from django.conf import settings
    from django.utils import timezone

    from orchestrator.core.states import is_terminal

    run = key.flow_run
    if getattr(view, "action", None) not in getattr(view, "run_actions", ()):
        return "A run token may only act on its own flow run's execution."
    url_run = _url_run_id(view)
    if url_run is not None and not _same_run(key, url_run):
        return f"This run token acts only on flow run {run.name!r}."
    if is_terminal(run.state_type):
        late_logs = getattr(view, "run_final_actions", ())
        grace = timedelta(seconds=settings.RUN_TOKEN_LOG_GRACE_SECONDS)
        if view.action in late_logs and timezone.now() - run.state_at <= grace:
            return ""
        return f"Flow run {run.name!r} is {run.state_type}: its run token no longer works."
    return ""


def required_scope(request: Any, view: Any) -> str:
    declared = getattr(view, "required_scopes", {}).get(getattr(view, "action", None))
    if declared:
        return declared
    return Scope.READ if request.method in permissions.SAFE_METHODS else Scope.WRITE


class HasScope(permissions.BasePermission):
    """The project's default permission (settings.REST_FRAMEWORK)."""

    message = "This API key does not allow that."

    def has_permission(self, request: Any, view: Any) -> bool:
        key = request.auth if isinstance(request.auth, ApiKey) else None
        needed = required_scope(request, view)
        if key is None:
            if not (request.user and request.user.is_authenticated):
                return False
            if needed == Scope.READ:
                return True
            # A person signed in: their role decides (the policy the dashboard and admin use).
            action = role_action(getattr(view, "action", None), needed)
            if not may(request.user, action):
                self.message = f"Your role ({role_of(request.user)}) does not allow you to {Action(action).label}."
                return False
            return True
        if key.scope == Scope.RUN:
            refusal = run_token_refusal(key, view)
            if refusal:
                self.message = refusal
            return not refusal
        if key.scope == Scope.WORKER:
            if getattr(view, "action", None) not in getattr(view, "worker_actions", ()):
                self.message = "A worker key may only act on its own work pool."
                return False
            # Nested under a pool (/work-pools/<name>/...): the URL names the pool.
            pool_name = view.kwargs.get("pool_name")
            if pool_name is not None and not can_act_on_pool(key, pool_name):
                self.message = f"This worker key acts only on work pool {key.pool.name!r}."
                return False
            return True
        if not key.allows(needed):
            self.message = f"This API key has scope {str(key.scope)!r}; this needs {str(needed)!r}."
            return False
        return True

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        key = request.auth if isinstance(request.auth, ApiKey) else None
        if key is not None and key.scope == Scope.RUN:
            if _same_run(key, run_id_of(obj)):
                return True
            self.message = f"This run token acts only on flow run {key.flow_run.name!r}."  # type: ignore[union-attr]
            return False
        if can_act_on_pool(key, pool_of(obj)):
            return True
        self.message = f"This worker key acts only on work pool {key.pool.name!r}."
        return False


# The credentials a flow run holds: a worker key (a process beside a remote worker), a run token.
RUN_CREDENTIAL_SCOPES = frozenset({Scope.WORKER, Scope.RUN})


def may_read_secrets(request: Any) -> tuple[bool, str]:
    """Whether `request` may read secret values, and why not. The one place this is decided:
    a key of scope `secrets`, a flow run's credential, or a logged-in superuser may; every
    other key (read, trigger, write) may not."""
    key = request.auth if isinstance(request.auth, ApiKey) else None
    if key is None:
        user = request.user
        if user is not None and user.is_authenticated and user.is_superuser:
            return True, ""
        return False, "Reading secrets needs a superuser, a flow run's credential or a key with the 'secrets' scope."
    if key.scope == Scope.RUN and key.flow_run is not None and is_terminal(key.flow_run.state_type):
        return False, f"Flow run {key.flow_run.name!r} is {key.flow_run.state_type}: its run token no longer works."
    if key.scope == Scope.SECRETS or key.scope in RUN_CREDENTIAL_SCOPES:
        return True, ""
    return False, (
        f"This API key has scope {str(key.scope)!r}; reading secrets needs the 'secrets' scope or a flow run's credential."
    )


class CanReadSecrets(permissions.BasePermission):
    """For the one action that returns a secret's value (it replaces HasScope there)."""

    message = "This API key may not read secrets."

    def has_permission(self, request: Any, view: Any) -> bool:
        if request.auth is None and not (request.user and request.user.is_authenticated):
            return False  # 401 rather than 403: nobody is asking
        allowed, why = may_read_secrets(request)
        if not allowed:
            self.message = why
        return allowed
