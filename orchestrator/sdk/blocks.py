"""Variables and secrets, read in flows and tasks (Prefect: `Variable.get`, `Secret.load(...).get()`).

    from orchestrator import Secret, Variable

    region = Variable.get("region", default="eu-west-1")
    token = Secret.load("github-token").get()

They are read through the run's client: on the orchestrator's host from its database, on a
remote worker over the API with the run's credential. A loaded secret's value is masked
(********) in the run's logs and on the console from then on.
"""

from __future__ import annotations

from typing import Any

from orchestrator.client import OrchestratorClient
from orchestrator.sdk import masking
from orchestrator.sdk.context import current_client


def _client() -> OrchestratorClient:
    return current_client()


class Variable:
    """A named JSON value kept in the orchestrator (admin, API, `manage.py variable`)."""

    @staticmethod
    def get(name: str, default: Any = None) -> Any:
        """The variable's value, or `default` when there is no variable of that name."""
        found, value = _client().read_variable(name)
        return value if found else default


class Secret:
    """A named value stored encrypted in the orchestrator, never shown again once written."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    @classmethod
    def load(cls, name: str) -> Secret:
        """The secret `name` (NotFound when there is none; Refused when this process's credential
        may not read secrets). Its value is masked in logs from now on."""
        value = _client().read_secret(name)
        masking.register(value)
        return cls(name, value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, ********)"
