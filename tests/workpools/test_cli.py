"""workpool and workqueue commands: tables people read, and one-line errors with exit 1."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from workpools.models import WorkPool, WorkQueue

pytestmark = pytest.mark.django_db


def cli(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_creating_and_listing_a_pool_like_the_tutorial() -> None:
    assert "Created work pool 'my-process-pool' (type process" in cli(
        "workpool", "create", "my-process-pool", "--type", "process"
    )
    table = cli("workpool", "ls")
    pool = WorkPool.objects.get()
    for text in (
        "Work Pools",
        "Name",
        "Type",
        "ID",
        "Concurrency Limit",
        "Status",
        "my-process-pool",
        str(pool.pk),
        "NOT_READY",
    ):
        assert text in table


def test_limits_pause_resume_and_delete(make_pool: Any) -> None:
    make_pool("p")
    cli("workpool", "set-concurrency-limit", "p", "3")
    assert WorkPool.objects.get().concurrency_limit == 3
    cli("workpool", "clear-concurrency-limit", "p")
    assert WorkPool.objects.get().concurrency_limit is None
    cli("workpool", "pause", "p")
    assert "PAUSED" in cli("workpool", "ls")
    cli("workpool", "resume", "p")
    assert "Paused             False" in cli("workpool", "inspect", "p")
    cli("workpool", "delete", "p")
    assert not WorkPool.objects.exists()


def test_a_tag_filtered_queue_like_the_tutorial(make_pool: Any) -> None:
    make_pool("default")
    out = cli("workqueue", "create", "--tag", "tutorial", "tutorial_queue")
    assert "serves deployments tagged tutorial" in out
    queue = WorkQueue.objects.get(name="tutorial_queue")
    assert queue.tags == ["tutorial"]
    cli("workqueue", "pause", str(queue.pk))  # by id, no pool needed
    listing = cli("workqueue", "ls")
    assert "tutorial_queue (**)" in listing and "(**) denotes a paused queue" in listing
    assert f"Deleted work queue 'tutorial_queue' ({queue.pk})" in cli("workqueue", "delete", str(queue.pk))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("workpool", "inspect", "nope"), "No work pool named 'nope'."),
        (("workpool", "set-concurrency-limit", "p", "-1"), "A concurrency limit cannot be negative (got -1)."),
        (("workpool", "create", "p"), "A work pool named 'p' already exists."),
        (("workqueue", "inspect", "nope", "--pool", "p"), "Work pool 'p' has no queue 'nope'."),
        (("workqueue", "create", "q", "--pool", "missing"), "No work pool named 'missing'."),
        (
            ("workqueue", "create", "q", "--pool", "p", "--concurrency-limit", "-2"),
            "A concurrency limit cannot be negative (got -2).",
        ),
        (("workqueue", "delete", "default", "--pool", "p"), "The 'default' queue of a pool cannot be deleted."),
    ],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(make_pool: Any, args: tuple[str, ...], message: str) -> None:
    make_pool("p")
    before = (WorkPool.objects.count(), WorkQueue.objects.count())
    with pytest.raises(CommandError) as excinfo:
        call_command(*args, stdout=io.StringIO())
    assert str(excinfo.value) == message
    assert (WorkPool.objects.count(), WorkQueue.objects.count()) == before


def test_deleting_a_pool_with_running_runs_is_refused(pool: Any, run: Any) -> None:
    from runs.services import set_state

    set_state(run, "PENDING")
    with pytest.raises(CommandError, match="has 1 run in flight"):
        call_command("workpool", "delete", pool.name, stdout=io.StringIO())


def test_workqueue_create_without_pool_names_the_default_pool_first(make_pool: Any) -> None:
    make_pool("default")
    make_pool("my-process-pool")
    out = cli("workqueue", "create", "tutorial_queue")
    assert out.startswith("In pool 'default' (no --pool given): created work queue 'tutorial_queue'"), out
    assert WorkQueue.objects.get(name="tutorial_queue").pool.name == "default"
    chosen = cli("workqueue", "create", "q2", "--pool", "my-process-pool")
    assert chosen.startswith("Created work queue 'q2' in pool 'my-process-pool'"), chosen
