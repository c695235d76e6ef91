from workpools.infrastructure.base import Infrastructure, RunHandle, RunProcess, job_variables_for
from workpools.infrastructure.process import ProcessInfrastructure
from workpools.infrastructure.registry import for_pool_type

__all__ = ["Infrastructure", "ProcessInfrastructure", "RunHandle", "RunProcess", "job_variables_for", "for_pool_type"]
