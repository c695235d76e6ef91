"""Shared fixtures: personas and small factories.

In CI (CI=true) a test that would skip for a missing service fails instead, so a green run
means every real-service test ran.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from django.db import connection

from deployments.models import Deployment, Flow
from deployments.services import create_flow_run
from runs.models import FlowRun
from workpools.models import WorkPool, WorkQueue
from workpools.services import create_work_pool

pytest_plugins = ["tests.browser"]  # Chromium fixtures: browser, page, signed_in

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 30,
    what: str = "the condition",
    *,
    processes: Iterable[Any] = (),
    interval: float = 0.05,
) -> Any:
    """Poll `condition` until it returns something truthy, and return that. Fails naming `what`
    after `timeout` seconds, or as soon as one of `processes` (a Popen, or anything with `.proc`
    and `.output()`) has exited, with the end of its output. The one way tests wait: no fixed
    sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for process in processes:
            popen = getattr(process, "proc", process)
            if popen.poll() is not None:
                output = process.output()[-4000:] if hasattr(process, "output") else ""
                raise AssertionError(f"{getattr(popen, 'args', process)} exited while waiting for {what}\n{output}")
        if time.monotonic() >= deadline:
            outputs = "\n".join(f"--- {p}\n{p.output()[-4000:]}" for p in processes if hasattr(p, "output"))
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{outputs}".rstrip())
        time.sleep(interval)


# Tiers: `make test` runs everything; `make test-fast` leaves out every test with one of these.
SLOW_TIERS = ("live_server", "subprocess", "browser", "postgres", "celery", "docker", "dask", "ray", "slow")


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Mark tests by the real parts their fixtures start, so tiers need no hand-kept lists."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "live_server" in fixtures:
            item.add_marker(pytest.mark.live_server)
        if "subprocess_env" in fixtures:
            item.add_marker(pytest.mark.subprocess)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)  # fixtures read it at teardown (screenshots)
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"Skipped in CI, which must run every test: {report.longrepr}"


@pytest.fixture(autouse=True)
def _requires_postgres(request: Any) -> None:
    if request.node.get_closest_marker("postgres") is None:
        return
    # Only touch the connection settings, not the database, so this works before db setup.
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")


# --- Docker: the daemon and the project's image ------------------------------------------------


def docker_client_or_skip() -> Any:
    """A client of the local Docker daemon, or a skip (a failure under CI=true) naming why."""
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as error:  # noqa: BLE001 (any reason the daemon is unusable is a skip)
        pytest.skip(f"needs the Docker daemon (start it as .ci/run does): {type(error).__name__}: {error}")
    return client


@pytest.fixture(autouse=True)
def _requires_docker(request: Any) -> None:
    if request.node.get_closest_marker("docker") is not None:
        docker_client_or_skip()


@pytest.fixture(scope="session")
def docker_client() -> Any:
    return docker_client_or_skip()


@pytest.fixture(scope="session")
def project_image(docker_client: Any) -> str:
    """The project's own image (Dockerfile on the locally built Debian base, dependencies from
    the host's wheelhouse), built once per session and only when its build context changed
    since the last build on this machine (orchestrator/images.py)."""
    from orchestrator.images import ensure_project_image

    return ensure_project_image(log=lambda message: print(message, flush=True))


@pytest.fixture
def subprocess_env(db: None, tmp_path: Any) -> dict[str, str]:
    """Environment for a real subprocess (engine, worker, Celery) that must reach the test
    database. Use it from tests marked django_db(transaction=True): data made inside a test
    transaction is invisible to other processes."""
    from django.conf import settings

    db_settings = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{db_settings['NAME']}"
    else:
        password = f":{db_settings['PASSWORD']}" if db_settings.get("PASSWORD") else ""
        url = (
            f"postgres://{db_settings['USER']}{password}@{db_settings['HOST'] or '127.0.0.1'}:"
            f"{db_settings['PORT'] or 5432}/{db_settings['NAME']}"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DATABASE_URL=url,
        ORCHESTRATOR_HOME=str(settings.ORCHESTRATOR_HOME),
        DJANGO_SETTINGS_MODULE="orchestrator.settings",
        PYTHONUNBUFFERED="1",
    )
    return env


# --- personas ---------------------------------------------------------------------------------


@pytest.fixture
def admin_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("alice", "alice@example.com", "correct-horse-battery")


@pytest.fixture
def admin_client(client: Any, admin_user: Any) -> Any:
    client.force_login(admin_user)
    return client


# --- factories --------------------------------------------------------------------------------


@pytest.fixture
def make_pool(db: None):
    def make(name: str = "my-process-pool", **kwargs: Any) -> WorkPool:
        return create_work_pool(name, **kwargs)

    return make


@pytest.fixture
def pool(make_pool: Any) -> WorkPool:
    return make_pool()


@pytest.fixture
def make_deployment(db: None, pool: WorkPool):
    def make(
        name: str = "leonardo-deployment",
        *,
        flow: str = "leonardo_dicapriflow",
        work_pool: WorkPool | None = None,
        **kwargs: Any,
    ) -> Deployment:
        flow_obj, _ = Flow.objects.get_or_create(name=flow)
        kwargs.setdefault("entrypoint", "flows/hello.py:leonardo_dicapriflow")
        return Deployment.objects.create(flow=flow_obj, name=name, work_pool=work_pool or pool, **kwargs)

    return make


@pytest.fixture
def deployment(make_deployment: Any) -> Deployment:
    return make_deployment(parameters={"name": "Leo"}, tags=["tutorial", "test"])


@pytest.fixture
def make_run(deployment: Deployment):
    def make(dep: Deployment | None = None, **kwargs: Any) -> FlowRun:
        run, _ = create_flow_run(dep or deployment, **kwargs)
        return run

    return make


@pytest.fixture
def run(make_run: Any) -> FlowRun:
    return make_run()


@pytest.fixture
def default_queue(pool: WorkPool) -> WorkQueue:
    return pool.queues.get(name="default")


def db_vendor() -> str:
    return connection.vendor


# --- API personas: real HTTP against pytest-django's live server ---------------------------------


class Api:
    """A real HTTP client for the live server, as someone holding `key` (or nothing)."""

    def __init__(self, base_url: str, key: str | None = None) -> None:
        import requests

        self.base_url = base_url
        self.key = key
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def make_api_key(transactional_db: None):
    """make_api_key(scope, pool=None) -> the key itself (as `apikey create` prints it)."""
    from accounts.services import create_api_key

    made: list[str] = []

    def make(scope: str = "write", pool: WorkPool | None = None, name: str | None = None) -> str:
        _, token = create_api_key(name or f"{scope}-key-{len(made)}", scope=scope, pool=pool)
        made.append(token)
        return token

    return make


@pytest.fixture
def api_as(live_server: Any, make_api_key: Any):
    """api_as("read") -> an Api holding a fresh key of that scope."""

    def make(scope: str = "write", pool: WorkPool | None = None) -> Api:
        return Api(live_server.url, make_api_key(scope, pool))

    return make


@pytest.fixture
def writer(api_as: Any) -> Api:
    """An integrator whose key may change anything."""
    return api_as("write")


@pytest.fixture
def operator(api_as: Any) -> Api:
    """An operator holding a trigger-scoped key: reads everything, starts and cancels runs."""
    return api_as("trigger")


@pytest.fixture
def pool_worker(api_as: Any, pool: WorkPool) -> Api:
    """A remote worker's key, bound to `pool`."""
    return api_as("worker", pool)


@pytest.fixture
def anonymous(live_server: Any) -> Api:
    """A visitor with no key and no session."""
    return Api(live_server.url)
