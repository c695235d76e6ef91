"""`RayTaskRunner`: a flow's submitted tasks on a Ray cluster (`pip install '.[ray]'`).

    @flow(task_runner=RayTaskRunner())                          # a local Ray started for the run
    @flow(task_runner=RayTaskRunner(address="ray://head:10001"))  # an existing cluster

Prefect users know it as `prefect_ray.RayTaskRunner`; the options have the same names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.sdk.task_runners.cluster import ClusterTaskRunner
from orchestrator.sdk.task_runners.remote import Envelope, RemoteCall, run_remote

if TYPE_CHECKING:
    from orchestrator.sdk.context import FlowRunContext

# A Ray task whose worker process died is run again (up to this often) by Ray; run_remote tells
# such a rerun apart and applies the task's own retries.
RAY_MAX_RETRIES = 3


class RayTaskRunner(ClusterTaskRunner):
    """Runs task runs on Ray: the cluster at `address` ("auto", "ray://head:10001", or the
    GCS address), or, without one, a local Ray instance started for the flow run and shut down
    after it (`init_kwargs` go to `ray.init`: num_cpus, object_store_memory, runtime_env, ...).
    A process already connected to Ray (`ray.init()` done before the flow) keeps using it, and
    it stays up. `remote_options` go to each task's `.options()` (num_cpus, resources, ...)."""

    name = "RayTaskRunner"

    def __init__(
        self,
        address: str | None = None,
        *,
        init_kwargs: dict[str, Any] | None = None,
        remote_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if address is not None and not (isinstance(address, str) and address.strip()):
            raise ValueError(
                f"RayTaskRunner: address must be a Ray address such as 'ray://head:10001', not {address!r}."
            )
        self.address = address
        self.init_kwargs = dict(init_kwargs or {})
        self.remote_options = dict(remote_options or {})
        self._owned = False
        self._remote: Any = None
        self._options: dict[str, Any] = {}

    def duplicate(self) -> RayTaskRunner:
        return RayTaskRunner(self.address, init_kwargs=self.init_kwargs, remote_options=self.remote_options)

    def _open(self, flow: FlowRunContext) -> None:
        try:
            import ray
        except ImportError as missing:
            raise RuntimeError("RayTaskRunner needs ray: pip install 'django-orchestrator[ray]'.") from missing
        if ray.is_initialized():
            flow.logger.info("Using the Ray cluster this process is connected to")
        else:
            options = {"include_dashboard": False, **self.init_kwargs}
            ray.init(address=self.address, **options)
            self._owned = True
            where = f"at {self.address}" if self.address else "started for this run"
            flow.logger.info("Using a Ray cluster %s (%s CPUs)", where, ray.cluster_resources().get("CPU", 0))
        self._remote = ray.remote(run_remote)
        self._options = {"max_retries": RAY_MAX_RETRIES, "retry_exceptions": False, **self.remote_options}

    def _submit_call(self, call: RemoteCall, upstream: list[Any], key: str) -> Any:
        # Ray resolves ObjectRefs among the positional arguments on the cluster.
        return self._remote.options(name=call.task_run.name, **self._options).remote(call, *upstream)

    def _when_done(self, ref: Any, settle: Callable[[Callable[[], Envelope]], None]) -> None:
        ref.future().add_done_callback(lambda done: settle(done.result))

    def _cancel(self, refs: list[Any]) -> None:
        import ray

        for ref in refs:
            try:
                ray.cancel(ref, force=False)  # a running task gets KeyboardInterrupt; a pending one never starts
            except Exception:
                pass

    def _close(self) -> None:
        if self._owned:
            import ray

            self._owned = False
            ray.shutdown()
