"""Artifacts from flows and tasks: stored, versioned by key, validated, listed in the API and
shown on the run page (markdown rendered safely, tables as tables)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import create_markdown_artifact, create_progress_artifact, flow, update_progress_artifact
from orchestrator.core.errors import ValidationError
from orchestrator.sdk.context import MissingContextError
from runs.models import Artifact, FlowRun
from runs.services import create_artifact, set_state
from tests.html import element

pytestmark = pytest.mark.django_db(transaction=True)


def test_keys_version_artifacts_and_progress_is_updated_in_place(api_as: Any) -> None:
    @flow
    def publish(n: int) -> str:
        create_markdown_artifact(f"version {n}", key="report")
        progress = create_progress_artifact(10)
        update_progress_artifact(progress, 55.5)
        return progress

    publish(1)
    progress_id = publish(2)
    assert Artifact.objects.get(pk=progress_id).data == 55.5
    reader = api_as("read")
    latest = reader.get("/api/artifacts/latest/", params={"key": "report"}).json()
    assert latest["data"] == "version 2" and latest["type"] == "markdown"
    listed = reader.get("/api/artifacts/", params={"key": "report"}).json()["results"]
    assert [a["data"] for a in listed] == ["version 2", "version 1"]
    assert reader.get("/api/artifacts/latest/", params={"key": "nope"}).status_code == 404
    assert reader.get("/api/artifacts/latest/").status_code == 400
    with pytest.raises(MissingContextError):
        create_markdown_artifact("outside any run")


def test_bad_artifacts_are_refused_with_field_errors(run: FlowRun, api_as: Any, pool: Any, make_pool: Any) -> None:
    cases = [
        ({"type": "markdown", "data": 3}, "data"),
        ({"type": "table", "data": "not a table"}, "data"),
        ({"type": "table", "data": {"a": [1, 2], "b": [1]}}, "data"),
        ({"type": "link", "data": {"url": "javascript:alert(1)"}}, "data"),
        ({"type": "progress", "data": 101}, "data"),
        ({"type": "markdown", "data": "x", "key": "Not A Key"}, "key"),
        ({"type": "chart", "data": "x"}, "type"),
    ]
    writer = api_as("write")
    for body, field in cases:
        answer = writer.post("/api/artifacts/", json={"flow_run": str(run.pk), **body})
        assert answer.status_code == 400 and field in answer.json()["errors"], (body, answer.text)
    with pytest.raises(ValidationError):
        create_artifact(run, type="progress", data=float("nan"))
    # A worker key acts only on runs of its own pool.
    stranger = api_as("worker", make_pool("elsewhere"))
    refused = stranger.post("/api/artifacts/", json={"flow_run": str(run.pk), "type": "markdown", "data": "hi"})
    assert refused.status_code == 403
    own = api_as("worker", pool).post(
        "/api/artifacts/", json={"flow_run": str(run.pk), "type": "markdown", "data": "hi"}
    )
    assert own.status_code == 201
    progress = create_artifact(run, type="progress", data=1)
    markdown = Artifact.objects.get(pk=own.json()["id"])
    assert api_as("worker", pool).patch(f"/api/artifacts/{progress.pk}/", json={"data": 70}).json()["data"] == 70
    assert writer.patch(f"/api/artifacts/{markdown.pk}/", json={"data": "x"}).status_code == 400
    assert not Artifact.objects.filter(data="x").exists()


def test_the_run_page_renders_markdown_safely_tables_links_and_progress(admin_client: Any, run: FlowRun) -> None:
    set_state(run, "PENDING")
    set_state(run, "RUNNING")
    create_artifact(run, type="markdown", key="report", data="# Title\n\n<script>alert('x')</script> **bold**")
    create_artifact(run, type="table", key="rain", data={"city": ["Paris", "Oslo"], "mm": [3, None]})
    create_artifact(run, type="link", data={"url": "https://example.com/x?a=1&b=2", "text": "<b>Dash</b>"})
    create_artifact(run, type="progress", data=42.5)
    page = admin_client.get(run.get_absolute_url()).content.decode()
    card = element(page, "section", 'id="run-artifacts"')
    assert "<h1>Title</h1>" in card and "<strong>bold</strong>" in card
    assert "<script>" not in card and "&lt;script&gt;alert('x')&lt;/script&gt;" in card
    table = element(card, "table", 'class="artifact-table"')
    assert '<th scope="col">city</th>' in table and "<td>Oslo</td>" in table
    assert 'href="https://example.com/x?a=1&amp;b=2"' in card and "&lt;b&gt;Dash&lt;/b&gt;" in card
    assert 'value="42.5"' in card
