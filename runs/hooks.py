"""Reactions to state changes (automations, outgoing webhooks, notifications).

`set_state` calls `fire` after the transaction commits, once per state entered. A hook that
raises is logged and never undoes or blocks the state change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runs.models import FlowRun

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateChange:
    run_id: object
    from_type: str | None
    to_type: str
    to_name: str
    message: str
    state_id: int | None = None  # the FlowRunState row this change appended


Hook = Callable[["FlowRun", StateChange], None]
_hooks: list[Hook] = []


def on_state_change(hook: Hook) -> Hook:
    """Register `hook(run, change)`; usable as a decorator. Registering twice is a no-op."""
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def remove(hook: Hook) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


def fire(run: FlowRun, change: StateChange) -> None:
    for hook in list(_hooks):
        try:
            hook(run, change)
        except Exception:
            log.exception(
                "State hook %s failed for run %s (%s)", getattr(hook, "__name__", hook), run.pk, change.to_name
            )
