"""The `kubernetes` pool type: one `batch/v1` Job per flow run, through the official client.

A run's Job is rendered from the pool's base job template (below: `job_manifest` with
`{{ name }}` placeholders, plus a few settings of the worker's own), then completed here with
what every Job of ours carries whatever the template says: its name (from the run's name and
id, so creating it twice is a 409, not a second Job), labels naming the run, deployment, flow and
worker (on the Job and its pod), the environment reaching the orchestrator (the run's own
token), `backoffLimit: 0` (the orchestrator retries runs, not Kubernetes) and
`restartPolicy: Never`. Every manifest is checked against the Kubernetes schemas
(kubernetes-validate) before it is sent; an invalid one fails the run with the field named.

Watching: a thread per run watches its pod's events. The pod must start within
`pod_watch_timeout_seconds`; an image that cannot be pulled, an eviction, an OOM kill, a pod
that vanished or never started end the run's handle with the reason in words (the worker
records CRASHED with it) and the Job is deleted. Otherwise the container's exit code is the
handle's. Cancelling deletes the Job with foreground propagation (its pod goes first). After a
restart, a worker finds its Jobs again by the worker label and adopts them by the run-id label.

The cluster is reached with in-cluster credentials when the worker runs in a pod, else with the
kubeconfig (`KUBECONFIG` or ~/.kube/config; `kubeconfig=`/`context=` options).
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from orchestrator.client.base import ClaimedRun, HeldRun
from workpools.infrastructure.base import (
    Infrastructure,
    RunHandle,
    job_configuration,
    remote_run_environment,
)

log = logging.getLogger(__name__)

LABEL_PREFIX = "orchestrator.dev/"
RUN_ID_LABEL = LABEL_PREFIX + "flow-run-id"
RUN_NAME_LABEL = LABEL_PREFIX + "flow-run-name"
DEPLOYMENT_LABEL = LABEL_PREFIX + "deployment-name"
FLOW_LABEL = LABEL_PREFIX + "flow-name"
WORKER_LABEL = LABEL_PREFIX + "worker-name"
POOL_LABEL = LABEL_PREFIX + "work-pool-name"
CONTAINER_NAME = "flow"
PULL_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
START_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}

DEFAULT_BASE_JOB_TEMPLATE: dict[str, Any] = {
    "job_configuration": {
        "namespace": "{{ namespace }}",
        "api_url": "{{ api_url }}",
        "env": "{{ env }}",
        "command": "{{ command }}",
        "stream_output": "{{ stream_output }}",
        "pod_watch_timeout_seconds": "{{ pod_watch_timeout_seconds }}",
        "job_manifest": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"namespace": "{{ namespace }}", "labels": "{{ labels }}"},
            "spec": {
                "backoffLimit": 0,
                "ttlSecondsAfterFinished": "{{ finished_job_ttl }}",
                "template": {
                    "metadata": {"labels": "{{ labels }}"},
                    "spec": {
                        "restartPolicy": "Never",
                        "serviceAccountName": "{{ service_account_name }}",
                        "containers": [
                            {
                                "name": CONTAINER_NAME,
                                "image": "{{ image }}",
                                "imagePullPolicy": "{{ image_pull_policy }}",
                                "resources": {
                                    "requests": {"cpu": "{{ cpu_request }}", "memory": "{{ memory_request }}"},
                                    "limits": {"cpu": "{{ cpu_limit }}", "memory": "{{ memory_limit }}"},
                                },
                            }
                        ],
                    },
                },
            },
        },
    },
    "variables": {
        "type": "object",
        "properties": {
            "image": {
                "type": "string",
                "default": "orchestrator:latest",
                "description": "The image of the flow run's container: this project's image (Dockerfile) "
                "or one with the project and the flow's dependencies installed.",
            },
            "image_pull_policy": {
                "type": "string",
                "enum": ["Always", "IfNotPresent", "Never"],
                "default": "IfNotPresent",
                "description": "When the node pulls the image.",
            },
            "namespace": {
                "type": "string",
                "default": "default",
                "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                "maxLength": 63,
                "description": "The namespace the Job is created in.",
            },
            "api_url": {
                "type": ["string", "null"],
                "default": None,
                "description": "The orchestrator's URL as pods reach it, e.g. https://orchestrator.example.com/ "
                "(none: the worker's own --api-url).",
            },
            "service_account_name": {
                "type": ["string", "null"],
                "default": None,
                "description": "The pod's service account (none: the namespace's default).",
            },
            "env": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "default": {},
                "description": "Environment variables of the flow run's container.",
            },
            "labels": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "default": {},
                "description": "Extra labels of the Job and its pod.",
            },
            "command": {
                "type": ["array", "null"],
                "items": {"type": "string"},
                "default": None,
                "description": "The container's command, given the run id as its last argument "
                "(default: python -m orchestrator.engine).",
            },
            "cpu_request": {"type": ["string", "null"], "default": None, "description": "e.g. 500m"},
            "cpu_limit": {"type": ["string", "null"], "default": None, "description": "e.g. 2"},
            "memory_request": {"type": ["string", "null"], "default": None, "description": "e.g. 256Mi"},
            "memory_limit": {"type": ["string", "null"], "default": None, "description": "e.g. 1Gi"},
            "finished_job_ttl": {
                "type": ["integer", "null"],
                "minimum": 0,
                "default": 3600,
                "description": "Seconds a finished Job (and its pod's logs) is kept "
                "(ttlSecondsAfterFinished); none: kept until deleted.",
            },
            "pod_watch_timeout_seconds": {
                "type": "integer",
                "minimum": 1,
                "default": 300,
                "description": "How long the pod may take to start (scheduling "
                "and image pull) before the run is crashed.",
            },
            "stream_output": {
                "type": "boolean",
                "default": True,
                "description": "Print the container's output on the worker's console.",
            },
        },
    },
}


class KubernetesJobError(RuntimeError):
    """A Job could not be made or sent; the message says what and why."""


# --- rendering -------------------------------------------------------------------------------


def label_value(text: str) -> str:
    """`text` as a valid label value: at most 63 of [A-Za-z0-9-_.], starting and ending with an
    alphanumeric character ("" stays "")."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return cleaned.strip("-_.")


def job_name(run_name: str, run_id: str) -> str:
    """A DNS-1123 name unique to the run: its readable name and the start of its id."""
    readable = re.sub(r"[^a-z0-9-]+", "-", run_name.lower()).strip("-")[:48].strip("-") or "flow-run"
    return f"{readable}-{str(run_id).replace('-', '')[:8]}"


def _prune(value: Any) -> Any:
    """Drop None values (unset optional variables) from dicts and lists, recursively."""
    if isinstance(value, dict):
        return {key: _prune(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_prune(item) for item in value if item is not None]
    return value


def build_job_manifest(
    configuration: dict[str, Any],
    *,
    run_id: str,
    run_name: str,
    deployment_name: str = "",
    flow_name: str = "",
    worker_name: str = "",
    pool_name: str = "",
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Job for one run from the rendered `configuration` (see DEFAULT_BASE_JOB_TEMPLATE),
    checked against the Kubernetes schemas. `environment` (the transport and the run's token)
    wins over the configuration's `env`. Raises KubernetesJobError naming the bad field."""
    manifest = _prune(copy.deepcopy(configuration.get("job_manifest") or {}))
    if manifest.get("kind") != "Job" or manifest.get("apiVersion") != "batch/v1":
        raise KubernetesJobError("job_manifest must be a batch/v1 Job.")
    namespace = configuration.get("namespace") or manifest.get("metadata", {}).get("namespace") or "default"
    labels = {
        RUN_ID_LABEL: label_value(str(run_id)),
        RUN_NAME_LABEL: label_value(run_name),
        DEPLOYMENT_LABEL: label_value(deployment_name),
        FLOW_LABEL: label_value(flow_name),
        WORKER_LABEL: label_value(worker_name),
        POOL_LABEL: label_value(pool_name),
    }
    labels = {key: value for key, value in labels.items() if value}
    metadata = manifest.setdefault("metadata", {})
    metadata.update(name=job_name(run_name, run_id), namespace=namespace)
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    spec = manifest.setdefault("spec", {})
    spec["backoffLimit"] = 0  # the orchestrator decides about retries, with the run's own policy
    template = spec.setdefault("template", {})
    template_metadata = template.setdefault("metadata", {})
    template_metadata["labels"] = {**(template_metadata.get("labels") or {}), **labels}
    pod_spec = template.setdefault("spec", {})
    pod_spec["restartPolicy"] = "Never"
    containers = pod_spec.get("containers") or []
    if not containers:
        raise KubernetesJobError("job_manifest has no container (spec.template.spec.containers).")
    container = containers[0]
    container.setdefault("name", CONTAINER_NAME)
    command = configuration.get("command") or ["python", "-m", "orchestrator.engine"]
    container["command"] = [*command, str(run_id)]
    env = {str(key): str(value) for key, value in (configuration.get("env") or {}).items()}
    env.update(environment or {})  # the orchestrator's URL and the run's token win
    declared = [item for item in container.get("env") or [] if item.get("name") not in env]
    container["env"] = declared + [{"name": key, "value": value} for key, value in sorted(env.items())]
    resources = container.get("resources")
    if isinstance(resources, dict):
        resources = {kind: amounts for kind, amounts in resources.items() if amounts}
        if resources:
            container["resources"] = resources
        else:
            container.pop("resources")
    validate_manifest(manifest)
    return manifest


def validate_manifest(manifest: dict[str, Any]) -> None:
    """KubernetesJobError unless `manifest` is valid against the Kubernetes schemas (strict:
    unknown fields are errors too). The schemas ship with kubernetes-validate: no network."""
    import kubernetes_validate  # type: ignore[import-untyped]

    try:
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path) or "the manifest"
        message = str(error.message).splitlines()[0]
        raise KubernetesJobError(f"Invalid Kubernetes Job at {where}: {message}") from None


# --- the cluster ---------------------------------------------------------------------------------


def api_client(*, kubeconfig: str | None = None, context: str | None = None) -> Any:
    """An ApiClient for the cluster: in-cluster credentials inside a pod, else the kubeconfig."""
    import os

    from kubernetes import client, config

    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except config.ConfigException as error:
        raise KubernetesJobError(f"No Kubernetes cluster configured: {error}") from None


def _api_error(error: Exception) -> str:
    status = getattr(error, "status", None)
    body = getattr(error, "body", None) or ""
    try:
        import json

        message = json.loads(body).get("message") or body
    except (ValueError, AttributeError):
        message = body or str(error)
    return f"{status}: {message}" if status else str(error)


class KubernetesJob(RunHandle):
    """One run's Job as the worker watches it: a thread follows its pod's events (and output)
    and `poll()` reads what it saw, so the worker's loop never waits on the cluster."""

    what = "Job"

    def __init__(
        self,
        *,
        api: Any,
        namespace: str,
        name: str,
        run_id: str,
        run_name: str,
        start_timeout: float,
        on_output: Callable[[str], Any] | None,
        recorded: bool = False,
    ) -> None:
        from kubernetes import client

        # Any: raw responses (_preload_content=False) and plain dicts go where models are typed.
        self.batch: Any = client.BatchV1Api(api)
        self.core: Any = client.CoreV1Api(api)
        self.namespace, self.name = namespace, name
        self.run_id, self.run_name = run_id, run_name
        self.on_output = on_output
        self.recorded = recorded
        self.start_deadline = time.monotonic() + start_timeout
        self.start_timeout = start_timeout
        self.started = False
        self.exit_code: int | None = None
        self.lost_reason = ""
        self.stopped_by = ""
        self.term_sent_at: float | None = None
        self.kill_sent = False
        self.last_status = "Pending"
        self.pod_name = ""
        self._done = threading.Event()
        self._logs_started = False
        self._watcher = threading.Thread(target=self._watch, name=f"k8s-watch-{name}", daemon=True)
        self._watcher.start()

    # --- what the worker calls ---------------------------------------------------------------

    def poll(self) -> int | None:
        if (
            self.exit_code is None
            and not self.started
            and not self.stopped_by
            and time.monotonic() > self.start_deadline
        ):
            self._lose(f"its pod did not start within {self.start_timeout:g} s (last seen: {self.last_status})")
        return self.exit_code

    def terminate(self, *, reason: str) -> None:
        if self.term_sent_at is None:
            self.stopped_by = reason
            self.term_sent_at = time.monotonic()
            self.delete()

    def kill(self) -> None:
        self.kill_sent = True
        self.delete(grace_period_seconds=0)

    def release(self) -> None:
        """The run's final state is recorded: stop watching. The Job stays for its
        ttlSecondsAfterFinished (its logs with it), unless it was deleted already."""
        self._done.set()

    # --- the cluster's side ------------------------------------------------------------------

    def delete(self, grace_period_seconds: int | None = None) -> None:
        """Delete the Job with foreground propagation: its pod goes first, then the Job."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        options = client.V1DeleteOptions(propagation_policy="Foreground", grace_period_seconds=grace_period_seconds)
        try:
            self.batch.delete_namespaced_job(self.name, self.namespace, body=options)
        except ApiException as error:
            if error.status != 404:
                raise KubernetesJobError(
                    f"Could not delete Job {self.namespace}/{self.name}: {_api_error(error)}"
                ) from None

    def _lose(self, reason: str, code: int = -1) -> None:
        if self.exit_code is not None:
            return
        self.lost_reason = f"was lost: {reason}" if code == -1 else reason
        self.exit_code = code
        self._done.set()
        try:
            self.delete()
        except KubernetesJobError:
            pass  # the reason above is what matters; the Job's TTL removes it otherwise

    def _end(self, code: int) -> None:
        if self.exit_code is None:
            self.exit_code = code
            self._done.set()

    def _watch(self) -> None:
        """List, then watch from the list's version (Kubernetes' own pattern): a pod that went
        while nobody watched (deleted before the first watch, or during a reconnect) is seen."""
        import json

        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        selector = f"job-name={self.name}"
        resource_version: str | None = None
        failures = 0
        while not self._done.is_set():
            try:
                if resource_version is None:
                    response = self.core.list_namespaced_pod(
                        self.namespace, label_selector=selector, _preload_content=False
                    )
                    listing = json.loads(response.data)
                    resource_version = str(listing.get("metadata", {}).get("resourceVersion") or "")
                    for pod in listing.get("items") or []:
                        self._observe("ADDED", pod)
                    if not listing.get("items") and (self.stopped_by or self.pod_name):
                        self._observe("DELETED", {})  # it had a pod (or we deleted it), and it is gone
                watcher = watch.Watch()
                for event in watcher.stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=selector,
                    resource_version=resource_version,
                    timeout_seconds=5,
                    deserialize=False,
                ):
                    pod = event.get("object") or event.get("raw_object") or {}
                    resource_version = pod.get("metadata", {}).get("resourceVersion") or resource_version
                    self._observe(event["type"], pod)
                    if self._done.is_set():
                        watcher.stop()
                        break
                failures = 0
            except ApiException as error:
                if error.status == 410:  # our version is too old: list again
                    resource_version = None
                    continue
                failures += 1
            except Exception:  # noqa: BLE001 (network trouble: retried with a backoff)
                failures += 1
            if failures:
                self._done.wait(min(0.5 * 2**failures, 10))

    def _observe(self, kind: str, pod: dict[str, Any]) -> None:
        """Turn one pod event into the handle's state."""
        self.pod_name = pod.get("metadata", {}).get("name", self.pod_name)
        if kind == "DELETED":
            if self.stopped_by:
                self._end(-1)  # the worker deleted it on purpose (cancel, shutdown)
            else:
                self._lose("its pod was deleted")
            return
        status = pod.get("status") or {}
        phase = status.get("phase") or "Pending"
        if status.get("reason") == "Evicted":
            self._lose(f"its pod was evicted: {status.get('message') or 'no reason given'}")
            return
        for container in status.get("containerStatuses") or []:
            if container.get("name") != CONTAINER_NAME and len(status["containerStatuses"]) > 1:
                continue
            state = container.get("state") or {}
            if state.get("waiting"):
                reason = state["waiting"].get("reason") or "Waiting"
                detail = state["waiting"].get("message") or ""
                self.last_status = f"Pending: {reason}" + (f" ({detail})" if detail else "")
                if reason in PULL_ERRORS:
                    self._lose(f"its image {container.get('image', '')!r} could not be pulled ({reason}: {detail})")
                elif reason in START_ERRORS:
                    self._lose(f"its container could not start ({reason}: {detail})")
            elif state.get("running"):
                self.started = True
                self.last_status = "Running"
                self._follow_output()
            elif state.get("terminated"):
                self.started = True
                terminated = state["terminated"]
                code = int(terminated.get("exitCode", -1))
                if terminated.get("reason") == "OOMKilled":
                    self._lose(
                        f"was OOM-killed: its container went over its memory limit (exit code {code})", code=code
                    )
                else:
                    self._follow_output()
                    self._end(code)
        if phase in ("Succeeded", "Failed") and self.exit_code is None and not status.get("containerStatuses"):
            self._end(0 if phase == "Succeeded" else 1)

    def _follow_output(self) -> None:
        if self._logs_started or self.on_output is None or not self.pod_name:
            return
        self._logs_started = True
        threading.Thread(target=self._pump_output, name=f"k8s-logs-{self.name}", daemon=True).start()

    def _pump_output(self) -> None:
        try:
            response = self.core.read_namespaced_pod_log(
                self.pod_name,
                self.namespace,
                container=CONTAINER_NAME,
                follow=True,
                _preload_content=False,
            )
            buffer = b""
            for chunk in response.stream(amt=None, decode_content=False):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if self.on_output is not None:
                        self.on_output(line.decode("utf-8", "replace"))
            if buffer and self.on_output is not None:
                self.on_output(buffer.decode("utf-8", "replace"))
        except Exception as error:  # noqa: BLE001 (output is best effort; the run's logs are in the orchestrator)
            log.debug("Stopped following the output of Job %s: %s", self.name, error)


# --- the pool type -----------------------------------------------------------------------------


class KubernetesInfrastructure(Infrastructure):
    """Runs each flow run as a Kubernetes Job (see the module's docstring)."""

    type: ClassVar[str] = "kubernetes"
    default_base_job_template: ClassVar[dict[str, Any]] = DEFAULT_BASE_JOB_TEMPLATE
    runs_remotely: ClassVar[bool] = True
    what: ClassVar[str] = "Job"

    def __init__(
        self, *, worker_name: str = "", kubeconfig: str | None = None, context: str | None = None, **options: Any
    ) -> None:
        self.worker_name = worker_name
        self.kubeconfig, self.context = kubeconfig, context
        self._api: Any = None
        self._handles: list[KubernetesJob] = []

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = api_client(kubeconfig=self.kubeconfig, context=self.context)
        return self._api

    def environment(
        self, run: ClaimedRun, config: dict[str, Any], credentials: dict[str, str] | None
    ) -> dict[str, str]:
        """The pod's variables (see base.remote_run_environment): HTTP and the run's own token."""
        return remote_run_environment(run, config, credentials, transport_env=self.transport_env, pool_type=self.type)

    def manifest_for(self, run: ClaimedRun, credentials: dict[str, str] | None = None) -> dict[str, Any]:
        """The Job for `run` (see build_job_manifest), with the worker's name on its labels."""
        deployment = run.deployment
        flow_name, _, deployment_name = (deployment.full_name if deployment else "").partition("/")
        config = job_configuration(run)
        return build_job_manifest(
            config,
            run_id=str(run.id),
            run_name=run.name,
            deployment_name=deployment_name,
            flow_name=flow_name,
            worker_name=self.worker.name if self.worker else self.worker_name,
            pool_name=self.worker.pool_name if self.worker else "",
            environment=self.environment(run, config, credentials),
        )

    def start(self, run: ClaimedRun, *, on_output: Any, credentials: dict[str, str] | None = None) -> RunHandle:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        configuration = job_configuration(run)
        manifest = self.manifest_for(run, credentials)
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            batch: Any = client.BatchV1Api(self.api)
            batch.create_namespaced_job(namespace, manifest)
        except ApiException as error:
            # 409: made already by this worker before a restart; watching it is what we want.
            if error.status != 409:
                raise KubernetesJobError(f"Could not create Job {namespace}/{name}: {_api_error(error)}") from None
        handle = KubernetesJob(
            api=self.api,
            namespace=namespace,
            name=name,
            run_id=str(run.id),
            run_name=run.name,
            start_timeout=float(configuration.get("pod_watch_timeout_seconds") or 300),
            on_output=on_output if configuration.get("stream_output", True) else None,
        )
        self._handles.append(handle)
        return handle

    def adopt(
        self, runs: list[HeldRun], *, hostname: str, worker_name: str, on_output_for: Callable[[str], Any]
    ) -> dict[str, RunHandle]:
        """The Jobs, in any namespace, labelled with the id of a run this worker held; a run
        without one is not returned (the worker crashes it)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        wanted = {label_value(str(run.id)): run for run in runs}
        if not wanted:
            return {}
        selector = f"{RUN_ID_LABEL} in ({','.join(sorted(wanted))})"
        try:
            batch: Any = client.BatchV1Api(self.api)
            jobs = batch.list_job_for_all_namespaces(label_selector=selector).items
        except ApiException as error:
            raise KubernetesJobError(f"Could not list the Jobs of this worker's runs: {_api_error(error)}") from None
        found: dict[str, RunHandle] = {}
        for job in jobs:
            run = wanted.get((job.metadata.labels or {}).get(RUN_ID_LABEL, ""))
            if run is None:
                continue
            found[run.id] = handle = KubernetesJob(
                api=self.api,
                namespace=job.metadata.namespace,
                name=job.metadata.name,
                run_id=str(run.id),
                run_name=run.name,
                start_timeout=300,
                on_output=on_output_for(run.name),
                recorded=True,
            )
            self._handles.append(handle)
        return found

    def close(self) -> None:
        """Stop watching (the Jobs go on: a worker restarted with the same name adopts them)."""
        for handle in self._handles:
            handle.release()
        self._handles.clear()
        if self._api is not None:
            self._api.close()
            self._api = None
