"""The Custom Run form, generated from the deployment's parameter schema."""

from __future__ import annotations

import enum
import html as htmllib
import re
from datetime import date
from typing import Any

import pytest
from django.urls import reverse

from deployments.models import Deployment
from orchestrator.core.parameters import parameter_schema
from runs.models import FlowRun
from tests.html import element

pytestmark = pytest.mark.django_db

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Name", "description": "Who to greet."},
        "times": {"type": "integer", "default": 1},
        "ratio": {"type": "number", "default": 0.5},
        "loud": {"type": "boolean", "default": False},
        "friends": {"type": "array"},
        "options": {"type": "object", "default": {"colour": "blue"}},
        "mood": {"type": "string", "enum": ["happy", "sad"]},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "anything": {"title": "Anything"},
    },
    "required": ["name"],
}


@pytest.fixture
def greeter(make_deployment: Any) -> Deployment:
    return make_deployment("greeter", parameters={"name": "Leo"}, parameter_schema=SCHEMA)


def form_of(client: Any, deployment: Deployment) -> tuple[str, dict[str, str]]:
    """The page, and the values a browser would send for it unchanged."""
    html = client.get(reverse("deployments:custom_run", args=[deployment.pk])).content.decode()
    values = dict(re.findall(r'<input type="(?:text|number|hidden)" name="([^"]+)" value="([^"]*)"', html))
    for name, text in re.findall(r'<textarea name="([^"]+)"[^>]*>\n?(.*?)</textarea>', html, re.S):
        values[name] = htmllib.unescape(text)
    for name in re.findall(r'<input type="checkbox" name="([^"]+)"[^>]*\bchecked\b', html):
        values[name] = "on"
    values.pop("csrfmiddlewaretoken", None)
    return html, values


def field_html(html: str, name: str) -> str:
    return element(html, "div", f'data-field="{name}"')


def test_the_form_has_a_typed_field_per_parameter_with_defaults_and_required_marks(
    admin_client: Any, greeter: Deployment
) -> None:
    html, values = form_of(admin_client, greeter)
    assert 'title="required">*</span>' in field_html(html, "parameters.name")
    assert 'title="required"' not in field_html(html, "parameters.times")
    assert values["parameters.name"] == "Leo" and values["parameters.times"] == "1"
    assert 'type="number" name="parameters.times"' in html
    assert 'type="number" name="parameters.ratio" value="0.5" step="any"' in html
    assert 'type="checkbox" name="parameters.loud"' in html
    assert "&quot;colour&quot;: &quot;blue&quot;" in field_html(html, "parameters.options")
    assert '<option value="sad">sad</option>' in field_html(html, "parameters.mood")
    assert "Who to greet." in field_html(html, "parameters.name")
    assert '<span class="type">integer</span>' in field_html(html, "parameters.times")


def test_a_custom_run_gets_the_values_typed_in(admin_client: Any, greeter: Deployment) -> None:
    _, values = form_of(admin_client, greeter)
    values.update(
        {
            "parameters.anything": "plain words",
            "parameters.name": "Marty",
            "parameters.times": "3",
            "parameters.loud": "on",
            "parameters.friends": '["Doc", "Biff"]',
            "parameters.mood": "happy",
            "run_name": "marty-run",
        }
    )
    response = admin_client.post(reverse("deployments:custom_run", args=[greeter.pk]), values)
    run = FlowRun.objects.get()
    assert response["Location"] == reverse("runs:detail", args=[run.pk])
    assert run.name == "marty-run"
    assert run.parameters == {
        "name": "Marty",
        "times": 3,
        "ratio": 0.5,
        "loud": True,
        "friends": ["Doc", "Biff"],
        "options": {"colour": "blue"},
        "mood": "happy",
        "anything": "plain words",
    }


def test_a_bad_value_gets_the_services_message_next_to_its_field_and_makes_no_run(
    admin_client: Any, greeter: Deployment
) -> None:
    _, values = form_of(admin_client, greeter)
    values.update({"parameters.times": "1.5", "parameters.friends": '{"not": "a list"}'})
    response = admin_client.post(reverse("deployments:custom_run", args=[greeter.pk]), values)
    html = response.content.decode()
    assert response.status_code == 400
    assert "Input should be a valid integer" in field_html(html, "parameters.times")
    assert "Input should be a valid list" in field_html(html, "parameters.friends")
    assert 'value="1.5"' in field_html(html, "parameters.times"), "what was typed stays"
    assert not FlowRun.objects.exists()


def test_nan_and_infinity_which_no_database_would_store_are_refused(admin_client: Any, greeter: Deployment) -> None:
    _, values = form_of(admin_client, greeter)
    values.update({"parameters.friends": "[NaN]", "parameters.anything": "Infinity", "parameters.ratio": "inf"})
    html = admin_client.post(reverse("deployments:custom_run", args=[greeter.pk]), values).content.decode()
    for name in ("friends", "anything", "ratio"):
        assert "Enter a value without NaN or Infinity." in field_html(html, f"parameters.{name}")
    assert not FlowRun.objects.exists()


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def paint(wall: str, colour: Colour = Colour.RED, coats: int = 2, on: date | None = None, *, dry: bool = True) -> None:
    """A flow's signature (module level: its annotations are strings to resolve)."""


def test_the_form_follows_the_schema_the_sdk_builds_from_a_signature(admin_client: Any, make_deployment: Any) -> None:
    dep = make_deployment("paint", parameter_schema=parameter_schema(paint))
    html, values = form_of(admin_client, dep)
    assert re.findall(r'data-field="parameters\.(\w+)"', html) == ["wall", "colour", "coats", "on", "dry"]
    assert '<option value="red" selected>red</option>' in field_html(html, "parameters.colour")
    assert 'type="date" name="parameters.on"' in html
    values.update({"parameters.wall": "north", "parameters.colour": "blue", "parameters.on": "2030-01-02"})
    admin_client.post(reverse("deployments:custom_run", args=[dep.pk]), values)
    assert FlowRun.objects.get().parameters == {
        "wall": "north",
        "colour": "blue",
        "coats": 2,
        "on": "2030-01-02",
        "dry": True,
    }


def test_the_services_verdict_on_a_parameter_appears_next_to_it(admin_client: Any, make_deployment: Any) -> None:
    dep = make_deployment("no-default", parameter_schema=SCHEMA)  # no default for the required name
    _, values = form_of(admin_client, dep)
    response = admin_client.post(reverse("deployments:custom_run", args=[dep.pk]), values)
    assert response.status_code == 400
    assert "This parameter is required." in field_html(response.content.decode(), "parameters.name")
    assert not FlowRun.objects.exists()


def test_an_error_about_no_field_in_the_form_is_shown_on_top(admin_client: Any, make_deployment: Any) -> None:
    dep = make_deployment("stale", parameters={"name": "Leo", "nmae": "typo"}, parameter_schema=SCHEMA)
    _, values = form_of(admin_client, dep)
    html = admin_client.post(reverse("deployments:custom_run", args=[dep.pk]), values).content.decode()
    assert re.search(r"errorlist nonfield.*nmae: The flow takes no parameter", html, re.S)


def test_sending_the_same_form_twice_makes_one_run(admin_client: Any, greeter: Deployment) -> None:
    _, values = form_of(admin_client, greeter)
    url = reverse("deployments:custom_run", args=[greeter.pk])
    admin_client.post(url, values)
    again = admin_client.post(url, values, follow=True)
    assert FlowRun.objects.count() == 1
    assert "This form was already sent" in again.content.decode()


def test_a_flow_without_parameters_says_so(admin_client: Any, make_deployment: Any) -> None:
    dep = make_deployment("bare")
    html, values = form_of(admin_client, dep)
    assert "This flow takes no parameters." in html
    admin_client.post(reverse("deployments:custom_run", args=[dep.pk]), values)
    assert FlowRun.objects.get().parameters == {}
