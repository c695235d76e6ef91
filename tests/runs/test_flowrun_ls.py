"""`flowrun ls` as a new user reads it: the runs that happened (started or due) newest first,
not a screen of future scheduled runs; --upcoming and --all for the rest; IDs that stay on one
line to be copied; a bad filter is a one-line error, in the CLI and the API alike."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from orchestrator.core.states import StateType as S
from runs.services import set_state
from tests.conftest import Api

pytestmark = pytest.mark.django_db


def ls(*args: str) -> str:
    out = io.StringIO()
    call_command("flowrun", "ls", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def history(make_run: Any) -> dict[str, Any]:
    now = timezone.now()
    old = make_run(scheduled_at=now - timedelta(hours=2), name="old-run")
    recent = make_run(scheduled_at=now - timedelta(minutes=5), name="recent-run")
    set_state(recent, S.PENDING)
    set_state(recent, S.RUNNING)
    future = [make_run(scheduled_at=now + timedelta(minutes=m), name=f"future-{m}") for m in range(1, 25)]
    return {"old": old, "recent": recent, "future": future}


def test_ls_shows_runs_that_started_or_are_due_newest_first(history: dict[str, Any]) -> None:
    out = ls()
    assert "recent-run" in out and "old-run" in out
    assert out.index("recent-run") < out.index("old-run")
    assert "future-" not in out


def test_upcoming_shows_the_scheduled_runs_soonest_first_and_all_shows_everything(history: dict[str, Any]) -> None:
    upcoming = ls("--upcoming", "--limit", "3")
    assert "future-1 " in upcoming and "future-2 " in upcoming and "future-3 " in upcoming
    assert "old-run" not in upcoming and "future-4 " not in upcoming
    everything = ls("--all", "--limit", "100")
    assert all(name in everything for name in ("old-run", "recent-run", "future-24"))
    with pytest.raises(CommandError):
        ls("--all", "--upcoming")


def test_ids_stay_on_one_line_so_they_can_be_copied(history: dict[str, Any], monkeypatch: Any) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = ls()
    assert str(history["recent"].pk) in out
    assert str(history["old"].pk) in out


@pytest.mark.parametrize("state", ["BOGUS", "runing"])
def test_an_unknown_state_is_a_one_line_error(history: dict[str, Any], state: str) -> None:
    with pytest.raises(CommandError) as error:
        ls("--state", state)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"Unknown state {state!r}: use one of SCHEDULED, PENDING, RUNNING")
    assert "Late" in message


def test_a_known_state_name_or_type_filters(history: dict[str, Any]) -> None:
    assert "recent-run" in ls("--state", "Running") and "old-run" not in ls("--state", "RUNNING")
    assert "old-run" in ls("--state", "scheduled")


def test_the_api_refuses_a_limit_that_is_not_a_positive_number(operator: Api, run: Any) -> None:
    for value in ("abc", "0", "-3", "1.5"):
        response = operator.get("/api/flow-runs/", params={"limit": value})
        assert response.status_code == 400, value
        assert response.json()["errors"]["limit"], value
    assert operator.get("/api/flow-runs/", params={"limit": "1000"}).status_code == 200  # capped, not refused
    assert operator.get("/api/work-pools/", params={"page_size": "lots"}).status_code == 400
    assert operator.get("/api/flow-runs/", params={"state": "BOGUS"}).status_code == 400
