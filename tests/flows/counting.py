"""Flows for worker tests. Each execution is recorded from inside the flow itself, so tests
count what really ran rather than trusting our own states."""

import os
import time

from orchestrator import flow


def _record(marker_dir: str, event: str) -> None:
    # One short O_APPEND write per line: atomic between concurrent processes.
    line = f"{event} {os.environ.get('ORCHESTRATOR_RUN_ID', '?')} {time.time():.6f}\n"
    with open(os.path.join(marker_dir, "events.log"), "a") as f:
        f.write(line)


@flow
def count_me(marker_dir: str, seconds: float = 0.0) -> None:
    _record(marker_dir, "start")
    if seconds:
        time.sleep(seconds)
    _record(marker_dir, "end")


@flow
def sleepy(marker_dir: str, seconds: float = 60.0) -> None:
    _record(marker_dir, "start")
    time.sleep(seconds)
    _record(marker_dir, "end")
