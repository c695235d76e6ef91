"""Home: the last 24 hours by state, the run-history chart, runs needing attention, pools."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import set_state
from workpools.models import Worker

pytestmark = pytest.mark.django_db
S = StateType


def finish(run: FlowRun, state: StateType, message: str = "") -> FlowRun:
    set_state(run, S.PENDING)
    set_state(run, S.RUNNING)
    return set_state(run, state, message=message)


def count_of(html: str, state: str) -> int:
    match = re.search(rf'data-state="{state}" data-count="(\d+)"', html)
    assert match, f"no count for {state}"
    return int(match.group(1))


def test_home_counts_the_runs_of_the_last_24_hours_by_state(admin_client: Any, make_run: Any) -> None:
    now = timezone.now()
    finish(make_run(scheduled_at=now - timedelta(hours=2)), S.COMPLETED)
    finish(make_run(scheduled_at=now - timedelta(hours=3)), S.COMPLETED)
    finish(make_run(scheduled_at=now - timedelta(hours=1)), S.FAILED, "ValueError: boom")
    make_run(scheduled_at=now - timedelta(minutes=1))
    finish(make_run(scheduled_at=now - timedelta(hours=30)), S.COMPLETED)  # too old
    make_run(scheduled_at=now + timedelta(hours=2))  # not yet

    html = admin_client.get(reverse("home")).content.decode()

    assert count_of(html, "COMPLETED") == 2
    assert count_of(html, "FAILED") == 1
    assert count_of(html, "SCHEDULED") == 1
    assert count_of(html, "CRASHED") == 0
    assert "4 runs" in html


def test_the_run_history_is_an_svg_of_hourly_bars_coloured_by_state(admin_client: Any, make_run: Any) -> None:
    now = timezone.now()
    for hours_ago in (0, 0, 8):
        finish(make_run(scheduled_at=now - timedelta(hours=hours_ago, minutes=1)), S.COMPLETED)
    finish(make_run(scheduled_at=now - timedelta(hours=8, minutes=1)), S.CRASHED)

    html = admin_client.get(reverse("home")).content.decode()

    svg = html[html.index("<svg") : html.index("</svg>")]
    assert svg.count('<g class="bar">') == 24
    assert len(re.findall(r'class="seg state-completed"', svg)) == 2
    assert len(re.findall(r'class="seg state-crashed"', svg)) == 1
    assert re.search(r"<title>\d\d:00: 2 runs, 1 completed, 1 crashed</title>", svg)


def test_a_young_install_sees_its_first_runs_on_a_finer_scale(admin_client: Any, make_run: Any) -> None:
    now = timezone.now()
    for minutes_ago in (2, 9, 17):
        finish(make_run(scheduled_at=now - timedelta(minutes=minutes_ago)), S.COMPLETED)

    html = admin_client.get(reverse("home")).content.decode()

    svg = html[html.index("<svg") : html.index("</svg>")]
    assert svg.count('<g class="bar">') == 24
    assert len(re.findall(r'class="seg state-completed"', svg)) == 3  # three bars, not one sliver
    assert "Runs per minute, last 24 minutes" in html
    assert count_of(html, "COMPLETED") == 3


def test_a_day_old_run_keeps_the_hourly_scale(admin_client: Any, make_run: Any) -> None:
    now = timezone.now()
    finish(make_run(scheduled_at=now - timedelta(hours=20)), S.COMPLETED)
    finish(make_run(scheduled_at=now - timedelta(minutes=3)), S.COMPLETED)
    html = admin_client.get(reverse("home")).content.decode()
    assert "Runs per hour, last 24 hours" in html


def test_late_and_failed_runs_are_listed_for_attention(admin_client: Any, make_run: Any) -> None:
    now = timezone.now()
    late = make_run(scheduled_at=now - timedelta(minutes=10))
    due_just_now = make_run(scheduled_at=now - timedelta(seconds=2))
    failed = finish(make_run(scheduled_at=now - timedelta(hours=1)), S.FAILED)
    crashed = finish(make_run(scheduled_at=now - timedelta(hours=2)), S.CRASHED)
    old_failure = finish(make_run(scheduled_at=now - timedelta(days=2)), S.FAILED)

    html = admin_client.get(reverse("home")).content.decode()
    late_part = html[html.index('id="late-title"') : html.index('id="failed-title"')]
    failed_part = html[html.index('id="failed-title"') : html.index('id="pools-title"')]

    assert late.name in late_part and due_just_now.name not in late_part
    assert failed.name in failed_part and crashed.name in failed_part
    assert old_failure.name not in failed_part


def test_home_shows_each_pool_with_its_health_in_words(admin_client: Any, pool: Any) -> None:
    html = admin_client.get(reverse("home")).content.decode()
    assert "my-process-pool" in html and "no online worker" in html
    Worker.objects.create(pool=pool, name="w1", last_heartbeat_at=timezone.now())
    html = admin_client.get(reverse("home")).content.decode()
    assert 'data-status="READY"' in html and "1 online worker" in html


def test_home_reads_a_fixed_number_of_queries_whatever_the_data(
    admin_client: Any, make_run: Any, make_pool: Any, django_assert_max_num_queries: Any
) -> None:
    now = timezone.now()
    for i in range(3):
        make_pool(f"pool-{i}")
    for i in range(6):
        finish(make_run(scheduled_at=now - timedelta(hours=i)), S.FAILED)
        make_run(scheduled_at=now - timedelta(minutes=5 + i))
    with django_assert_max_num_queries(12):
        assert admin_client.get(reverse("home")).status_code == 200
