"""API keys: create (the key is shown once), authenticate, revoke."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import audit
from accounts.models import ApiKey, Scope
from orchestrator.core.errors import NotFound, ValidationError

KEY_PREFIX = "orch_"
PREFIX_LENGTH = 12  # "orch_" and 7 random characters: enough to find the row, useless alone
# last_used_at is written only when it moves by more than this, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_key(name: str, *, scope: str = Scope.READ, pool: Any = None) -> tuple[ApiKey, str]:
    """Create a key. Returns (row, key): the key itself exists only in this return value.

    A worker key needs a pool and may act only on it; other scopes take no pool. Raises
    ValidationError for a blank or taken name, an unknown scope or a missing/extra pool."""
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["An API key needs a name."]
    if scope not in Scope.values:
        errors["scope"] = [f"Unknown scope {scope!r} (use one of: {', '.join(Scope.values)})."]
    elif scope == Scope.WORKER and pool is None:
        errors["pool"] = ["A worker key is bound to one pool: name it."]
    elif scope != Scope.WORKER and pool is not None:
        errors["pool"] = ["Only worker keys are bound to a pool."]
    if errors:
        raise ValidationError(next(iter(errors.values()))[0], errors)
    if ApiKey.objects.filter(name=name).exists():
        raise ValidationError(f"An API key named {name!r} already exists.", {"name": ["Already taken."]})
    for _ in range(3):
        token = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    name=name, prefix=token[:PREFIX_LENGTH], hashed_key=hash_key(token), scope=scope, pool=pool
                )
                audit.record("api_key.create", key, after={"scope": scope, "pool": str(pool) if pool else None})
        except IntegrityError:
            if ApiKey.objects.filter(name=name).exists():  # lost a race for the name
                raise ValidationError(
                    f"An API key named {name!r} already exists.", {"name": ["Already taken."]}
                ) from None
            continue  # the random prefix collided: draw again
        return key, token
    raise ValidationError("Could not generate a unique key; try again.")


def issue_run_token(run: Any) -> tuple[ApiKey, str]:
    """A key that acts on `run` alone (scope `run`; accounts.permissions says what it may do),
    for the run's job instead of its worker's credentials. It expires after
    RUN_TOKEN_TTL_SECONDS and stops working once the run is final. Returns (row, key).
    Raises ValidationError for a run that is already final."""
    from orchestrator.core.states import is_terminal

    if is_terminal(run.state_type):
        raise ValidationError(f"Flow run {run.name!r} is {run.state_type}: a finished run gets no token.")
    expires_at = timezone.now() + timedelta(seconds=settings.RUN_TOKEN_TTL_SECONDS)
    for _ in range(3):
        token = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    name=f"run:{run.pk}:{token[len(KEY_PREFIX) : PREFIX_LENGTH]}",
                    prefix=token[:PREFIX_LENGTH],
                    hashed_key=hash_key(token),
                    scope=Scope.RUN,
                    flow_run=run,
                    expires_at=expires_at,
                )
        except IntegrityError:
            continue  # the random prefix collided: draw again
        return key, token
    raise ValidationError("Could not generate a unique token; try again.")


def authenticate_api_key(token: str) -> ApiKey | None:
    """The active, unexpired key `token` is, or None. Compares hashes in constant time."""
    if not token.startswith(KEY_PREFIX) or len(token) <= PREFIX_LENGTH:
        return None
    key = (
        ApiKey.objects.active()
        .select_related("pool", "flow_run__work_pool")
        .filter(prefix=token[:PREFIX_LENGTH])
        .first()
    )
    if key is None or not hmac.compare_digest(key.hashed_key, hash_key(token)):
        return None
    now = timezone.now()
    if key.expires_at is not None and key.expires_at <= now:
        return None
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def revoke_api_key(name: str) -> ApiKey:
    """Revoke the key named `name`: it stops working at once. Revoking twice changes nothing.
    Raises NotFound for an unknown name."""
    key = ApiKey.objects.filter(name=name).first()
    if key is None:
        raise NotFound(f"No API key named {name!r}.")
    if key.revoked_at is None:
        now = timezone.now()
        with transaction.atomic():
            ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now)
            audit.record("api_key.revoke", key)
        key.revoked_at = now
    return key
