"""First-run set-up shared by `manage.py up` and tests: the admin account and default pool."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction


def ensure_admin(username: str, password: str = "") -> str | None:
    """Create the superuser `username` if missing. Returns the password to show when one was
    just generated (shown once, never stored in clear), else None. When `password` is given
    it is (re)applied, so the env var always works."""
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.filter(username=username).first()
        if user is None:
            chosen = password or secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email="", password=chosen)
            return None if password else chosen
        if password and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
    return None


DEFAULT_POOL = "default"
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


def ensure_default_pool() -> Any:
    """The process pool `make up`'s worker serves."""
    from workpools.models import WorkPool
    from workpools.services import create_work_pool

    return WorkPool.objects.filter(name=DEFAULT_POOL).first() or create_work_pool(DEFAULT_POOL)


def ensure_example_deployment() -> Any | None:
    """On a fresh install (no deployment at all), deploy examples/hello.py to the default pool
    with a schedule every minute, so a newcomer sees runs happen. Returns it when created."""
    from deployments.models import Deployment
    from deployments.services.deploying import deploy_definitions
    from deployments.specs import DeploymentDefinition

    if Deployment.objects.exists():
        return None
    pool = ensure_default_pool()
    definition = DeploymentDefinition(
        name="every-minute",
        description="The example from the tutorial: logs Hello Leo! every minute.",
        entrypoint="hello.py:leonardo_dicapriflow",
        work_pool=pool.name,
        parameters={"name": "Leo"},
        tags=["example"],
        schedules=[{"slug": "every-minute", "kind": "cron", "cron": "* * * * *", "timezone": "UTC"}],
    )
    (result,) = deploy_definitions([definition], project_dir=EXAMPLES_DIR)
    return result.deployment
