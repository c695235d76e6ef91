"""A fake Kubernetes API server, at the HTTP level, for the kubernetes pool type's tests.

No cluster can run on our machines, so this is the one faked part: the official `kubernetes`
client library talks to it over real HTTP, configured by a real kubeconfig file. It serves
only what the pool type uses:

    POST   /apis/batch/v1/namespaces/NS/jobs                  create a Job (409 if it exists)
    GET    /apis/batch/v1/namespaces/NS/jobs[/NAME]           list (labelSelector) / read
    GET    /apis/batch/v1/jobs                                list in every namespace
    DELETE /apis/batch/v1/namespaces/NS/jobs/NAME             delete (propagationPolicy kept)
    GET    /api/v1/namespaces/NS/pods[?watch=true]            list / watch (chunked events)
    GET    /api/v1/namespaces/NS/pods/NAME/log[?follow=true]  a pod's output

and plays a scriptable job controller and kubelet: creating a Job makes its pod (Pending);
the test then moves the pod on with `running()`, `output()`, `exit()`, `image_pull_error()`,
`evict()`, `oom_kill()`. Deleting a Job with foreground propagation deletes its pod first.
With `run_pods_in_docker(client)` the kubelet is real instead: each pod's container runs on the
local Docker daemon (host network), its output becomes the pod's log, its exit code the pod's
state, and deleting the Job kills it; an image the daemon lacks is an ErrImageNeverPull.
Every Job created is kept in `created` (the manifest as sent) for the tests to inspect.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "fake-cluster-token"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _matches(labels: dict[str, str], selector: str) -> bool:
    """Equality terms (`k=v`) and set terms (`k in (a,b)`), comma-separated, all must hold."""
    for term in re.findall(r"[^,(]+\([^)]*\)|[^,]+", selector or ""):
        if " in " in term:
            key, _, values = term.partition(" in ")
            if labels.get(key.strip()) not in {v.strip() for v in values.strip().strip("()").split(",")}:
                return False
            continue
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


class FakeKubernetes:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], list[str]] = {}
        self.events: list[tuple[int, str, dict[str, Any]]] = []  # (resourceVersion, type, pod)
        self.created: list[dict[str, Any]] = []
        self.deletions: list[dict[str, Any]] = []  # {"name", "namespace", "propagationPolicy"}
        self.requests: list[tuple[str, str]] = []
        self.docker: Any = None
        self.docker_labels: dict[str, str] = {}
        self.containers: dict[tuple[str, str], Any] = {}
        self.versions = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> FakeKubernetes:
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.lock:
            self.closed = True
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()

    closed = False

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
        }
        path.write_text(json.dumps(config))
        return path

    def run_pods_in_docker(self, client: Any, labels: dict[str, str]) -> None:
        """From now on, run each new pod's container on Docker (labelled `labels`)."""
        self.docker, self.docker_labels = client, labels

    def _kubelet(self, namespace: str, pod_name: str, job: str) -> None:
        import docker.errors  # type: ignore[import-untyped]

        with self.lock:
            spec = copy.deepcopy(self.pods[(namespace, pod_name)]["spec"]["containers"][0])
        try:
            self.docker.images.get(spec["image"])
        except docker.errors.ImageNotFound:
            self.image_pull_error(job, namespace, reason="ErrImageNeverPull")
            return
        env = {item["name"]: item["value"] for item in spec.get("env") or []}
        container = self.docker.containers.run(
            spec["image"],
            spec.get("args"),
            entrypoint=spec.get("command"),
            environment=env,
            network_mode="host",
            labels=self.docker_labels,
            detach=True,
        )
        with self.lock:
            self.containers[(namespace, pod_name)] = container
        self.running(job, namespace)
        partial = b""
        for chunk in container.logs(stream=True, follow=True):
            partial += chunk
            *lines, partial = partial.split(b"\n")
            if lines:
                self.output(job, *(line.decode("utf-8", "replace") for line in lines), namespace=namespace)
        code = int(container.wait()["StatusCode"])
        with self.lock:
            self.containers.pop((namespace, pod_name), None)
            alive = (namespace, pod_name) in self.pods
        if alive:
            self.exit(job, code, namespace=namespace)
        container.remove(force=True)

    # --- the cluster's side: what a test scripts ----------------------------------------------

    def pod_of(self, job: str, namespace: str = "default", timeout: float = 10) -> dict[str, Any]:
        """The pod of Job `job` (waiting up to `timeout` for the Job to be created)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for (ns, _), pod in self.pods.items():
                    if ns == namespace and pod["metadata"]["labels"].get("job-name") == job:
                        return pod
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no pod for Job {namespace}/{job}")
                self.lock.wait(remaining)

    def only_job(self, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.jobs) != 1:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected one Job, found {sorted(self.jobs)}")
                self.lock.wait(remaining)
            return next(iter(self.jobs.values()))

    def _set_pod(self, job: str, namespace: str, change: Any) -> None:
        pod = self.pod_of(job, namespace)
        with self.lock:
            change(pod)
            self._emit("MODIFIED", pod)

    def _container_status(self, pod: dict[str, Any], state: dict[str, Any], ready: bool = False) -> None:
        container = pod["spec"]["containers"][0]
        pod["status"]["containerStatuses"] = [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": ready,
                "restartCount": 0,
                "started": ready,
                "state": state,
            }
        ]

    def running(self, job: str, namespace: str = "default") -> None:
        def change(pod: dict[str, Any]) -> None:
            pod["status"]["phase"] = "Running"
            pod["status"]["startTime"] = _now()
            self._container_status(pod, {"running": {"startedAt": _now()}}, ready=True)

        self._set_pod(job, namespace, change)

    def output(self, job: str, *lines: str, namespace: str = "default") -> None:
        pod = self.pod_of(job, namespace)
        with self.lock:
            self.logs.setdefault((namespace, pod["metadata"]["name"]), []).extend(lines)
            self.lock.notify_all()

    def exit(self, job: str, code: int, *, reason: str = "", namespace: str = "default") -> None:
        def change(pod: dict[str, Any]) -> None:
            pod["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
            terminated = {
                "exitCode": code,
                "reason": reason or ("Completed" if code == 0 else "Error"),
                "startedAt": _now(),
                "finishedAt": _now(),
            }
            self._container_status(pod, {"terminated": terminated})

        self._set_pod(job, namespace, change)

    def oom_kill(self, job: str, namespace: str = "default") -> None:
        self.exit(job, 137, reason="OOMKilled", namespace=namespace)

    def image_pull_error(self, job: str, namespace: str = "default", reason: str = "ErrImagePull") -> None:
        def change(pod: dict[str, Any]) -> None:
            image = pod["spec"]["containers"][0]["image"]
            message = f'Failed to pull image "{image}": rpc error: code = NotFound desc = {image}: not found'
            self._container_status(pod, {"waiting": {"reason": reason, "message": message}})

        self._set_pod(job, namespace, change)

    def evict(self, job: str, namespace: str = "default") -> None:
        def change(pod: dict[str, Any]) -> None:
            pod["status"].update(
                phase="Failed",
                reason="Evicted",
                message="The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi.",
            )
            self._container_status(
                pod, {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": _now(), "finishedAt": _now()}}
            )

        self._set_pod(job, namespace, change)

    def delete_pod(self, job: str, namespace: str = "default") -> None:
        """The pod disappears (deleted by someone, or its node lost)."""
        pod = self.pod_of(job, namespace)
        with self.lock:
            self.pods.pop((namespace, pod["metadata"]["name"]), None)
            self._emit("DELETED", pod)

    # --- the API's side -------------------------------------------------------------------------

    def _emit(self, kind: str, pod: dict[str, Any]) -> None:
        version = next(self.versions)
        pod["metadata"]["resourceVersion"] = str(version)
        self.events.append((version, kind, copy.deepcopy(pod)))
        self.lock.notify_all()

    def create_job(self, namespace: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body.get("metadata", {}).get("name")
        with self.lock:
            if not name:
                return 422, _status(422, "Invalid", "Job.batch is invalid: metadata.name: Required value")
            if (namespace, name) in self.jobs:
                return 409, _status(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
            self.created.append(copy.deepcopy(body))
            job = copy.deepcopy(body)
            job_uid = str(uuid.uuid4())
            job["metadata"].update(
                namespace=namespace, uid=job_uid, creationTimestamp=_now(), resourceVersion=str(next(self.versions))
            )
            job["status"] = {"active": 1, "startTime": _now()}
            self.jobs[(namespace, name)] = job
            # The job controller: one pod from the template.
            template = copy.deepcopy(job["spec"]["template"])
            pod_name = f"{name}-{uuid.uuid4().hex[:5]}"
            labels = dict(template.get("metadata", {}).get("labels", {}))
            labels.update({"job-name": name, "batch.kubernetes.io/job-name": name, "controller-uid": job_uid})
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "labels": labels,
                    "creationTimestamp": _now(),
                },
                "spec": template["spec"],
                "status": {"phase": "Pending"},
            }
            self.pods[(namespace, pod_name)] = pod
            self._emit("ADDED", pod)
            if self.docker is not None:
                threading.Thread(target=self._kubelet, args=(namespace, pod_name, name), daemon=True).start()
            return 201, job

    def delete_job(self, namespace: str, name: str, options: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            job = self.jobs.pop((namespace, name), None)
            if job is None:
                return 404, _status(404, "NotFound", f'jobs.batch "{name}" not found')
            self.deletions.append(
                {"name": name, "namespace": namespace, "propagationPolicy": options.get("propagationPolicy")}
            )
            if options.get("propagationPolicy") in ("Foreground", "Background"):
                for key, pod in list(self.pods.items()):
                    if key[0] == namespace and pod["metadata"]["labels"].get("job-name") == name:
                        del self.pods[key]
                        if key in self.containers:  # the kubelet stops the pod's container
                            self.containers[key].kill()
                        self._emit("DELETED", pod)
            return 200, _status(200, "Success", "", kind="Status")

    def list_objects(
        self,
        store: dict[tuple[str, str], dict[str, Any]],
        namespace: str | None,
        selector: str,
        kind: str,
        api_version: str,
    ) -> dict[str, Any]:
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(store.items())
                if (namespace is None or ns == namespace) and _matches(obj["metadata"].get("labels", {}), selector)
            ]
            version = self.events[-1][0] if self.events else 0
            return {
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"resourceVersion": str(version)},
                "items": items,
            }


def _status(code: int, reason: str, message: str, kind: str = "Status") -> dict[str, Any]:
    return {
        "kind": kind,
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _handler_for(cluster: FakeKubernetes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _json(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}") if length else {}

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._json(401, _status(401, "Unauthorized", "Unauthorized"))
                return False
            return True

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            parts = [part for part in url.path.split("/") if part]
            cluster.requests.append((method, self.path))
            if not self._authorised():
                return
            # /apis/batch/v1/namespaces/NS/jobs[/NAME]  |  /apis/batch/v1/jobs
            if parts[:3] == ["apis", "batch", "v1"]:
                if parts[3:] == ["jobs"] and method == "GET":
                    return self._json(
                        200,
                        cluster.list_objects(cluster.jobs, None, query.get("labelSelector", ""), "JobList", "batch/v1"),
                    )
                if len(parts) >= 6 and parts[3] == "namespaces" and parts[5] == "jobs":
                    namespace = parts[4]
                    if len(parts) == 6 and method == "POST":
                        return self._json(*cluster.create_job(namespace, self._body()))
                    if len(parts) == 6 and method == "GET":
                        return self._json(
                            200,
                            cluster.list_objects(
                                cluster.jobs, namespace, query.get("labelSelector", ""), "JobList", "batch/v1"
                            ),
                        )
                    if len(parts) == 7 and method == "GET":
                        with cluster.lock:
                            job = copy.deepcopy(cluster.jobs.get((namespace, parts[6])))
                        if job is None:
                            return self._json(404, _status(404, "NotFound", f'jobs.batch "{parts[6]}" not found'))
                        return self._json(200, job)
                    if len(parts) == 7 and method == "DELETE":
                        return self._json(*cluster.delete_job(namespace, parts[6], self._body()))
            # /api/v1/namespaces/NS/pods[/NAME/log]
            if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5 and parts[4] == "pods":
                namespace = parts[3]
                if len(parts) == 5 and method == "GET":
                    if query.get("watch") in ("true", "1", "True"):
                        return self._watch_pods(namespace, query)
                    return self._json(
                        200,
                        cluster.list_objects(cluster.pods, namespace, query.get("labelSelector", ""), "PodList", "v1"),
                    )
                if len(parts) == 7 and parts[6] == "log" and method == "GET":
                    return self._pod_log(namespace, parts[5], query.get("follow") in ("true", "1", "True"))
            self._json(404, _status(404, "NotFound", f"the fake cluster does not serve {method} {url.path}"))

        def _start_chunked(self, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _watch_pods(self, namespace: str, query: dict[str, str]) -> None:
            selector = query.get("labelSelector", "")
            deadline = time.monotonic() + float(query.get("timeoutSeconds") or 30)
            since = int(query.get("resourceVersion") or 0)
            self._start_chunked("application/json")
            try:
                with cluster.lock:
                    if not since:  # a new watch starts with the current pods, as ADDED
                        for (ns, _), pod in sorted(cluster.pods.items()):
                            if ns == namespace and _matches(pod["metadata"]["labels"], selector):
                                self._chunk(json.dumps({"type": "ADDED", "object": pod}).encode() + b"\n")
                        since = len(cluster.events) and cluster.events[-1][0]
                    while not cluster.closed:
                        for version, kind, pod in cluster.events:
                            if (
                                version > since
                                and pod["metadata"]["namespace"] == namespace
                                and _matches(pod["metadata"]["labels"], selector)
                            ):
                                self._chunk(json.dumps({"type": kind, "object": pod}).encode() + b"\n")
                        since = cluster.events[-1][0] if cluster.events else since
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        cluster.lock.wait(min(remaining, 1.0))
                self._chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _pod_log(self, namespace: str, name: str, follow: bool) -> None:
            key = (namespace, name)
            with cluster.lock:
                if key not in cluster.pods:
                    return self._json(404, _status(404, "NotFound", f'pods "{name}" not found'))
            self._start_chunked("text/plain")
            sent = 0
            try:
                with cluster.lock:
                    while True:
                        lines = cluster.logs.get(key, [])
                        for line in lines[sent:]:
                            self._chunk(line.encode() + b"\n")
                        sent = len(lines)
                        pod = cluster.pods.get(key)
                        finished = pod is None or pod["status"].get("phase") in ("Succeeded", "Failed")
                        if not follow or finished or cluster.closed:
                            break
                        cluster.lock.wait(1.0)
                self._chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler
