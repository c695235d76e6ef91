"""Flow code pulled from an fsspec folder (a file:// URL here) by a real worker, cached by
content hash; the deploy refuses a storage URL fsspec cannot read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployments.models import Deployment
from deployments.services import create_flow_run
from orchestrator.core.states import StateType
from orchestrator.engine.steps import storage_cache_dir
from tests.deployments.deploy_helpers import HELLO, logged, manage, start_worker, stop, wait_until_finished

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)

SPEC = """\
pull:
  - pull_from_remote_storage:
      url: {url}
deployments:
  - name: from-storage
    entrypoint: flows/hello.py:leonardo_dicapriflow
    parameters: {{name: Leo}}
    work_pool: {{name: my-process-pool}}
"""


def test_code_pulled_from_a_storage_folder_runs_and_a_change_is_a_new_cached_copy(
    subprocess_env: dict[str, str], tmp_path: Path, pool: Any
) -> None:
    storage = tmp_path / "bucket" / "flows-v1"
    (storage / "flows").mkdir(parents=True)
    (storage / "flows" / "hello.py").write_text(HELLO)
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows" / "hello.py").write_text(HELLO)
    (project / "deployments.yaml").write_text(SPEC.format(url=storage.as_uri()))
    deployed = manage(subprocess_env, project, "deploy", "--all")
    assert deployed.returncode == 0, deployed.stderr
    deployment = Deployment.objects.get(name="from-storage")
    assert deployment.path == "" and deployment.pull_steps == [{"pull_from_remote_storage": {"url": storage.as_uri()}}]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    worker, output = start_worker(subprocess_env, pool.name, cwd=elsewhere)
    try:
        first, _ = create_flow_run(deployment)
        wait_until_finished(first)
        assert first.state_type == S.COMPLETED, (first.state_message, "".join(output))
        assert logged(first, "Hello Leo!")
        second, _ = create_flow_run(deployment)
        wait_until_finished(second)
        (storage / "flows" / "hello.py").write_text(HELLO.replace('return "Hello"', 'return "Howdy"'))
        third, _ = create_flow_run(deployment)
        wait_until_finished(third)
    finally:
        stop(worker)
    assert second.state_type == third.state_type == S.COMPLETED, "".join(output)
    assert logged(third, "Howdy Leo!")
    cache = storage_cache_dir(storage.as_uri())  # this URL's copies (the data directory outlives the test)
    copies = [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(copies) == 2  # the first two runs shared one copy; the change made the second


def test_the_deploy_refuses_a_storage_url_fsspec_cannot_read(
    subprocess_env: dict[str, str], tmp_path: Path, pool: Any
) -> None:
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows" / "hello.py").write_text(HELLO)
    (project / "deployments.yaml").write_text(SPEC.format(url="nosuchproto://bucket/flows"))
    refused = manage(subprocess_env, project, "deploy", "--all")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "fsspec knows no nosuchproto:// storage" in refused.stderr
    assert not Deployment.objects.filter(name="from-storage").exists()
