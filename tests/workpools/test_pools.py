from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.errors import ValidationError
from workpools.models import WorkPool
from workpools.services import create_work_pool

pytestmark = pytest.mark.django_db


def test_a_new_pool_gets_a_default_queue() -> None:
    pool = create_work_pool("my-process-pool")
    assert pool.type == "process"
    assert list(pool.queues.values_list("name", flat=True)) == ["default"]


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"name": ""}, "name", "needs a name"),
        ({"name": "p", "type": "mainframe"}, "type", "Unknown work pool type 'mainframe'"),
        ({"name": "p", "concurrency_limit": -1}, "concurrency_limit", "cannot be negative"),
    ],
)
def test_bad_pool_input_is_refused_and_nothing_is_written(kwargs: dict[str, Any], field: str, message: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(ValidationError) as excinfo:
        create_work_pool(name, **kwargs)
    assert message in excinfo.value.errors[field][0]
    assert not WorkPool.objects.exists()


def test_a_taken_pool_name_is_refused() -> None:
    create_work_pool("my-process-pool")
    with pytest.raises(ValidationError, match="already exists"):
        create_work_pool("my-process-pool")
    assert WorkPool.objects.count() == 1
