"""A kubernetes pool end to end: the worker's loop sends the run's Job to the fake API server,
whose kubelet runs the pod's container on the real Docker daemon from the project's own image;
the engine inside reaches the live orchestrator over HTTP with the run's token. Only the
cluster's control plane is faked."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from orchestrator.core.states import StateType
from orchestrator.direct import DirectClient
from runs.models import FlowRun, Log
from tests.conftest import wait_for
from tests.workpools.fake_kubernetes import FakeKubernetes
from workpools import worker as worker_module
from workpools.infrastructure.kubernetes import KubernetesInfrastructure

pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]
LABELS = {"org.orchestrator.test": "kubernetes-kubelet"}
WorkerLoop: Any = getattr(worker_module, "WorkerLoop", None) or worker_module.WorkerLoop  # renamed on main


@pytest.fixture
def cluster(docker_client: Any) -> Iterator[FakeKubernetes]:
    fake = FakeKubernetes().start()
    fake.run_pods_in_docker(docker_client, LABELS)
    yield fake
    fake.stop()
    selector = {"label": "org.orchestrator.test=kubernetes-kubelet"}
    try:  # the kubelet removes each pod's container once it has ended
        wait_for(
            lambda: not docker_client.containers.list(all=True, filters=selector),
            60,
            "the kubelet to remove the pods' containers",
        )
    finally:
        for container in docker_client.containers.list(all=True, filters=selector):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)


@pytest.fixture
def k8s_pool(make_pool: Any, project_image: str, live_server: Any) -> Any:
    return make_pool(
        "k8s-e2e",
        type="kubernetes",
        job_variables={
            "image": project_image,
            "image_pull_policy": "Never",
            "api_url": live_server.url,
        },
    )


@pytest.fixture
def loop(k8s_pool: Any, cluster: FakeKubernetes, tmp_path: Path) -> Iterator[Any]:
    client = DirectClient()
    infrastructure = KubernetesInfrastructure(kubeconfig=str(cluster.write_kubeconfig(tmp_path / "kubeconfig")))
    worker_loop = WorkerLoop(
        client.register_worker(k8s_pool.name, name="k8s-worker"),
        client=client,
        out=io.StringIO(),
        infrastructure=infrastructure,
    )
    yield worker_loop
    infrastructure.close()


def run_to_the_end(loop: Any, run_id: str) -> FlowRun:
    assert loop.claim_and_start()

    def settled() -> bool:
        loop.reap_children()
        return not loop.children

    wait_for(settled, 240, "the Job's pod to run the flow and the worker to settle the run")
    return FlowRun.objects.get(pk=run_id)


def test_a_triggered_run_completes_in_a_job_and_logs_hello_leo(
    loop: Any,
    k8s_pool: Any,
    make_deployment: Any,
    operator: Any,
    cluster: FakeKubernetes,
) -> None:
    deployment = make_deployment(
        "hello-k8s",
        work_pool=k8s_pool,
        path="/app/examples",
        entrypoint="hello.py:leonardo_dicapriflow",
        parameters={"name": "Leo"},
    )
    created = operator.post(f"/api/deployments/{deployment.pk}/runs/", json={"parameters": {"name": "Leo"}})
    assert created.status_code == 201, created.text
    run = run_to_the_end(loop, created.json()["id"])

    assert run.state_type == StateType.COMPLETED, (run.state_message, loop.out.getvalue()[-3000:])
    assert Log.objects.filter(flow_run=run, message="Hello Leo!").exists()
    # The pod's output, followed by the worker and prefixed with the run's name.
    assert f"{run.name} | " in loop.out.getvalue() and "Hello Leo!" in loop.out.getvalue()
    (sent,) = cluster.created
    assert sent["metadata"]["labels"]["orchestrator.dev/flow-run-id"] == str(run.pk)


def test_a_flow_that_cannot_load_ends_failed_with_the_engines_message(
    loop: Any,
    k8s_pool: Any,
    make_deployment: Any,
    make_run: Any,
) -> None:
    deployment = make_deployment(
        "broken-k8s", work_pool=k8s_pool, path="/app/examples", entrypoint="hello.py:no_such_flow"
    )
    run = run_to_the_end(loop, str(make_run(deployment).pk))
    assert run.state_type == StateType.FAILED
    assert "has no function 'no_such_flow'" in run.state_message
