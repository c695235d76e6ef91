"""Run each flow run in its own Docker container (work pool type `docker`), through the Docker
Engine API (the `docker` package; DOCKER_HOST and friends pick the daemon, as for the CLI).

The container runs `python -m orchestrator.engine` with the run's id in ORCHESTRATOR_RUN_ID and
reaches the orchestrator over HTTP: ORCHESTRATOR_API_URL (the job variable `api_url`, else the
worker's own --api-url) and ORCHESTRATOR_API_KEY, a token that acts on this run only. It never
sees the worker's key or a database. Labels name the run, its deployment, flow, pool and worker,
so a worker restarted with the same name finds its containers again. The engine inside records
the run's final state; the worker crashes a run whose container ended with the run unfinished,
stops the container on cancel, and removes it once the final state is recorded.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from typing import Any

from orchestrator.client.base import ClaimedRun, HeldRun
from workpools.infrastructure.base import (
    Infrastructure,
    RunHandle,
    describe_exit,
    job_configuration,
    remote_run_environment,
)
from workpools.infrastructure.process import ENV_SCHEMA

log = logging.getLogger(__name__)

LABEL = "org.orchestrator"
RUN_LABEL = f"{LABEL}.flow-run-id"
WORKER_LABEL = f"{LABEL}.worker"
POOL_LABEL = f"{LABEL}.work-pool"
FLOW_LABEL = f"{LABEL}.flow-name"
DEPLOYMENT_LABEL = f"{LABEL}.deployment-id"
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
POLL_EVERY = 0.25  # seconds between looks at a running container's state

DEFAULT_TEMPLATE: dict[str, Any] = {
    "job_configuration": {
        "image": "{{ image }}",
        "image_pull_policy": "{{ image_pull_policy }}",
        "command": "{{ command }}",
        "env": "{{ env }}",
        "labels": "{{ labels }}",
        "volumes": "{{ volumes }}",
        "network_mode": "{{ network_mode }}",
        "working_dir": "{{ working_dir }}",
        "mem_limit": "{{ mem_limit }}",
        "cpus": "{{ cpus }}",
        "api_url": "{{ api_url }}",
        "stream_output": "{{ stream_output }}",
        "auto_remove": "{{ auto_remove }}",
    },
    "variables": {
        "type": "object",
        "properties": {
            "image": {
                "type": "string",
                "minLength": 1,
                "default": "orchestrator:latest",
                "title": "Image",
                "description": "The image the flow run's container starts from; it needs python and this project "
                "installed (python -m orchestrator.engine must work).",
            },
            "image_pull_policy": {
                "type": "string",
                "enum": PULL_POLICIES,
                "default": "IfNotPresent",
                "title": "Image pull policy",
                "description": "Always pull, pull only when the image is not on the Docker host, or never pull.",
            },
            "command": {
                "type": ["array", "null"],
                "items": {"type": "string"},
                "default": None,
                "title": "Command",
                "description": "Default: python -m orchestrator.engine RUN_ID.",
            },
            "env": ENV_SCHEMA,
            "labels": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "default": {},
                "title": "Labels",
                "description": "Extra container labels (the org.orchestrator.* ones are always set).",
            },
            "volumes": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[^:]+:[^:]+(:(ro|rw))?$"},
                "default": [],
                "title": "Volumes",
                "description": "Mounts as HOST_PATH_OR_VOLUME:CONTAINER_PATH[:ro|rw].",
            },
            "network_mode": {
                "type": "string",
                "default": "host",
                "title": "Network mode",
                "description": "host (the container reaches the orchestrator on the worker's loopback), bridge, "
                "none, or a network's name.",
            },
            "working_dir": {
                "type": ["string", "null"],
                "default": None,
                "title": "Working directory",
                "description": "Inside the container (default: the image's); the deployment's path, if any, is where "
                "the engine looks for the flow's code.",
            },
            "mem_limit": {
                "type": ["string", "null"],
                "pattern": "^[0-9]+[bkmg]?$",
                "default": None,
                "title": "Memory limit",
                "description": "For example 512m or 2g.",
            },
            "cpus": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "default": None,
                "title": "CPUs",
                "description": "How many CPUs the container may use (for example 0.5).",
            },
            "api_url": {
                "type": "string",
                "default": "",
                "title": "API URL",
                "description": "How the container reaches the orchestrator's API, e.g. http://127.0.0.1:8000/api/ "
                "(default: the worker's --api-url).",
            },
            "stream_output": {
                "type": "boolean",
                "default": True,
                "title": "Stream output",
                "description": "Print the container's output on the worker's console, prefixed with the run name.",
            },
            "auto_remove": {
                "type": "boolean",
                "default": True,
                "title": "Remove the container",
                "description": "Remove the container once the run's final state is recorded.",
            },
        },
    },
}


class DockerUnavailable(Exception):
    """The Docker daemon cannot be reached or refused the request (the message says which)."""


class ContainerRun(RunHandle):
    """One flow run's container. `poll()` looks at its state (at most every POLL_EVERY s)."""

    what = "container"

    def __init__(self, container: Any, *, run_id: str, run_name: str, remove: bool = True) -> None:
        self.container = container
        self.run_id = run_id
        self.run_name = run_name
        self.remove = remove
        self.started_at = time.monotonic()
        self.returncode: int | None = None
        self.oom_killed = False
        self._looked_at = 0.0
        state = (container.attrs or {}).get("State") or {}
        self.pid = state.get("Pid") or None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        now = time.monotonic()
        if now - self._looked_at < POLL_EVERY:
            return None
        self._looked_at = now
        import docker.errors

        try:
            self.container.reload()
        except docker.errors.NotFound:
            self.lost_reason = "was removed from the Docker host"
            self.returncode = -1
            return self.returncode
        except docker.errors.DockerException as error:
            log.warning("Could not look at the container of flow run %s: %s", self.run_name, error)
            return None
        state = self.container.attrs.get("State") or {}
        self.pid = self.pid or state.get("Pid") or None
        if state.get("Status") in ("exited", "dead"):
            self.oom_killed = bool(state.get("OOMKilled"))
            self.returncode = int(state.get("ExitCode", -1))
        return self.returncode

    def _signal(self, sig: str) -> None:
        import docker.errors

        try:
            self.container.kill(signal=sig)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:  # 409: not running any more
            log.debug("Could not send %s to the container of %s: %s", sig, self.run_name, error)

    def terminate(self, *, reason: str) -> None:
        if self.term_sent_at is None:
            self.stopped_by = reason
            self.term_sent_at = time.monotonic()
            self._signal("SIGTERM")

    def kill(self) -> None:
        self.kill_sent = True
        self._signal("SIGKILL")

    def release(self) -> None:
        if not self.remove:
            return
        import docker.errors

        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass

    def describe_exit(self, code: int) -> str:
        if self.lost_reason:
            return self.lost_reason
        if self.oom_killed:
            return f"was killed for using more memory than its limit (OOMKilled, exit code {code})"
        if code > 128:
            try:
                return f"exited with code {code} (killed by {signal.Signals(code - 128).name})"
            except ValueError:
                pass
        return describe_exit(code)


class DockerInfrastructure(Infrastructure):
    type = "docker"
    default_base_job_template = DEFAULT_TEMPLATE
    runs_remotely = True
    what = "container"

    def __init__(self, *, prewarm: bool = False, client: Any = None) -> None:
        self._client = client

    def client(self) -> Any:
        if self._client is None:
            import docker
            import docker.errors

            try:
                self._client = docker.from_env()
                self._client.ping()
            except docker.errors.DockerException as error:
                self._client = None
                raise DockerUnavailable(f"Cannot reach the Docker daemon: {error}") from error
        return self._client

    # --- starting -----------------------------------------------------------------------------

    def labels(self, run: ClaimedRun, extra: dict[str, str] | None = None) -> dict[str, str]:
        deployment = run.deployment
        flow_name, _, deployment_name = (deployment.full_name if deployment else "").partition("/")
        labels = {str(k): str(v) for k, v in (extra or {}).items()}
        labels.update(
            {
                RUN_LABEL: run.id,
                f"{LABEL}.flow-run-name": run.name,
                DEPLOYMENT_LABEL: deployment.id if deployment else "",
                f"{LABEL}.deployment-name": deployment_name,
                FLOW_LABEL: flow_name,
                WORKER_LABEL: self.worker.name if self.worker else "",
                POOL_LABEL: self.worker.pool_name if self.worker else "",
            }
        )
        return labels

    def environment(
        self, run: ClaimedRun, config: dict[str, Any], credentials: dict[str, str] | None
    ) -> dict[str, str]:
        return remote_run_environment(run, config, credentials, transport_env=self.transport_env, pool_type="docker")

    def ensure_image(self, image: str, policy: str) -> None:
        import docker.errors

        client = self.client()
        present = True
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            present = False
        if policy == "Never" or (policy == "IfNotPresent" and present):
            if not present:
                raise ValueError(f"Image {image!r} is not on the Docker host and its pull policy is Never.")
            return
        try:
            client.images.pull(image)
        except docker.errors.DockerException as error:
            raise ValueError(f"Could not pull image {image!r} (pull policy {policy}): {error}") from error

    def start(self, run: ClaimedRun, *, on_output: Any, credentials: dict[str, str] | None = None) -> ContainerRun:
        config = job_configuration(run)
        image = config.get("image") or DEFAULT_TEMPLATE["variables"]["properties"]["image"]["default"]
        env = self.environment(run, config, credentials)
        self.ensure_image(image, config.get("image_pull_policy") or "IfNotPresent")
        options: dict[str, Any] = {
            "command": config.get("command") or ["python", "-m", "orchestrator.engine", run.id],
            "environment": env,
            "labels": self.labels(run, config.get("labels")),
            "name": "orchestrator-" + re.sub(r"[^a-zA-Z0-9_.-]", "-", run.name)[:60] + f"-{run.id[:8]}",
            "network_mode": config.get("network_mode") or "host",
            "volumes": list(config.get("volumes") or []),
            "init": True,  # PID 1 forwards the worker's SIGTERM to the engine
        }
        if config.get("working_dir"):
            options["working_dir"] = config["working_dir"]
        if config.get("mem_limit"):
            options["mem_limit"] = config["mem_limit"]
        if config.get("cpus"):
            options["nano_cpus"] = int(float(config["cpus"]) * 1e9)
        container = self.client().containers.create(image, **options)
        try:
            container.start()
            container.reload()
        except Exception:
            container.remove(force=True)  # created but not started (a command that is not there...)
            raise
        handle = ContainerRun(
            container, run_id=run.id, run_name=run.name, remove=config.get("auto_remove") is not False
        )
        if config.get("stream_output") is not False:
            self._stream(container, on_output)
        return handle

    def _stream(self, container: Any, on_output: Any, *, since: int | None = None) -> None:
        threading.Thread(target=_follow_logs, args=(container.id, on_output, since), daemon=True).start()

    # --- after a restart ----------------------------------------------------------------------

    def adopt(
        self, runs: list[HeldRun], *, hostname: str, worker_name: str, on_output_for: Any
    ) -> dict[str, RunHandle]:
        """The containers this worker (by name, in this pool) started for `runs`; its other
        containers, whose runs are settled, are removed."""
        import docker.errors

        pool = self.worker.pool_name if self.worker else ""
        client = self.client()
        summaries = client.containers.list(
            all=True, sparse=True, filters={"label": [f"{WORKER_LABEL}={worker_name}", f"{POOL_LABEL}={pool}"]}
        )
        held = {run.id: run for run in runs}
        found: dict[str, RunHandle] = {}
        for summary in summaries:
            run_id = (summary.attrs.get("Labels") or {}).get(RUN_LABEL, "")
            try:
                container = client.containers.get(summary.id)
                if run_id not in held:
                    container.remove(force=True)
                    continue
            except docker.errors.NotFound:
                continue
            handle = ContainerRun(container, run_id=run_id, run_name=held[run_id].name)
            handle.recorded = True
            found[run_id] = handle
            self._stream(container, on_output_for(held[run_id].name), since=int(time.time()))
        return found


def _follow_logs(container_id: str, on_output: Any, since: int | None) -> None:
    """Send the container's output, line by line, to `on_output` until it stops. A client of its
    own, without a read timeout: a flow may be silent for longer than any timeout."""
    import docker

    try:
        client = docker.from_env(timeout=None)  # type: ignore[arg-type]
        stream = client.api.logs(container_id, stream=True, follow=True, since=since)
        pending = b""
        for chunk in stream:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                on_output(line.decode("utf-8", "replace").rstrip("\r"))
        if pending:
            on_output(pending.decode("utf-8", "replace"))
    except Exception as error:  # the container went away: nothing more to show
        log.debug("Stopped following the output of container %s: %s", container_id[:12], error)
