"""Pull steps: what a deployment's run does before its flow is imported, to get the code and
pick the working directory. Steps are stored as a list of one-key dicts, like Prefect's
`pull:` section:

    [{"set_working_directory": {"directory": "/opt/flows"}}]

A step name may be dotted (prefect.deployments.steps.set_working_directory): the last part
counts. Each step gets the working directory so far and returns the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from runs.errors import OrchestratorError


class PullStepError(OrchestratorError):
    """A pull step is malformed, unknown, or failed."""


def set_working_directory(cwd: Path, *, directory: str) -> Path:
    """Run the flow from `directory` (relative to the working directory so far)."""
    target = (cwd / directory).resolve()
    if not target.is_dir():
        raise PullStepError(f"set_working_directory: {target} is not a directory.")
    return target


STEPS: dict[str, Callable[..., Path]] = {"set_working_directory": set_working_directory}


def run_pull_steps(steps: list[Any], *, cwd: Path) -> Path:
    """Run `steps` in order from `cwd`; returns the working directory they leave. Raises
    PullStepError naming the step (by its position and name) that is malformed or failed."""
    for position, step in enumerate(steps or [], start=1):
        if not isinstance(step, dict) or len(step) != 1:
            raise PullStepError(f"Pull step {position} must be a mapping of one step name to its options, not {step!r}.")
        ((name, options),) = step.items()
        function = STEPS.get(str(name).rsplit(".", 1)[-1])
        if function is None:
            raise PullStepError(f"Pull step {position} {name!r} is unknown (known: {', '.join(sorted(STEPS))}).")
        if not isinstance(options, dict):
            raise PullStepError(f"Pull step {position} {name!r} takes a mapping of options, not {options!r}.")
        try:
            cwd = function(cwd, **options)
        except PullStepError:
            raise
        except Exception as error:
            raise PullStepError(f"Pull step {position} {name!r} failed: {type(error).__name__}: {error}") from error
    return cwd
