"""The `kubernetes` pool type against a fake Kubernetes API server (tests/workpools/
fake_kubernetes.py): only the cluster is faked; the official `kubernetes` client library, its
kubeconfig loading, HTTP, watches and log streams are real, and every Job it sends is checked
against the real Kubernetes schemas (kubernetes-validate, offline)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.client.base import ClaimedRun, DeploymentInfo, HeldRun, WorkerInfo
from orchestrator.core.states import StateType
from orchestrator.direct import DirectClient
from runs.models import FlowRun
from runs.services import request_cancellation, set_state
from tests.conftest import wait_for
from tests.workpools.fake_kubernetes import FakeKubernetes
from workpools.infrastructure.kubernetes import (
    DEFAULT_BASE_JOB_TEMPLATE,
    RUN_ID_LABEL,
    KubernetesInfrastructure,
    KubernetesJob,
    KubernetesJobError,
    build_job_manifest,
    validate_manifest,
)
from workpools.infrastructure.templates import (
    merge_job_variables,
    render,
    template_defaults,
)
from workpools.worker import WorkerLoop

S = StateType
RUN_ID = "3f2b8c1e-0d4a-4b6f-9a57-1c2d3e4f5a6b"
API_URL = "http://orchestrator.example/"
# What the worker hands a run: a token for that run alone (and, from an HTTP worker, its URL).
CREDENTIALS = {"ORCHESTRATOR_API_KEY": "run-scoped-token", "ORCHESTRATOR_API_URL": API_URL}


@pytest.fixture
def cluster() -> Iterator[FakeKubernetes]:
    fake = FakeKubernetes().start()
    yield fake
    fake.stop()


@pytest.fixture
def kubeconfig(cluster: FakeKubernetes, tmp_path: Path) -> str:
    return str(cluster.write_kubeconfig(tmp_path / "kubeconfig"))


@pytest.fixture
def kube(kubeconfig: str) -> Iterator[KubernetesInfrastructure]:
    infrastructure = KubernetesInfrastructure(kubeconfig=kubeconfig)
    infrastructure.set_worker(
        WorkerInfo(
            id="w1",
            name="k8s-worker",
            pool_name="k8s-pool",
            pool_type="kubernetes",
            limit=None,
            queue_ids=None,
            heartbeat_seconds=10,
            run_heartbeat_seconds=5,
        )
    )
    # An HTTP worker's own transport: its key must never reach a pod.
    infrastructure.set_transport_env(
        {"ORCHESTRATOR_API_URL": API_URL, "ORCHESTRATOR_API_KEY": "worker-key", "RUN_HEARTBEAT_SECONDS": "5"}
    )
    yield infrastructure
    infrastructure.close()


def configuration(**variables: Any) -> dict[str, Any]:
    """The default template rendered with its defaults < `variables`, as the orchestrator does."""
    values = merge_job_variables([template_defaults(DEFAULT_BASE_JOB_TEMPLATE), variables])
    return render(DEFAULT_BASE_JOB_TEMPLATE["job_configuration"], values)


def claimed(run_id: str = RUN_ID, name: str = "certain-cormorant", **variables: Any) -> ClaimedRun:
    deployment = DeploymentInfo(
        id="d1",
        full_name="leonardo_dicapriflow/leonardo-deployment",
        entrypoint="hello.py:leonardo_dicapriflow",
        path="/app/examples",
    )
    return ClaimedRun(
        id=run_id,
        name=name,
        deployment=deployment,
        job_variables=variables,
        job_configuration=configuration(**variables),
    )


class Output:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


# --- rendering --------------------------------------------------------------------------------


def test_the_default_template_renders_a_valid_job_naming_the_run_everywhere(kube: KubernetesInfrastructure) -> None:
    run = claimed(
        image="registry.example/flows:1.2",
        namespace="flows",
        service_account_name="flow-runner",
        env={"MODE": "prod"},
        labels={"team": "data"},
        cpu_request="250m",
        memory_limit="512Mi",
    )
    job = kube.manifest_for(run, credentials=CREDENTIALS)

    validate_manifest(job)  # against the Kubernetes 1.x schemas, strict
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"]["name"] == "certain-cormorant-3f2b8c1e"
    assert job["metadata"]["namespace"] == "flows"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    pod = job["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["serviceAccountName"] == "flow-runner"
    for labels in (job["metadata"]["labels"], pod["metadata"]["labels"]):
        assert labels == {
            "team": "data",
            "orchestrator.dev/work-pool-name": "k8s-pool",
            "orchestrator.dev/flow-run-id": RUN_ID,
            "orchestrator.dev/flow-run-name": "certain-cormorant",
            "orchestrator.dev/deployment-name": "leonardo-deployment",
            "orchestrator.dev/flow-name": "leonardo_dicapriflow",
            "orchestrator.dev/worker-name": "k8s-worker",
        }
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "registry.example/flows:1.2"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["python", "-m", "orchestrator.engine", RUN_ID]
    env = {item["name"]: item["value"] for item in container["env"]}
    # The run's own token replaces the worker's key: the pod can act on this run only.
    assert env == {
        "MODE": "prod",
        "ORCHESTRATOR_API_URL": API_URL,
        "ORCHESTRATOR_API_KEY": "run-scoped-token",
        "ORCHESTRATOR_RUN_ID": RUN_ID,
        "PYTHONUNBUFFERED": "1",
        "RUN_HEARTBEAT_SECONDS": "5",
        "DJANGO_SETTINGS_MODULE": "orchestrator.settings",
    }
    assert container["resources"] == {"requests": {"cpu": "250m"}, "limits": {"memory": "512Mi"}}


def test_unset_optional_variables_leave_no_empty_fields(kube: KubernetesInfrastructure) -> None:
    job = kube.manifest_for(claimed(finished_job_ttl=None), credentials=CREDENTIALS)
    pod_spec = job["spec"]["template"]["spec"]
    assert "serviceAccountName" not in pod_spec
    assert "resources" not in pod_spec["containers"][0]
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert job["metadata"]["namespace"] == "default"


def test_a_job_needs_the_orchestrators_url_and_a_run_token(kube: KubernetesInfrastructure) -> None:
    with pytest.raises(ValueError, match="set the pool's job variable api_url"):
        kube.manifest_for(claimed(), credentials={"ORCHESTRATOR_API_KEY": "run-scoped-token"})
    with pytest.raises(ValueError, match="No run token"):
        kube.manifest_for(claimed(api_url=API_URL), credentials=None)
    job = kube.manifest_for(
        claimed(api_url="https://orchestrator.internal/"), credentials={"ORCHESTRATOR_API_KEY": "t"}
    )
    env = {item["name"]: item["value"] for item in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ORCHESTRATOR_API_URL"] == "https://orchestrator.internal/"


def test_a_template_that_makes_an_invalid_job_is_refused_naming_the_field() -> None:
    config = configuration()
    config["job_manifest"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"  # a typo
    with pytest.raises(KubernetesJobError, match=r"containers\.0.*'imagePullPolcy' was unexpected"):
        build_job_manifest(config, run_id=RUN_ID, run_name="x")
    config = configuration()
    config["job_manifest"]["spec"]["activeDeadlineSeconds"] = "one hour"
    with pytest.raises(KubernetesJobError, match=r"spec\.activeDeadlineSeconds.*'one hour' is not of type"):
        build_job_manifest(config, run_id=RUN_ID, run_name="x")


# --- a Job's life on the cluster ---------------------------------------------------------------


def start(kube: KubernetesInfrastructure, run: ClaimedRun | None = None) -> tuple[KubernetesJob, Output]:
    output = Output()
    handle = kube.start(run or claimed(), on_output=output, credentials=CREDENTIALS)
    assert isinstance(handle, KubernetesJob)
    return handle, output


@pytest.mark.parametrize("exit_code", [0, 3])
def test_a_run_is_one_job_whose_container_exit_code_is_the_runs(
    cluster: FakeKubernetes,
    kube: KubernetesInfrastructure,
    exit_code: int,
) -> None:
    handle, output = start(kube)
    (sent,) = cluster.created
    validate_manifest(sent)  # what reached the API server, not just what we rendered
    assert sent["metadata"]["labels"][RUN_ID_LABEL] == RUN_ID
    assert handle.poll() is None
    cluster.running(handle.name)
    cluster.output(handle.name, "12:00:00 | INFO | Task run 'log_message-0' - Hello Leo!")
    wait_for(lambda: output.lines, 10, "the pod's output on the worker")
    assert handle.poll() is None
    cluster.exit(handle.name, exit_code)
    assert wait_for(lambda: handle.poll() is not None, 10, "the exit code") and handle.poll() == exit_code
    assert handle.lost_reason == ""
    assert output.lines == ["12:00:00 | INFO | Task run 'log_message-0' - Hello Leo!"]
    assert cluster.deletions == []  # a finished Job stays for its TTL, logs and all
    handle.release()


@pytest.mark.parametrize(
    ("happen", "reason"),
    [
        ("image_pull_error", 'could not be pulled (ErrImagePull: Failed to pull image "orchestrator:latest"'),
        ("evict", "its pod was evicted: The node was low on resource: memory"),
        ("oom_kill", "was OOM-killed: its container went over its memory limit (exit code 137)"),
        ("delete_pod", "was lost: its pod was deleted"),
    ],
)
def test_a_pod_that_cannot_run_ends_the_job_with_the_reason_in_words(
    cluster: FakeKubernetes,
    kube: KubernetesInfrastructure,
    happen: str,
    reason: str,
) -> None:
    handle, _ = start(kube)
    wait_for(lambda: handle.pod_name, 10, "the watch to see the Job's pod")
    if happen in ("oom_kill", "evict"):
        cluster.running(handle.name)
    getattr(cluster, happen)(handle.name)
    code = wait_for(lambda: handle.poll(), 10, "the Job to end")
    assert reason in handle.describe_exit(code)
    assert code == (137 if happen == "oom_kill" else -1)
    if happen != "delete_pod":
        # Kubernetes would retry the pull, or leave the failed pod: the Job is removed at once.
        wait_for(lambda: cluster.deletions, 10, "the Job's deletion")
        assert cluster.deletions == [{"name": handle.name, "namespace": "default", "propagationPolicy": "Foreground"}]


def test_a_pod_that_does_not_start_in_time_is_lost_with_its_last_status(
    cluster: FakeKubernetes,
    kube: KubernetesInfrastructure,
) -> None:
    handle, _ = start(kube, claimed(pod_watch_timeout_seconds=1))
    code = wait_for(lambda: handle.poll(), 10, "the start timeout")
    assert code == -1
    assert handle.describe_exit(code) == "was lost: its pod did not start within 1 s (last seen: Pending)"
    assert [d["propagationPolicy"] for d in cluster.deletions] == ["Foreground"]


def test_cancelling_deletes_the_job_with_foreground_propagation(
    cluster: FakeKubernetes,
    kube: KubernetesInfrastructure,
) -> None:
    handle, _ = start(kube)
    cluster.running(handle.name)
    handle.terminate(reason="cancel")
    code = wait_for(lambda: handle.poll(), 10, "the pod to go")
    assert code == -1 and handle.lost_reason == "" and handle.stopped_by == "cancel"
    assert cluster.deletions == [{"name": handle.name, "namespace": "default", "propagationPolicy": "Foreground"}]
    assert cluster.jobs == {} and cluster.pods == {}


def test_a_restarted_worker_adopts_its_jobs_by_the_run_id_label(
    cluster: FakeKubernetes,
    kube: KubernetesInfrastructure,
    kubeconfig: str,
) -> None:
    other_id = "9a9a9a9a-0000-4000-8000-000000000000"
    first, _ = start(kube, claimed(namespace="flows"))
    kube.close()  # the worker "dies": nothing of its watching is left
    # A worker restarted with the same name: a fresh client, its held runs from the orchestrator.
    restarted = KubernetesInfrastructure(kubeconfig=kubeconfig, worker_name="k8s-worker")
    held = [
        HeldRun(
            id=RUN_ID,
            name="certain-cormorant",
            state_type="RUNNING",
            state_name="Running",
            pid=None,
            hostname="old-host",
        ),
        HeldRun(
            id=other_id, name="gone-gazelle", state_type="RUNNING", state_name="Running", pid=None, hostname="old-host"
        ),
    ]
    outputs: dict[str, Output] = {}
    found = restarted.adopt(
        held,
        hostname="new-host",
        worker_name="k8s-worker",
        on_output_for=lambda name: outputs.setdefault(name, Output()),
    )
    assert set(found) == {RUN_ID}  # the other run's Job is gone: the worker crashes that run
    adopted = found[RUN_ID]
    assert isinstance(adopted, KubernetesJob) and (adopted.namespace, adopted.name) == ("flows", first.name)
    cluster.running(first.name, namespace="flows")
    cluster.output(first.name, "still here", namespace="flows")
    cluster.exit(first.name, 0, namespace="flows")
    assert wait_for(lambda: adopted.poll() is not None, 10, "the adopted Job to end") and adopted.poll() == 0
    wait_for(lambda: outputs.get("certain-cormorant") and outputs["certain-cormorant"].lines, 10, "output")
    restarted.close()


def test_an_unreachable_cluster_is_a_clear_error(tmp_path: Path) -> None:
    missing = KubernetesInfrastructure(kubeconfig=str(tmp_path / "no-such-kubeconfig"))
    with pytest.raises(KubernetesJobError, match="No Kubernetes cluster configured"):
        missing.start(claimed(), on_output=print, credentials=CREDENTIALS)


# --- through the worker's loop: the run's final state -----------------------------------------


@pytest.fixture
def k8s_loop(db: None, make_pool: Any, kubeconfig: str) -> Iterator[WorkerLoop]:
    make_pool("k8s-pool", type="kubernetes", job_variables={"image": "orchestrator:test", "api_url": API_URL})
    client = DirectClient()
    infrastructure = KubernetesInfrastructure(kubeconfig=kubeconfig)
    loop = WorkerLoop(
        client.register_worker("k8s-pool", name="k8s-worker"),
        client=client,
        out=io.StringIO(),
        infrastructure=infrastructure,
        kill_after=30,
    )
    yield loop
    infrastructure.close()


@pytest.fixture
def k8s_run(make_deployment: Any, make_run: Any) -> FlowRun:
    from workpools.models import WorkPool

    return make_run(make_deployment("on-k8s", work_pool=WorkPool.objects.get(name="k8s-pool")))


def claim(loop: WorkerLoop, run: FlowRun, cluster: FakeKubernetes) -> str:
    assert loop.claim_and_start()
    return str(cluster.only_job()["metadata"]["name"])


def settle(loop: WorkerLoop, run: FlowRun) -> FlowRun:
    def settled() -> bool:
        loop.handle_cancellations()
        loop.reap_children()
        return not loop.children

    wait_for(settled, 15, "the worker to settle the run")
    run.refresh_from_db()
    return run


def test_the_worker_sends_the_job_with_the_runs_own_token(
    k8s_loop: WorkerLoop,
    k8s_run: FlowRun,
    cluster: FakeKubernetes,
) -> None:
    from accounts.models import ApiKey

    claim(k8s_loop, k8s_run, cluster)
    (sent,) = cluster.created
    env = {item["name"]: item["value"] for item in sent["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert sent["spec"]["template"]["spec"]["containers"][0]["image"] == "orchestrator:test"
    assert sent["metadata"]["labels"]["orchestrator.dev/worker-name"] == "k8s-worker"
    # The run's own token, issued by the orchestrator for this run alone.
    token = ApiKey.objects.get(prefix=env["ORCHESTRATOR_API_KEY"][: len(ApiKey.objects.get(flow_run=k8s_run).prefix)])
    assert token.flow_run == k8s_run and token.scope == "run"
    assert env["ORCHESTRATOR_API_URL"] == API_URL and "DATABASE_URL" not in env
    k8s_run.refresh_from_db()
    assert k8s_run.state_type == S.PENDING


def test_a_job_that_exits_non_zero_with_its_run_unfinished_crashes_it(
    k8s_loop: WorkerLoop,
    k8s_run: FlowRun,
    cluster: FakeKubernetes,
) -> None:
    name = claim(k8s_loop, k8s_run, cluster)
    set_state(FlowRun.objects.get(pk=k8s_run.pk), S.RUNNING)  # as the engine in the pod would
    cluster.running(name)
    cluster.exit(name, 3)
    run = settle(k8s_loop, k8s_run)
    assert run.state_type == S.CRASHED
    assert run.state_message == "The flow run's Job exited with code 3 while the run was Running."


def test_an_image_that_cannot_be_pulled_crashes_the_run_with_the_reason(
    k8s_loop: WorkerLoop,
    k8s_run: FlowRun,
    cluster: FakeKubernetes,
) -> None:
    name = claim(k8s_loop, k8s_run, cluster)
    cluster.image_pull_error(name, reason="ImagePullBackOff")
    run = settle(k8s_loop, k8s_run)
    assert run.state_type == S.CRASHED
    assert 'could not be pulled (ImagePullBackOff: Failed to pull image "orchestrator:test"' in run.state_message
    assert cluster.jobs == {}


def test_cancelling_a_run_deletes_its_job_and_ends_it_cancelled(
    k8s_loop: WorkerLoop,
    k8s_run: FlowRun,
    cluster: FakeKubernetes,
) -> None:
    name = claim(k8s_loop, k8s_run, cluster)
    set_state(FlowRun.objects.get(pk=k8s_run.pk), S.RUNNING)
    cluster.running(name)
    request_cancellation(FlowRun.objects.get(pk=k8s_run.pk), by="a test")
    assert k8s_loop.handle_cancellations()
    run = settle(k8s_loop, k8s_run)
    assert run.state_type == S.CANCELLED
    assert cluster.deletions == [{"name": name, "namespace": "default", "propagationPolicy": "Foreground"}]


def test_a_kubernetes_pool_refuses_bad_job_variables_with_field_errors(db: None, make_pool: Any) -> None:
    from orchestrator.core.errors import ValidationError

    with pytest.raises(ValidationError) as refused:
        make_pool("k8s-bad", type="kubernetes", job_variables={"image_pull_policy": "Sometimes", "namespace": "Bad_NS"})
    assert set(refused.value.errors) == {"job_variables.image_pull_policy", "job_variables.namespace"}


def test_a_worker_restarted_with_the_same_name_adopts_its_jobs_and_crashes_runs_without_one(
    k8s_loop: WorkerLoop,
    k8s_run: FlowRun,
    make_run: Any,
    cluster: FakeKubernetes,
    kubeconfig: str,
) -> None:
    lost_run = make_run(k8s_run.deployment)
    assert k8s_loop.claim_and_start()
    jobs = wait_for(lambda: len(cluster.jobs) == 2 and dict(cluster.jobs), 10, "two Jobs")
    lost_job = next(
        name for (_, name), job in jobs.items() if job["metadata"]["labels"][RUN_ID_LABEL] == str(lost_run.pk)
    )
    kept_job = next(name for (_, name) in jobs if name != lost_job)
    for run in (k8s_run, lost_run):
        set_state(FlowRun.objects.get(pk=run.pk), S.RUNNING)
    k8s_loop.infrastructure.close()  # the worker dies; its Jobs go on
    cluster.delete_job("default", lost_job, {"propagationPolicy": "Background"})  # ...but one is gone meanwhile

    client = DirectClient()
    restarted = WorkerLoop(
        client.register_worker("k8s-pool", name="k8s-worker"),
        client=client,
        out=io.StringIO(),
        infrastructure=KubernetesInfrastructure(kubeconfig=kubeconfig),
    )
    restarted.reconcile()
    assert set(restarted.children) == {str(k8s_run.pk)}
    assert f"adopting flow run {k8s_run.name!r} (Job)" in restarted.out.getvalue()
    lost_run.refresh_from_db()
    assert lost_run.state_type == S.CRASHED
    assert lost_run.state_message == "The worker restarted and the flow run's Job was gone."

    set_state(FlowRun.objects.get(pk=k8s_run.pk), S.COMPLETED)  # as the engine in the pod would
    cluster.running(kept_job)
    cluster.exit(kept_job, 0)
    run = settle(restarted, k8s_run)
    assert run.state_type == S.COMPLETED
    restarted.infrastructure.close()
