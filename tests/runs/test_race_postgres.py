"""Two actors racing to claim one run on PostgreSQL: exactly one wins, every time."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from orchestrator.core.errors import StateConflict
from orchestrator.core.states import StateType
from runs.models import FlowRun, FlowRunState
from runs.services import set_state

ROUNDS = 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_connections_racing_to_claim_a_run_never_both_win(make_run: Any) -> None:
    runs = [make_run() for _ in range(ROUNDS)]
    barrier = threading.Barrier(2)
    wins: list[list[str]] = [[], []]
    losses: list[list[str]] = [[], []]
    errors: list[BaseException] = []

    def contender(me: int) -> None:
        # Each thread has its own database connection (Django connections are per thread).
        try:
            for run in runs:
                mine = FlowRun.objects.get(pk=run.pk)  # a fresh copy, still SCHEDULED
                barrier.wait(timeout=30)
                try:
                    set_state(mine, StateType.PENDING, message=f"claimed by contender {me}")
                except StateConflict:
                    losses[me].append(str(run.pk))
                else:
                    wins[me].append(str(run.pk))
        except BaseException as error:  # surfaced below; a dead thread would hang the barrier
            errors.append(error)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=contender, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors

    all_wins = wins[0] + wins[1]
    assert len(all_wins) == ROUNDS and len(set(all_wins)) == ROUNDS, "each run must have exactly one winner"
    assert sorted(all_wins) == sorted(losses[0] + losses[1]), "the other contender lost each round"
    # Both contenders won some rounds, so the race was real rather than one always first.
    assert wins[0] and wins[1]
    pending_rows = FlowRunState.objects.filter(flow_run__in=[r.pk for r in runs], type=StateType.PENDING)
    assert pending_rows.count() == ROUNDS
    assert FlowRun.objects.filter(pk__in=[r.pk for r in runs], state_type=StateType.PENDING).count() == ROUNDS
