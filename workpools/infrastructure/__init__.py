from workpools.infrastructure.base import Infrastructure, RunProcess, job_variables_for
from workpools.infrastructure.process import ProcessInfrastructure

__all__ = ["Infrastructure", "ProcessInfrastructure", "RunProcess", "job_variables_for", "for_pool_type"]


def for_pool_type(pool_type: str, *, prewarm: bool = False) -> Infrastructure:
    """The infrastructure that runs flows for a pool type."""
    if pool_type == "process":
        return ProcessInfrastructure(prewarm=prewarm)
    raise ValueError(f"No infrastructure for work pool type {pool_type!r}.")
