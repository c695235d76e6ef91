"""Parameter schemas from flow signatures, and validating values against them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

import pydantic
import pytest

from deployments.services import create_flow_run
from orchestrator.core.errors import ValidationError
from orchestrator.core.parameters import (
    parameter_schema,
    parameters_from_strings,
    validate_call_parameters,
    validate_parameters,
)

pytestmark = pytest.mark.django_db


class Point(pydantic.BaseModel):
    x: int
    y: int = 0


class Client:
    """Something with no JSON form."""


def greet(name: str, times: int = 1, when: date | None = None, mood: Literal["happy", "sad"] = "happy") -> None: ...


def test_the_schema_has_a_property_per_parameter_with_type_default_and_required() -> None:
    schema = parameter_schema(greet)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["name"]
    props = schema["properties"]
    assert list(props) == ["name", "times", "when", "mood"]
    assert props["name"]["type"] == "string" and "default" not in props["name"]
    assert (props["times"]["type"], props["times"]["default"]) == ("integer", 1)
    assert {"format": "date", "type": "string"} in props["when"]["anyOf"]
    assert props["mood"]["enum"] == ["happy", "sad"]
    assert [p["position"] for p in props.values()] == [0, 1, 2, 3]


def test_models_unannotated_and_unknown_types_and_kwargs_are_described_as_well_as_they_can_be() -> None:
    def odd(point: Point, anything, client: Client | None = None, **extra: Any) -> None: ...

    schema = parameter_schema(odd)
    assert schema["properties"]["point"] == {"$ref": "#/$defs/Point", "title": "point", "position": 0}
    assert schema["$defs"]["Point"]["required"] == ["x"]
    assert schema["properties"]["anything"] == {"title": "anything", "position": 1}
    assert schema["required"] == ["point", "anything"]
    assert schema["additionalProperties"] is True


def test_values_are_coerced_against_the_stored_schema() -> None:
    def flow_fn(n: int, ratio: float, on: bool, when: datetime, point: Point, tags: list[str]) -> None: ...

    values = validate_parameters(
        parameter_schema(flow_fn),
        {"n": "3", "ratio": "0.5", "on": "true", "when": "2024-01-02T03:04:05Z", "point": {"x": "1"}, "tags": ["a"]},
    )
    assert values == {
        "n": 3,
        "ratio": 0.5,
        "on": True,
        "when": "2024-01-02T03:04:05Z",
        "point": {"x": 1},
        "tags": ["a"],
    }


@pytest.mark.parametrize(
    "values, key, message",
    [
        (
            {"name": "Leo", "times": "many"},
            "times",
            "Input should be a valid integer, unable to parse string as an integer; got 'many'.",
        ),
        ({"name": "Leo", "mood": "grumpy"}, "mood", "Input should be 'happy' or 'sad'; got 'grumpy'."),
        ({"name": "Leo", "nmae": "typo"}, "nmae", "The flow takes no parameter 'nmae'."),
        ({}, "name", "This parameter is required."),
    ],
)
def test_a_mismatch_is_a_clear_error_naming_the_parameter(values: dict[str, Any], key: str, message: str) -> None:
    for check in (
        lambda: validate_parameters(parameter_schema(greet), values),
        lambda: validate_call_parameters(greet, values),
    ):
        with pytest.raises(ValidationError) as excinfo:
            check()
        assert excinfo.value.errors == {key: [message]}
        assert str(excinfo.value) == f"Invalid parameter {key!r}: {message}"


def test_the_function_itself_turns_values_into_the_annotated_types() -> None:
    def fn(when: date, point: Point, client: Client | None = None) -> None: ...

    client = Client()
    values = validate_call_parameters(fn, {"when": "2024-02-29", "point": {"x": 2}, "client": client})
    assert values == {"when": date(2024, 2, 29), "point": Point(x=2), "client": client}
    with pytest.raises(ValidationError, match="'client'"):
        validate_call_parameters(fn, {"when": "2024-02-29", "point": {"x": 2}, "client": "not a client"})


def test_every_new_run_is_coerced_and_checked_against_the_deployment_schema(make_deployment: Any) -> None:
    def fn(name: str, times: int = 1) -> None: ...

    dep = make_deployment(parameters={"name": "Leo"}, parameter_schema=parameter_schema(fn))
    run, _ = create_flow_run(dep, parameters={"times": "3"})
    assert run.parameters == {"name": "Leo", "times": 3}
    with pytest.raises(ValidationError) as excinfo:
        create_flow_run(dep, parameters={"times": "thrice"})
    assert list(excinfo.value.errors) == ["times"]


def test_a_deployment_that_does_not_enforce_its_schema_takes_anything(make_deployment: Any) -> None:
    def fn(times: int) -> None: ...

    dep = make_deployment(parameter_schema=parameter_schema(fn), enforce_parameter_schema=False)
    run, _ = create_flow_run(dep, parameters={"times": "thrice", "other": 1})
    assert run.parameters == {"times": "thrice", "other": 1}


def test_text_from_the_command_line_is_read_for_the_schema() -> None:
    def fn(zip_code: str, n: int, tags: list[str], anything: Any = None, maybe: str | None = None) -> None: ...

    values = parameters_from_strings(
        parameter_schema(fn),
        {"zip_code": "02134", "n": "3", "tags": '["a", "b"]', "anything": "{oops", "maybe": "null"},
    )
    assert values == {"zip_code": "02134", "n": 3, "tags": ["a", "b"], "anything": "{oops", "maybe": "null"}
