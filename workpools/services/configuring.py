"""Configuring a work pool's infrastructure: its base job template and default job variables.

The rules (what a template must look like, what variables it accepts) are in
workpools.infrastructure.templates; these services apply them before anything is written, and
every surface (CLI, API, admin) calls them.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from workpools.infrastructure.templates import (
    check_base_job_template,
    check_job_variables,
    default_base_job_template,
    effective_template,
)
from workpools.models import WorkPool

UNSET: Any = object()


def update_work_pool(
    pool: WorkPool,
    *,
    description: str = UNSET,
    concurrency_limit: int | None = UNSET,
    base_job_template: dict[str, Any] | None = UNSET,
    job_variables: dict[str, Any] = UNSET,
) -> WorkPool:
    """Change what is given. A template is checked, and the pool's job variables are checked
    against the template it will have; an empty template ({} or None) means the type's default.
    Raises ValidationError (field errors, nothing written)."""
    from workpools.services.pools import check_concurrency_limit

    changes: dict[str, Any] = {}
    if description is not UNSET:
        changes["description"] = description or ""
    if concurrency_limit is not UNSET:
        check_concurrency_limit(concurrency_limit)
        changes["concurrency_limit"] = concurrency_limit
    template = effective_template(pool)
    if base_job_template is not UNSET:
        template = (
            check_base_job_template(base_job_template) if base_job_template else default_base_job_template(pool.type)
        )
        changes["base_job_template"] = template
    variables = pool.job_variables if job_variables is UNSET else (job_variables or {})
    if job_variables is not UNSET or base_job_template is not UNSET:
        check_job_variables(template, variables, field="job_variables")
        changes["job_variables"] = variables
    if changes:
        with transaction.atomic():
            WorkPool.objects.filter(pk=pool.pk).update(**changes)
        for name, value in changes.items():
            setattr(pool, name, value)
    return pool


def initial_template(pool_type: str, base_job_template: dict[str, Any] | None) -> dict[str, Any]:
    """The template a new pool starts with: the one given (checked), else its type's default."""
    if base_job_template:
        return check_base_job_template(base_job_template)
    return default_base_job_template(pool_type)
