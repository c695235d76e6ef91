"""RayTaskRunner on a real local Ray instance (2 CPUs, a small object store), started once for
the module; flow scripts reach it by address. The same flows and checks as on Dask."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.orchestrator.cluster_helpers import (
    BEHAVIOURS,
    MAP_200,
    ROUGH,
    cancel_mid_map,
    check_behaviours,
    check_map_200,
    check_rough,
    run_script,
    write_script,
)

pytestmark = [pytest.mark.ray, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, object_store_memory=100 * 1024 * 1024, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def runner(ray_address: str) -> str:
    return f"RayTaskRunner(address={ray_address!r})"


def test_a_flow_maps_a_task_over_200_inputs_on_ray(tmp_path: Path, subprocess_env: dict[str, str], runner: str) -> None:
    pids = check_map_200(tmp_path, run_script(write_script(tmp_path, MAP_200, runner=runner), subprocess_env))
    assert 1 <= len(pids) <= 4  # Ray's worker processes for 2 CPUs


def test_retries_the_cache_and_timeouts_behave_as_on_threads(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str
) -> None:
    check_behaviours(tmp_path, run_script(write_script(tmp_path, BEHAVIOURS, runner=runner), subprocess_env))


def test_cancelling_the_flow_run_mid_map_stops_the_rest_on_ray(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str
) -> None:
    import ray

    def ray_is_idle() -> bool:
        return ray.available_resources().get("CPU", 0) == 2

    cancel_mid_map(tmp_path, subprocess_env, runner, ray_is_idle)


def test_a_ray_worker_process_killed_mid_task_crashes_that_task_or_retries_it(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str
) -> None:
    check_rough(tmp_path, run_script(write_script(tmp_path, ROUGH, runner=runner), subprocess_env))
