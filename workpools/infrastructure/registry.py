"""Which module runs flows for which work pool type.

A type is one module holding an `Infrastructure` subclass with its `type`, its
`default_base_job_template` and the methods of workpools.infrastructure.base. Adding one is a
line here (the module is imported only when a pool of that type is used, so a type whose
library is not installed costs nothing until then).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import ValidationError

if TYPE_CHECKING:
    from workpools.infrastructure.base import Infrastructure

# pool type -> (module:class, label)
TYPES: dict[str, tuple[str, str]] = {
    "process": ("workpools.infrastructure.process:ProcessInfrastructure", "Process"),
    "docker": ("workpools.infrastructure.docker:DockerInfrastructure", "Docker"),
    "kubernetes": ("workpools.infrastructure.kubernetes:KubernetesInfrastructure", "Kubernetes"),
}


def pool_types() -> list[str]:
    return list(TYPES)


def pool_type_choices() -> list[tuple[str, str]]:
    """For the model field and forms (a callable, so adding a type needs no migration)."""
    return [(name, label) for name, (_, label) in TYPES.items()]


def infrastructure_class(pool_type: str) -> type[Infrastructure]:
    """The class for `pool_type`; ValidationError (field `type`) for an unknown one."""
    if pool_type not in TYPES:
        message = f"Unknown work pool type {pool_type!r} (known: {', '.join(TYPES)})."
        raise ValidationError(message, {"type": [message]})
    module_name, _, class_name = TYPES[pool_type][0].partition(":")
    cls: type[Infrastructure] = getattr(importlib.import_module(module_name), class_name)
    return cls


def for_pool_type(pool_type: str, **options: Any) -> Infrastructure:
    """A ready infrastructure for a worker of a `pool_type` pool (options: see each type)."""
    return infrastructure_class(pool_type)(**options)
