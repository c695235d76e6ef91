"""`DaskTaskRunner`: a flow's submitted tasks on a Dask cluster (`pip install '.[dask]'`).

    @flow(task_runner=DaskTaskRunner())                        # a temporary LocalCluster per run
    @flow(task_runner=DaskTaskRunner(address="tcp://scheduler:8786"))   # an existing cluster

Prefect users know it as `prefect_dask.DaskTaskRunner`; the options have the same names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.sdk.task_runners.cluster import ClusterTaskRunner
from orchestrator.sdk.task_runners.remote import (
    Envelope,
    RemoteCall,
    run_remote,
    stop_flow_run,
)

if TYPE_CHECKING:
    from orchestrator.sdk.context import FlowRunContext


class DaskTaskRunner(ClusterTaskRunner):
    """Runs task runs on a Dask cluster: the scheduler at `address`, or, without one, a
    temporary `distributed.LocalCluster` started for the flow run and closed after it
    (`cluster_kwargs` go to LocalCluster: n_workers, threads_per_worker, processes, memory_limit,
    ...; workers are processes unless processes=False). `client_kwargs` go to
    `distributed.Client`. Task runs on the workers report their own states, logs and results."""

    name = "DaskTaskRunner"

    def __init__(
        self,
        address: str | None = None,
        *,
        cluster_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if address is not None and not (isinstance(address, str) and address.strip()):
            raise ValueError(
                f"DaskTaskRunner: address must be a scheduler address such as 'tcp://host:8786', not {address!r}."
            )
        if address and cluster_kwargs:
            raise ValueError("DaskTaskRunner: cluster_kwargs start a temporary cluster, so they go without an address.")
        self.address = address
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self._client: Any = None
        self._cluster: Any = None

    def duplicate(self) -> DaskTaskRunner:
        return DaskTaskRunner(self.address, cluster_kwargs=self.cluster_kwargs, client_kwargs=self.client_kwargs)

    def _open(self, flow: FlowRunContext) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as missing:
            raise RuntimeError(
                "DaskTaskRunner needs dask.distributed: pip install 'django-orchestrator[dask]'."
            ) from missing
        if self.address:
            self._client = Client(self.address, **{"timeout": 30, **self.client_kwargs})
            flow.logger.info("Using the Dask cluster at %s", self.address)
            return
        import dask

        options = {"processes": True, "dashboard_address": None, **self.cluster_kwargs}
        # The scheduler's and nannies' chatter (INFO) would drown the run's own lines.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        # The workers' statistical profiler wakes every 10 ms holding the GIL: each of a task
        # run's calls to the orchestrator then waits for it (measured: 4x slower task runs on
        # a busy machine). The nannies pass this configuration on to their workers.
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            self._cluster = LocalCluster(**options)
        self._client = Client(self._cluster, **self.client_kwargs)
        workers = len(self._cluster.workers)
        flow.logger.info(
            "Started a temporary local Dask cluster at %s (%d worker%s)",
            self._cluster.scheduler_address,
            workers,
            "" if workers == 1 else "s",
        )

    def _submit_call(self, call: RemoteCall, upstream: list[Any], key: str) -> Any:
        # Dask resolves futures among the positional arguments on the cluster; retries stay
        # ours (Dask's own rerun after a worker died is told apart in run_remote).
        return self._client.submit(run_remote, call, *upstream, key=key, pure=False)

    def _when_done(self, ref: Any, settle: Callable[[Callable[[], Envelope]], None]) -> None:
        ref.add_done_callback(lambda done: settle(done.result))

    def _cancel(self, refs: list[Any]) -> None:
        assert self._flow is not None
        self._client.cancel(refs, force=True)
        # Cancelling a Dask future does not stop a task already running on a worker thread.
        try:
            self._client.run(stop_flow_run, self._flow.run.id, "Cancelled with its flow run.")
        except Exception:
            pass

    def _close(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
