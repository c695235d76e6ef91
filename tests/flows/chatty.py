"""Flows for the fault tests: each logs numbered lines, slowly enough that a database restart
lands in the middle, and records every execution of its body from inside (one O_APPEND write
per line, atomic between processes), so a test counts what really ran."""

import os
import time

from orchestrator import flow, get_run_logger


def _numbered_lines(marker_dir: str, index: int, lines: int, pause: float) -> None:
    with open(os.path.join(marker_dir, "bodies.log"), "a") as f:
        f.write(f"{index} {os.environ.get('ORCHESTRATOR_RUN_ID', '?')}\n")
    logger = get_run_logger()
    for n in range(1, lines + 1):
        logger.info("run %s line %s", index, n)
        time.sleep(pause)


@flow
def numbered_lines(marker_dir: str, index: int, lines: int = 300, pause: float = 0.02) -> None:
    _numbered_lines(marker_dir, index, lines, pause)


@flow(retries=1)
def numbered_lines_with_a_retry(marker_dir: str, index: int, lines: int = 300, pause: float = 0.02) -> None:
    _numbered_lines(marker_dir, index, lines, pause)


@flow
def loud(megabytes: float) -> None:
    """Prints `megabytes` of plain stdout (not logs): what a worker relays from its process."""
    line = "x" * 999
    for _ in range(int(megabytes * 1000)):
        print(line)
