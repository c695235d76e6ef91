"""Run logs reach the database in batches: many lines, few round trips."""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestrator import flow, get_run_logger
from orchestrator.direct import DirectClient
from runs.models import FlowRun, Log

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def round_trips(monkeypatch: Any) -> list[int]:
    """The size of each batch the engine sends (the real send, counted)."""
    sizes: list[int] = []
    real_send = DirectClient.send_logs

    def counted(self: DirectClient, entries: list[Any]) -> None:
        sizes.append(len(entries))
        real_send(self, entries)

    monkeypatch.setattr(DirectClient, "send_logs", counted)
    return sizes


def test_a_flow_that_logs_10000_lines_stores_them_in_a_handful_of_round_trips(
    round_trips: list[int], capsys: Any
) -> None:
    @flow
    def chatty() -> None:
        logger = get_run_logger()
        for i in range(10_000):
            logger.info("line %d", i)

    chatty()
    capsys.readouterr()  # 10,000 console lines
    run = FlowRun.objects.get()
    assert run.logs.filter(message__startswith="line ").count() == 10_000
    assert sum(round_trips) == Log.objects.count()
    assert len(round_trips) <= 15, round_trips
    assert max(round_trips) <= 1000
    print(f"10,000 lines in {len(round_trips)} round trips: {round_trips}")


def test_one_batch_is_one_call_and_a_few_inserts_at_most() -> None:
    from datetime import datetime

    from runs.services import write_logs

    @flow
    def empty() -> None:
        pass

    empty()
    run = FlowRun.objects.get()
    now = datetime.now(UTC)
    batch = [
        {"flow_run_id": run.pk, "task_run_id": None, "level": 20, "logger": "x", "message": f"m{i}", "timestamp": now}
        for i in range(1000)
    ]
    with CaptureQueriesContext(connection) as queries:
        assert write_logs(batch) == 1000
    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert 1 <= len(inserts) <= 10, len(inserts)  # SQLite caps one INSERT at 999 values: 7 here


def test_a_quiet_flow_sees_its_line_stored_within_about_a_second() -> None:
    @flow
    def quiet() -> float:
        get_run_logger().info("just one line")
        logged = time.monotonic()
        while not Log.objects.filter(message="just one line").exists():
            assert time.monotonic() - logged < 10, "the line was never shipped"
            time.sleep(0.05)
        return time.monotonic() - logged

    assert quiet() < 3
