"""What a worker prints about the flows it runs: everything by default; with --quiet (what
`make up` uses) only the worker's own lines and the flows' warnings and errors, tracebacks
included."""

from __future__ import annotations

import io

import pytest

from orchestrator.direct import DirectClient
from workpools.models import WorkPool
from workpools.worker import WorkerLoop

pytestmark = pytest.mark.django_db

FLOW_OUTPUT = [
    "12:14:30.012 | INFO    | orchestrator.engine - Executing flow run 'certain-cormorant'",
    "12:14:30.143 | INFO    | Task run 'log_message-0' - Hello Leo!",
    "12:14:30.150 | WARNING | Task run 'log_message-0' - Running low on greetings",
    "12:14:30.459 | ERROR   | Flow run 'certain-cormorant' - Finished in state Failed('boom')",
    "Traceback (most recent call last):",
    '  File "flows/hello.py", line 3, in hello',
    "RuntimeError: boom",
    "12:14:30.500 | INFO    | Flow run 'certain-cormorant' - bye",
]


def printed(pool: WorkPool, *, quiet: bool) -> str:
    client = DirectClient()
    out = io.StringIO()
    loop = WorkerLoop(client.register_worker(pool.name, name="w1"), client=client, out=out, quiet=quiet)
    write = loop._child_output("certain-cormorant")
    for line in FLOW_OUTPUT:
        write(line)
    return out.getvalue()


def test_a_quiet_worker_shows_only_the_flows_warnings_and_errors(pool: WorkPool) -> None:
    quiet = printed(pool, quiet=True)
    assert "Hello Leo!" not in quiet and "Executing flow run" not in quiet and "bye" not in quiet
    assert "Running low on greetings" in quiet and "Finished in state Failed" in quiet
    assert "RuntimeError: boom" in quiet and 'File "flows/hello.py"' in quiet


def test_by_default_a_worker_shows_all_of_the_flows_output(pool: WorkPool) -> None:
    everything = printed(pool, quiet=False)
    assert all(line in everything for line in FLOW_OUTPUT)
