"""Who may do what through the API.

- No key and no logged-in session: 401.
- A logged-in user (the browsable API) may do everything.
- A key needs the scope its view asks for: read < trigger < write. A view names what each
  action needs in `required_scopes` ({"action": "trigger"}); by default reading needs
  `read` and anything else `write`.
- Secret values are read only with a flow run's credential (a worker key; a run token) or a
  key of scope `secrets` (or a logged-in superuser): `may_read_secrets`, the one place that decides.
- A worker key acts only on its own pool and the runs in it, and only through actions its view
  lists in `worker_actions`. `can_act_on_pool` is the check: on the pool named in the URL here,
  on each object a view reads (`has_object_permission`), and on the run of a nested URL.
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions

from accounts.models import ApiKey, Scope


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
        if key is None:
            return bool(request.user and request.user.is_authenticated)
        needed = required_scope(request, view)
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
        if can_act_on_pool(key, pool_of(obj)):
            return True
        self.message = f"This worker key acts only on work pool {key.pool.name!r}."
        return False


# The credentials a flow run holds: a worker key today; a run token ("run") where workers issue them.
RUN_CREDENTIAL_SCOPES = frozenset({Scope.WORKER, "run"})


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
