"""`@flow`: a function whose call is a flow run, recorded by the orchestrator."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from orchestrator.client import get_client
from orchestrator.core.parameters import parameter_schema
from orchestrator.sdk.runner import TaskRunner
from orchestrator.sdk.tasks import check_non_negative, check_plain_function, decorate

P = ParamSpec("P")
R = TypeVar("R")


class Flow(Generic[P, R]):
    """A flow. Calling it (from a script, say) creates an ad-hoc flow run and runs it here;
    the engine runs it for a deployment's runs."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        retries: int | None = None,
        retry_delay_seconds: float = 0,
        timeout_seconds: float | None = None,
        log_prints: bool = False,
        persist_result: bool | None = None,
        result_storage: str | None = None,
        task_runner: TaskRunner | None = None,
    ) -> None:
        check_plain_function("flow", fn)
        self.fn = fn
        self.name = name or fn.__name__
        check_non_negative(
            f"flow {self.name!r}",
            retries=retries,
            retry_delay_seconds=retry_delay_seconds,
            timeout_seconds=timeout_seconds,
        )
        self.description = description if description is not None else (inspect.getdoc(fn) or "")
        self.retries = retries
        self.retry_delay_seconds = retry_delay_seconds
        self.timeout_seconds = timeout_seconds
        self.log_prints = bool(log_prints)
        self.persist_result = persist_result  # None: PERSIST_RESULTS decides
        self.result_storage = result_storage  # None: RESULT_STORAGE (or the data directory)
        if isinstance(task_runner, type) and issubclass(task_runner, TaskRunner):
            task_runner = task_runner()  # @flow(task_runner=DaskTaskRunner) means its defaults
        if task_runner is not None and not isinstance(task_runner, TaskRunner):
            raise ValueError(
                f"flow {self.name!r}: task_runner must be a task runner such as ThreadTaskRunner(), "
                f"DaskTaskRunner() or RayTaskRunner(), not {task_runner!r}."
            )
        self.task_runner = task_runner
        functools.update_wrapper(self, fn)

    @property
    def parameter_schema(self) -> dict[str, Any]:
        """The JSON schema of the flow's parameters (stored with its deployments)."""
        return parameter_schema(self.fn)

    def to_deployment(self, name: str, *, work_pool_name: str, **options: Any) -> Any:
        """A deployment of this flow, to deploy with `manage.py deploy --file deployments.py
        --all` (a .py spec file holding these) or `deploy()`. Options: work_queue_name,
        parameters, tags, description, version, cron / interval / rrule with timezone, schedules,
        entrypoint (default: this flow's file), pull_steps, job_variables, concurrency_limit,
        enforce_parameter_schema."""
        return get_client().flow_deployment(self, name, work_pool_name=work_pool_name, **options)

    def deploy(self, name: str, *, work_pool_name: str, project_dir: str | None = None, **options: Any) -> Any:
        """Create or update a deployment of this flow (as `manage.py deploy` does) and return
        it. Its code is this project (`project_dir`, default the working directory), or the git
        repository a `git_clone` step in `pull_steps` names. Raises what the deploy refuses
        (ValidationError, NotFound) with nothing saved."""
        return get_client().deploy_flow(
            self, name, work_pool_name=work_pool_name, project_dir=project_dir or os.getcwd(), **options
        )

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the flow as an ad-hoc flow run (inside a flow run: as a subflow run of it):
        returns what the function returns, or raises what it raised once the run is recorded
        FAILED. With `return_state=True` (unless the flow has a parameter of that name) it
        returns the run's final State instead and raises nothing."""
        from orchestrator.sdk.execution import run_flow_from_call

        return_state = False
        if "return_state" in kwargs and "return_state" not in inspect.signature(self.fn).parameters:
            return_state = bool(kwargs.pop("return_state"))
        return run_flow_from_call(self, args, kwargs, return_state=return_state)

    def __repr__(self) -> str:
        return f"<Flow {self.name!r}>"


@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...
@overload
def flow(
    *,
    name: str | None = None,
    description: str | None = None,
    retries: int | None = None,
    retry_delay_seconds: float = 0,
    timeout_seconds: float | None = None,
    log_prints: bool = False,
    persist_result: bool | None = None,
    result_storage: str | None = None,
    task_runner: TaskRunner | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...
def flow(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function a flow: `@flow` or `@flow(name=..., description=..., retries=...,
    retry_delay_seconds=..., timeout_seconds=..., log_prints=..., persist_result=..., result_storage=...,
    task_runner=...)`. `task_runner` says where submitted and mapped tasks run: ThreadTaskRunner()
    (the default), DaskTaskRunner() or RayTaskRunner() (orchestrator.task_runners)."""
    return decorate(Flow, fn, options)
