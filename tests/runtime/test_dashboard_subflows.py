"""The run page links a parent to its subflow runs (task list and Subflows card) and back."""

from __future__ import annotations

from typing import Any

import pytest

from deployments.services.subflows import create_subflow_run
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import set_state
from tests.html import element

pytestmark = pytest.mark.django_db
S = StateType


def test_the_parent_page_links_its_children_and_a_child_page_its_parent(admin_client: Any, run: FlowRun) -> None:
    set_state(run, S.PENDING)
    set_state(run, S.RUNNING)
    child = create_subflow_run(run, "child_flow", parameters={"n": 1})
    set_state(child, S.PENDING)
    set_state(child, S.RUNNING)
    set_state(child, S.FAILED, message="boom")

    page = admin_client.get(run.get_absolute_url()).content.decode()
    tasks = element(page, "section", 'id="run-task-runs"')
    assert f'href="/runs/{child.pk}/"' in tasks and "child_flow-0" in tasks and "subflow" in tasks
    children = element(page, "ul", 'id="child-runs"')
    assert child.name in children and "child_flow" in children and "Failed" in children

    child_page = admin_client.get(child.get_absolute_url()).content.decode()
    relations = element(child_page, "section", 'id="run-relations"')
    assert "Subflow of" in relations and f'href="/runs/{run.pk}/"' in relations and run.name in relations


def test_a_run_without_subflows_shows_no_subflows_card(admin_client: Any, run: FlowRun) -> None:
    page = admin_client.get(run.get_absolute_url()).content.decode()
    assert 'id="run-relations"' not in page
