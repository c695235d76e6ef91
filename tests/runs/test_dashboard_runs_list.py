"""The flow runs list: filters, keyset pagination, consistent state badges, no N+1."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from orchestrator.core.states import StateType
from runs.models import FlowRun, RunCursor
from runs.services import set_state

pytestmark = pytest.mark.django_db
S = StateType


def names_listed(response: Any) -> list[str]:
    assert response.status_code == 200
    return re.findall(r'class="runname">([^<]+)</a>', response.content.decode())


def listed(client: Any, **params: Any) -> list[str]:
    return names_listed(client.get(reverse("runs:list"), params))


@pytest.fixture
def runs(make_run: Any, make_deployment: Any, make_pool: Any) -> dict[str, FlowRun]:
    now = timezone.now()
    other_pool = make_pool("gpu-pool")
    other = make_deployment("other", flow="train", work_pool=other_pool, tags=["ml"])
    made = {
        "new": make_run(name="new", scheduled_at=now - timedelta(minutes=1)),
        "failed": make_run(name="failed", scheduled_at=now - timedelta(hours=2)),
        "ml": make_run(other, name="ml", scheduled_at=now - timedelta(hours=3)),
        "tagged": make_run(name="tagged", tags=["urgent"], scheduled_at=now - timedelta(days=2)),
        "old": make_run(name="old", scheduled_at=now - timedelta(days=20)),
        "future": make_run(name="future", scheduled_at=now + timedelta(hours=5)),
    }
    set_state(made["failed"], S.PENDING)
    set_state(made["failed"], S.FAILED, message="ImportError")
    return made


def test_by_default_it_lists_the_last_7_days_newest_first(admin_client: Any, runs: dict) -> None:
    assert listed(admin_client) == ["new", "failed", "ml", "tagged"]


def test_it_filters_by_state(admin_client: Any, runs: dict) -> None:
    assert listed(admin_client, state="FAILED") == ["failed"]
    assert listed(admin_client, state=["FAILED", "SCHEDULED"]) == ["new", "failed", "ml", "tagged"]
    assert listed(admin_client, state="COMPLETED") == []


def test_it_filters_by_deployment_pool_and_tag(admin_client: Any, runs: dict) -> None:
    assert listed(admin_client, deployment=runs["ml"].deployment_id) == ["ml"]
    assert listed(admin_client, pool="gpu-pool") == ["ml"]
    assert listed(admin_client, tag="ml") == ["ml"]
    assert listed(admin_client, tag="urgent") == ["tagged"]
    assert listed(admin_client, tag="tutorial") == ["new", "failed", "tagged"]


def test_it_filters_by_time(admin_client: Any, runs: dict) -> None:
    now = timezone.now()
    assert listed(admin_client, window="1h") == ["new"]
    assert listed(admin_client, window="30d") == ["new", "failed", "ml", "tagged", "old"]
    assert listed(admin_client, window="all") == ["future", "new", "failed", "ml", "tagged", "old"]
    since = timezone.localtime(now - timedelta(days=25)).strftime("%Y-%m-%dT%H:%M")
    until = timezone.localtime(now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert listed(admin_client, since=since, until=until) == ["tagged", "old"]


def test_filters_combine(admin_client: Any, runs: dict) -> None:
    assert listed(admin_client, state="SCHEDULED", tag="tutorial", window="all") == ["future", "new", "tagged", "old"]


def test_a_bad_filter_value_is_shown_as_an_error_not_a_crash(admin_client: Any, runs: dict) -> None:
    response = admin_client.get(reverse("runs:list"), {"deployment": "nope", "state": "BORED", "since": "yesterday"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "BORED is not one of the available choices." in html
    assert "is not a valid UUID." in html and "Enter a valid date/time." in html
    assert names_listed(response) == ["new", "failed", "ml", "tagged"]


def test_keyset_pages_walk_every_run_once_in_both_directions(
    admin_client: Any, make_run: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("runs.views.PAGE_SIZE", 3)
    same_time = timezone.now() - timedelta(hours=1)
    for i in range(4):  # ties on the start time are ordered by id
        make_run(name=f"tie-{i}", scheduled_at=same_time)
    for i in range(4):
        make_run(name=f"run-{i}", scheduled_at=same_time - timedelta(minutes=i + 1))
    expected = list(FlowRun.objects.order_by("-expected_start_at", "-id").values_list("name", flat=True))

    pages, html = [], admin_client.get(reverse("runs:list")).content.decode()
    while True:
        pages.append(re.findall(r'class="runname">([^<]+)</a>', html))
        older = re.search(r'rel="next" href="([^"]+)"', html)
        if not older:
            break
        html = admin_client.get(reverse("runs:list") + older.group(1).replace("&amp;", "&")).content.decode()
    assert [name for page in pages for name in page] == expected
    assert [len(page) for page in pages] == [3, 3, 2]

    newer = re.search(r'rel="prev" href="([^"]+)"', html)
    assert newer
    back = admin_client.get(reverse("runs:list") + newer.group(1).replace("&amp;", "&")).content.decode()
    assert re.findall(r'class="runname">([^<]+)</a>', back) == pages[1]


def test_page_links_keep_the_filters(admin_client: Any, make_run: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr("runs.views.PAGE_SIZE", 1)
    make_run(name="a")
    make_run(name="b")
    html = admin_client.get(reverse("runs:list"), {"tag": "tutorial", "window": "24h"}).content.decode()
    link = re.search(r'rel="next" href="([^"]+)"', html)
    assert link and "tag=tutorial" in link.group(1) and "window=24h" in link.group(1)


def test_a_mangled_page_link_shows_the_newest_runs(admin_client: Any, runs: dict) -> None:
    response = admin_client.get(reverse("runs:list"), {"after": "not-a-token"})
    assert names_listed(response)[0] == "new"
    assert "That page link has expired" in response.content.decode()


def test_a_page_token_round_trips() -> None:
    cursor = RunCursor(timezone.now(), FlowRun().id)
    assert RunCursor.decode(cursor.encode()) == cursor
    for junk in ("", "abc", "Zm9v", "MjAyNHxub3QtYS11dWlk"):
        with pytest.raises(ValueError):
            RunCursor.decode(junk)


def test_state_badges_take_their_colour_class_from_the_state_type(admin_client: Any, runs: dict) -> None:
    html = admin_client.get(reverse("runs:list")).content.decode()
    assert '<span class="badge state-failed" data-state="FAILED">Failed</span>' in html
    assert '<span class="badge state-scheduled" data-state="SCHEDULED">Scheduled</span>' in html
    css = (Path(settings.BASE_DIR) / "static" / "dashboard.css").read_text()
    for state in S.values:
        assert f".state-{state.lower()} {{ --c: var(--state-{state.lower()}); }}" in css


def test_the_list_costs_the_same_queries_for_50_runs(
    admin_client: Any, make_run: Any, django_assert_max_num_queries: Any
) -> None:
    for _ in range(50):
        make_run()
    with django_assert_max_num_queries(8):
        assert len(names_listed(admin_client.get(reverse("runs:list")))) == 50
