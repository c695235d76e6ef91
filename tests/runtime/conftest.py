"""Flows of the run-time feature tests, as a project on disk that deployments point at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployments.models import Deployment, Flow
from workpools.models import WorkPool

RUNTIME_FLOWS = '''
import pydantic

from orchestrator import (
    Secret, Variable, create_link_artifact, create_markdown_artifact, create_progress_artifact, create_table_artifact,
    flow, get_flow_run_result, get_run_logger, suspend_flow_run, task, update_progress_artifact,
)


class Approval(pydantic.BaseModel):
    """Approve the shipment."""

    approved: bool
    reviewer: str
    items: int = 1


@flow
def approval(order: str = "A-1") -> str:
    logger = get_run_logger()
    logger.info(f"checking order {order}")
    answer = suspend_flow_run(wait_for_input=Approval, timeout=600)
    logger.info(f"got {type(answer).__name__}: approved={answer.approved} by {answer.reviewer} for {answer.items + 1 - 1} items")
    return answer.reviewer


@flow
def child_ok(n: int) -> int:
    return n * 10


@flow
def child_bad(reason: str) -> None:
    raise RuntimeError(reason)


@flow(persist_result=True)
def parent(n: int = 1) -> dict:
    ok = child_ok(n)
    state = child_bad("expected failure", return_state=True)
    try:
        child_bad("raised and caught")
        caught = ""
    except RuntimeError as error:
        caught = str(error)
    get_run_logger().info(f"children: ok={ok} bad={state.type} caught={caught}")
    return {"ok": ok, "bad": state.type, "caught": caught}


@task
def use_token(name: str) -> str:
    token = Secret.load(name).get()
    get_run_logger().info(f"calling the API with token={token}")
    return token[::-1]


@flow
def uses_blocks(secret: str = "api-token") -> None:
    logger = get_run_logger()
    logger.info(f"region={Variable.get('region', default='nowhere')} missing={Variable.get('nope', default=[1])}")
    reversed_token = use_token(secret)
    logger.info(f"reversed length {len(reversed_token)}; again: {reversed_token[::-1]}")


@task
def rain_table() -> None:
    create_table_artifact([{"city": "Paris", "rain_mm": 3}, {"city": "Oslo", "rain_mm": 11}], key="rain")


@flow
def reports() -> None:
    progress = create_progress_artifact(0, key="progress")
    create_markdown_artifact(
        "# Daily report\\n\\nAll **good**.\\n\\n<script>alert('x')</script>\\n\\n[bad](javascript:alert(1))",
        key="daily-report", description="The day in one page",
    )
    rain_table()
    create_link_artifact("https://example.com/dashboards/7", "The dashboard", key="dashboard")
    update_progress_artifact(progress, 100)


@flow
def reader(run_id: str) -> None:
    get_run_logger().info(f"read back: {get_flow_run_result(run_id)}")
'''


@pytest.fixture
def runtime_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows" / "runtime.py").write_text(RUNTIME_FLOWS)
    return project


@pytest.fixture
def deploy_runtime(runtime_project: Path):  # type: ignore[no-untyped-def]
    """deploy_runtime(pool, "parent") -> a deployment of flows/runtime.py:parent."""

    def deploy(pool: WorkPool, function: str, **kwargs: Any) -> Deployment:
        flow, _ = Flow.objects.get_or_create(name=function)
        return Deployment.objects.create(
            flow=flow,
            name=f"{function}-deployment",
            work_pool=pool,
            path=str(runtime_project),
            entrypoint=f"flows/runtime.py:{function}",
            **kwargs,
        )

    return deploy
