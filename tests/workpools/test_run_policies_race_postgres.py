"""Overlap and lateness policies under two workers claiming at the same moment, on PostgreSQL:
each policy's promise holds whichever worker gets there first."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from orchestrator.core.policies import OverlapPolicy
from orchestrator.core.states import StateType
from runs.models import FlowRun, FlowRunState
from workpools.models import WorkPool
from workpools.services import claim_runs, register_worker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
S = StateType
ROUNDS = 15


def race(workers: list[Any], rounds: int, before_round: Callable[[int], None]) -> list[list[Any]]:
    """Each round: `before_round(i)` prepares runs, then both workers claim at once (a barrier).
    Returns what each claim took, per round."""
    barrier = threading.Barrier(2)
    claimed: list[list[Any]] = [[] for _ in range(rounds)]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def contender(me: int) -> None:
        try:
            for i in range(rounds):
                if me == 0:
                    before_round(i)
                barrier.wait(timeout=60)
                got = claim_runs(workers[me])
                with lock:
                    claimed[i].extend(r.pk for r in got)
                barrier.wait(timeout=60)  # next round only when both claimed
        except BaseException as error:  # surfaced below; a dead thread would hang the barrier
            errors.append(error)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=contender, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    return claimed


@pytest.fixture
def workers(pool: WorkPool) -> list[Any]:
    return [register_worker(pool.name, name=f"w{i}")[0] for i in (1, 2)]


def ago(seconds: float) -> Any:
    return timezone.now() - timedelta(seconds=seconds)


def cancelled_rows(runs: list[FlowRun]) -> int:
    return FlowRunState.objects.filter(flow_run__in=[r.pk for r in runs], type=S.CANCELLED).count()


def test_skip_starts_exactly_one_of_simultaneous_runs_under_racing_workers(
    workers: list[Any], make_deployment: Any, make_run: Any
) -> None:
    deps = [make_deployment(f"skip-{i}", overlap_policy=OverlapPolicy.SKIP) for i in range(ROUNDS)]
    made: list[list[FlowRun]] = [[] for _ in range(ROUNDS)]

    def prepare(i: int) -> None:
        made[i] = [make_run(deps[i], scheduled_at=ago(10 - n)) for n in range(4)]

    claimed = race(workers, ROUNDS, prepare)
    for i in range(ROUNDS):
        assert claimed[i] == [made[i][0].pk], f"round {i}: exactly the oldest run starts"
        assert [FlowRun.objects.get(pk=r.pk).state_type for r in made[i]] == [S.PENDING] + [S.CANCELLED] * 3
        assert cancelled_rows(made[i]) == 3, "each skipped run is cancelled once"


def test_skip_and_buffer_one_with_an_active_run_start_nothing_under_racing_workers(
    workers: list[Any], make_deployment: Any, make_run: Any
) -> None:
    skip = make_deployment("skip", overlap_policy=OverlapPolicy.SKIP)
    buffer = make_deployment("buffer", overlap_policy=OverlapPolicy.BUFFER_ONE)
    for dep in (skip, buffer):
        make_run(dep, scheduled_at=ago(3600))
    assert len(claim_runs(workers[0])) == 2  # one active run each from now on
    made: dict[int, tuple[list[FlowRun], list[FlowRun]]] = {}

    def prepare(i: int) -> None:
        made[i] = (
            [make_run(skip, scheduled_at=ago(5)) for _ in range(2)],
            [make_run(buffer, scheduled_at=ago(5)) for _ in range(2)],
        )

    claimed = race(workers, ROUNDS, prepare)
    assert all(c == [] for c in claimed), "nothing starts while a run of each deployment is active"
    skipped = [r for i in made for r in made[i][0]]
    assert FlowRun.objects.filter(pk__in=[r.pk for r in skipped], state_type=S.CANCELLED).count() == len(skipped)
    assert cancelled_rows(skipped) == len(skipped)
    buffered = [r for i in made for r in made[i][1]]
    waiting = FlowRun.objects.filter(pk__in=[r.pk for r in buffered], state_type=S.SCHEDULED)
    assert waiting.count() == 1, "buffer_one keeps exactly one run waiting"
    assert cancelled_rows(buffered) == len(buffered) - 1


def test_cancel_running_starts_one_new_run_and_cancels_the_old_under_racing_workers(
    workers: list[Any], make_deployment: Any, make_run: Any
) -> None:
    dep = make_deployment("replace", overlap_policy=OverlapPolicy.CANCEL_RUNNING)
    make_run(dep, scheduled_at=ago(3600))
    previous = claim_runs(workers[0])
    made: list[list[FlowRun]] = [[] for _ in range(ROUNDS)]

    def prepare(i: int) -> None:
        made[i] = [make_run(dep, scheduled_at=ago(10 - n)) for n in range(3)]

    claimed = race(workers, ROUNDS, prepare)
    for i in range(ROUNDS):
        assert claimed[i] == [made[i][-1].pk], f"round {i}: the newest run starts, once"
        assert [FlowRun.objects.get(pk=r.pk).state_type for r in made[i][:-1]] == [S.CANCELLED] * 2
    # Every run that was started before the last round is being cancelled by its successor.
    started = [previous[0].pk] + [c[0] for c in claimed[:-1]]
    assert set(FlowRun.objects.filter(pk__in=started).values_list("state_type", flat=True)) == {S.CANCELLING}
    assert FlowRun.objects.get(pk=claimed[-1][0]).state_type == S.PENDING


def test_late_runs_are_cancelled_once_under_racing_workers(
    workers: list[Any], make_deployment: Any, make_run: Any
) -> None:
    dep = make_deployment("late", max_lateness_seconds=60)
    made: list[tuple[list[FlowRun], FlowRun]] = []

    def prepare(i: int) -> None:
        made.append(([make_run(dep, scheduled_at=ago(600 + n)) for n in range(3)], make_run(dep, scheduled_at=ago(1))))

    claimed = race(workers, ROUNDS, prepare)
    for i, (late, fresh) in enumerate(made):
        assert claimed[i] == [fresh.pk]
        assert cancelled_rows(late) == 3
        assert all("max lateness" in FlowRun.objects.get(pk=r.pk).state_message for r in late)
