"""Fixtures for tests against a real Docker daemon (marked `docker`).

Without a reachable daemon those tests skip, which fails them under CI=true (tests/conftest.py).
The image they run flows in is built once per source tree by tests/support/images.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from workpools.infrastructure.docker import POOL_LABEL


@pytest.fixture(scope="session")
def docker_client() -> Any:
    import docker
    import docker.errors

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        pytest.skip(f"needs a Docker daemon (dockerd --bridge=none --iptables=false): {error}")
    return client


@pytest.fixture(scope="session")
def docker_image(docker_client: Any) -> str:
    """The tag of an image with python3 and this checkout installed (/opt/venv on PATH)."""
    from tests.support.images import build_test_image

    return build_test_image(client=docker_client)


@pytest.fixture
def docker_pool_name(docker_client: Any) -> Any:
    """A pool name of its own for the test; afterwards no container of that pool may be left
    (the test fails if one is, after removing it)."""
    name = f"docker-{uuid.uuid4().hex[:8]}"
    yield name
    left = docker_client.containers.list(all=True, sparse=True, filters={"label": f"{POOL_LABEL}={name}"})
    for container in left:
        container.remove(force=True)
    assert not left, f"containers left behind: {[c.id[:12] for c in left]}"
