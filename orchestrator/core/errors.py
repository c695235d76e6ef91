"""Errors raised by services. Each surface translates them once (API 400/409, dashboard
message, admin message_user, CommandError) so people see the message, never a traceback."""

from __future__ import annotations


class OrchestratorError(Exception):
    """A rule said no. `str(error)` is a sentence meant for the person who asked."""


class NotFound(OrchestratorError):
    """The named object does not exist."""


class Forbidden(OrchestratorError):
    """The person's role does not allow this (accounts.roles)."""


class InvalidTransition(OrchestratorError):
    """The state machine does not allow this move."""

    def __init__(self, from_type: str, to_type: str, detail: str = "", *, subject: str = "A flow run") -> None:
        self.from_type = from_type
        self.to_type = to_type
        message = f"{subject} cannot move from {from_type} to {to_type}"
        super().__init__(f"{message}: {detail}" if detail else f"{message}.")


class StateConflict(InvalidTransition):
    """Someone else changed the run's state first (the compare-and-swap found another state)."""

    def __init__(self, expected: str, actual: str, to_type: str, *, subject: str = "A flow run") -> None:
        super().__init__(
            actual,
            to_type,
            f"it is {actual} now, not {expected} (another actor changed it first)",
            subject=subject,
        )
        self.expected = expected
        self.actual = actual


class ValidationError(OrchestratorError):
    """Input broke a rule. `errors` maps field names to messages for forms and the API."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}
