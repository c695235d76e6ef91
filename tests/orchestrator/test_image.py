"""The production image (Dockerfile), for real: built on the locally made Debian base from the
host's wheelhouse, run by the local Docker daemon with host networking (no bridge here)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.core.states import StateType
from runs.models import Log
from tests.conftest import wait_for

pytestmark = pytest.mark.docker

TEST_LABEL = {"org.orchestrator.test": "image"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def containers(docker_client: Any) -> Iterator[list[Any]]:
    """Containers a test starts; all removed afterwards, whatever happened."""
    started: list[Any] = []
    yield started
    for container in started:
        container.remove(force=True)


def run_container(docker_client: Any, containers: list[Any], image: str, command: list[str], **kwargs: Any) -> Any:
    container = docker_client.containers.run(
        image,
        command,
        detach=True,
        network_mode="host",
        labels=TEST_LABEL,
        **kwargs,
    )
    containers.append(container)
    return container


def test_the_web_command_serves_the_dashboard_and_its_static_files(
    docker_client: Any,
    project_image: str,
    containers: list[Any],
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # the image's user (uid 10001) owns nothing on the host
    port = free_port()
    web = run_container(
        docker_client,
        containers,
        project_image,
        ["web"],
        environment={"PORT": str(port), "SECRET_KEY": "test-only"},
        volumes={str(data): {"bind": "/data", "mode": "rw"}},
    )
    base = f"http://127.0.0.1:{port}"

    def login_page() -> requests.Response | None:
        web.reload()
        assert web.status == "running", web.logs().decode()[-3000:]
        try:
            response = requests.get(f"{base}/accounts/login/", timeout=10)
        except (requests.ConnectionError, requests.Timeout):  # still starting (slow on a busy machine)
            return None
        return response

    page = wait_for(login_page, 180, "the container's web server to answer")
    assert page.status_code == 200
    assert 'name="password"' in page.text
    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', page.text)
    assert stylesheet, page.text
    css = requests.get(base + stylesheet.group(1), timeout=30)
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    # Migrations ran at start into the volume, as the image's user, not root.
    assert (data / "orchestrator.sqlite3").stat().st_uid == 10001
    assert web.exec_run(["id", "-u"]).output.decode().strip() == "10001"


def test_the_final_image_has_no_compiler(docker_client: Any, project_image: str) -> None:
    output = docker_client.containers.run(
        project_image,
        ["sh", "-c", "for c in gcc cc c++ make; do command -v $c; done; true"],
        remove=True,
        network_mode="host",
    )
    assert output.decode().strip() == ""


@pytest.mark.django_db(transaction=True)
def test_a_flow_run_executes_inside_the_image_against_the_orchestrator_over_http(
    docker_client: Any,
    project_image: str,
    containers: list[Any],
    live_server: Any,
    make_api_key: Any,
    make_deployment: Any,
    make_run: Any,
    pool: Any,
) -> None:
    # The image carries examples/; the engine runs the deployment from there.
    deployment = make_deployment(
        "in-image", path="/app/examples", entrypoint="hello.py:leonardo_dicapriflow", parameters={"name": "Leo"}
    )
    run = make_run(deployment)
    engine = run_container(
        docker_client,
        containers,
        project_image,
        ["flow-run", str(run.id)],
        environment={"ORCHESTRATOR_API_URL": live_server.url, "ORCHESTRATOR_API_KEY": make_api_key("worker", pool)},
    )
    exit_code = engine.wait(timeout=180)["StatusCode"]
    output = engine.logs().decode()
    assert exit_code == 0, output[-3000:]
    run.refresh_from_db()
    assert run.state_type == StateType.COMPLETED, output[-3000:]
    assert Log.objects.filter(flow_run=run, message__contains="Hello Leo!").exists()
    assert "Hello Leo!" in output


def test_the_compose_stack_is_a_valid_compose_file(tmp_path: Path) -> None:
    import yaml

    project = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "services", "worker-1", "worker-2"} <= set(services)
    entrypoint = (project / "docker-entrypoint.sh").read_text()
    for name in ("web", "services", "worker-1", "worker-2", "migrate"):
        command = services[name]["command"][0]
        # Each command is one the image's entrypoint knows, and the app services use the image.
        assert re.search(rf"^\s+{command}\)", entrypoint, re.MULTILINE), (name, command)
        assert services[name]["build"]["context"] == "."
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgres://")
    # The Compose implementation itself agrees (Debian's docker-compose; .ci/run installs it).
    if shutil.which("docker-compose") is None:
        pytest.skip("needs docker-compose (apt-get install docker-compose) to validate compose.yaml")
    result = subprocess.run(
        ["docker-compose", "--project-directory", str(project), "-f", str(project / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "SECRET_KEY": "x" * 50},
    )
    assert result.returncode == 0, result.stderr
    missing = subprocess.run(
        ["docker-compose", "-f", str(project / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert missing.returncode != 0 and "SECRET_KEY" in missing.stderr
