"""What a flow call returns with `return_state=True`: the run's final state, with its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.states import StateType


class FlowRunStopped(RuntimeError):
    """A flow called from a script did not finish: its run was cancelled or crashed meanwhile."""


@dataclass(frozen=True)
class State:
    """A flow run's final state: `type` (COMPLETED, FAILED, CRASHED, CANCELLED, ...), `name`,
    `message`, and `result()`: the return value, or the failure raised again."""

    type: str
    name: str
    message: str
    flow_run_id: str
    flow_run_name: str
    result_uri: str = ""
    _value: Any = field(default=None, repr=False, compare=False)
    _error: BaseException | None = field(default=None, repr=False, compare=False)

    def is_completed(self) -> bool:
        return self.type == StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type in (StateType.FAILED, StateType.CRASHED)

    def is_cancelled(self) -> bool:
        return self.type in (StateType.CANCELLED, StateType.CANCELLING)

    def result(self, raise_on_failure: bool = True) -> Any:
        """The flow's return value. A run that failed raises its exception (or, with
        raise_on_failure=False, returns it); a run that was stopped raises FlowRunStopped."""
        if self.is_completed():
            return self._value
        error = self._error or FlowRunStopped(
            f"Flow run '{self.flow_run_name}' did not finish: it is {self.name}({self.message!r})."
        )
        if raise_on_failure:
            raise error
        return error
