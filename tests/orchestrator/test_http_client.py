"""The HTTP transport of the client interface, against the live server: the engine runs a flow
through it, and every answer comes back as the exception the direct transport raises."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from deployments.services import create_flow_run
from orchestrator import engine
from orchestrator.client import LogEntry, Refused, Unreachable, get_client, http
from orchestrator.client.http import HttpClient, api_root
from orchestrator.core.errors import InvalidTransition, NotFound, StateConflict, ValidationError
from orchestrator.core.states import StateType
from orchestrator.direct import DirectClient
from runs.models import FlowRun, Log
from runs.services import set_state

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)

CACHED_FLOW = """
@task(cache_key_fn=lambda context, parameters: "greeting-" + parameters["name"])
def greet(name):
    get_run_logger().info(f"Hello {name}!")
    return {"greeting": f"Hello {name}"}

@flow(retries=2, retry_delay_seconds=0)
def greetings(name: str):
    return [greet(name), greet(name)]
"""


@pytest.fixture
def client(live_server: Any, make_api_key: Any, pool: Any) -> HttpClient:
    """A remote worker's client: its pool's worker key, over HTTP."""
    return HttpClient(live_server.url, make_api_key("worker", pool), retry_seconds=0)


@pytest.fixture
def claimed(run: FlowRun) -> FlowRun:
    return set_state(run, S.PENDING)


def test_the_engine_runs_a_flow_over_http(client: HttpClient, write_flow: Any, deploy: Any) -> None:
    write_flow("flows/greetings.py", CACHED_FLOW)
    run, _ = create_flow_run(deploy("flows/greetings.py:greetings", parameters={"name": "Marvin"}))
    set_state(run, S.PENDING)

    outcome = engine.execute_flow_run(str(run.pk), client=client)

    assert outcome.state_type == S.COMPLETED and outcome.result == [{"greeting": "Hello Marvin"}] * 2
    run.refresh_from_db()
    assert (run.state_type, run.run_count, run.retries) == (S.COMPLETED, 1, 2)
    first, second = run.task_runs.order_by("created_at")
    assert (first.state_name, second.state_name) == ("Completed", "Cached")  # found over HTTP
    assert run.logs.filter(message="Hello Marvin!").count() == 1
    assert run.logs.filter(task_run=first).exists()


def test_answers_come_back_as_the_services_exceptions(client: HttpClient, claimed: FlowRun) -> None:
    with pytest.raises(StateConflict) as conflict:
        client.set_flow_run_state(str(claimed.pk), S.CANCELLED, expected=S.SCHEDULED)
    assert (conflict.value.expected, conflict.value.actual, conflict.value.to_type) == (
        "SCHEDULED",
        "PENDING",
        "CANCELLED",
    )
    assert str(conflict.value) == (
        "A flow run cannot move from PENDING to CANCELLED: it is PENDING now, not SCHEDULED (another actor changed it first)"
    )
    with pytest.raises(InvalidTransition, match="cannot move from PENDING to COMPLETED") as invalid:
        client.set_flow_run_state(str(claimed.pk), S.COMPLETED, expected=S.PENDING)
    assert not isinstance(invalid.value, StateConflict)
    with pytest.raises(NotFound):
        client.read_flow_run("00000000-0000-0000-0000-000000000000")
    with pytest.raises(ValidationError) as invalid_input:
        client.set_flow_run_retries(str(claimed.pk), retries=-1, retry_delay_seconds=0)
    assert invalid_input.value.errors == {"retries": ["Ensure this value is greater than or equal to 0."]}


def test_a_state_change_whose_answer_was_lost_is_not_mistaken_for_someone_elses(
    client: HttpClient, claimed: FlowRun
) -> None:
    # The first attempt reaches the server, but its answer never comes back.
    class LoseFirstAnswer(requests.adapters.HTTPAdapter):
        lost = 0

        def send(self, request: Any, **kwargs: Any) -> Any:
            response = super().send(request, **kwargs)
            if not LoseFirstAnswer.lost:
                LoseFirstAnswer.lost += 1
                raise requests.ConnectionError("connection reset")
            return response

    client.retry_seconds = 5
    client._session().mount("http://", LoseFirstAnswer())
    run = client.set_flow_run_state(str(claimed.pk), S.RUNNING, expected=S.PENDING)
    assert LoseFirstAnswer.lost == 1
    assert (run.state_type, run.run_count) == ("RUNNING", 1)
    assert FlowRun.objects.get(pk=claimed.pk).states.filter(type=S.RUNNING).count() == 1


def test_a_refused_key_and_an_unreachable_orchestrator_are_errors_of_their_own(live_server: Any, run: FlowRun) -> None:
    with pytest.raises(Refused, match="Invalid or revoked API key"):
        HttpClient(live_server.url, "not-a-key", retry_seconds=0).read_flow_run(str(run.pk))
    with pytest.raises(Unreachable, match="Cannot reach the orchestrator at http://127.0.0.1:9: connection failed"):
        HttpClient("http://127.0.0.1:9", "key", retry_seconds=0).read_flow_run(str(run.pk))


def test_a_big_batch_of_logs_goes_in_requests_under_the_body_limit(
    client: HttpClient, claimed: FlowRun, monkeypatch: Any
) -> None:
    monkeypatch.setattr(http, "MAX_BODY_BYTES", 4000)
    now = datetime.now(UTC)
    entries = [
        LogEntry(
            flow_run_id=str(claimed.pk),
            task_run_id=None,
            level=20,
            logger="l",
            message=f"{i} " + "x" * 900,
            timestamp=now,
        )
        for i in range(10)
    ]
    huge = "y" * (http.MAX_LOG_MESSAGE_CHARS + 11)
    for message in (huge, "a NUL \x00 byte"):  # which neither the API nor PostgreSQL takes
        entries.append(
            LogEntry(
                flow_run_id=str(claimed.pk), task_run_id=None, level=20, logger="l", message=message, timestamp=now
            )
        )
    client.send_logs(entries)
    assert Log.objects.filter(flow_run=claimed).count() == 12
    assert (
        Log.objects.get(message__startswith="yyy").message
        == "y" * http.MAX_LOG_MESSAGE_CHARS + "... [11 characters cut]"
    )
    assert Log.objects.filter(message="a NUL \ufffd byte").exists()


def test_get_client_picks_http_when_a_worker_passed_the_api_url(monkeypatch: Any, db: None) -> None:
    monkeypatch.delenv("ORCHESTRATOR_API_URL", raising=False)
    assert isinstance(get_client(), DirectClient)
    monkeypatch.setenv("ORCHESTRATOR_API_URL", "http://orchestrator.example.com:8000")
    monkeypatch.setenv("ORCHESTRATOR_API_KEY", "k")
    chosen = get_client()
    assert isinstance(chosen, HttpClient) and chosen.root == "http://orchestrator.example.com:8000/api"
    assert chosen.environment() == {
        "ORCHESTRATOR_API_URL": "http://orchestrator.example.com:8000",
        "ORCHESTRATOR_API_KEY": "k",
    }
    monkeypatch.delenv("ORCHESTRATOR_API_KEY")
    with pytest.raises(Exception, match="ORCHESTRATOR_API_KEY is not"):
        get_client()
    assert api_root("https://o.example.com/api/") == "https://o.example.com/api"


def test_a_flow_called_as_a_function_over_http_says_it_is_not_supported(client: HttpClient) -> None:
    with pytest.raises(Exception, match="not supported yet"):
        client.create_adhoc_flow_run("f", description="", parameters={})
