"""The business rules of work pools, queues and workers, by concern:

- pools.py     pools and queues (create, pause, limits, delete) and routing runs to a queue
- workers.py   registering workers and their heartbeats
- claiming.py  a worker claiming due runs within every limit
- waiting.py   waiting for work: wake-ups and due times (the direct worker's idle wait, the HTTP long poll)
- reaper.py    recovering runs whose process or worker died without saying so
- configuring.py  a pool's base job template and default job variables
"""

from workpools.services.claiming import (
    claim_runs,
    runs_to_start,
    unstarted_runs,
)
from workpools.services.configuring import update_work_pool
from workpools.services.pools import (
    create_work_pool,
    create_work_queue,
    delete_work_pool,
    delete_work_queue,
    get_work_pool,
    get_work_queue,
    get_work_queues,
    route_to_queue,
    set_concurrency_limit,
    set_work_pool_paused,
    set_work_queue_paused,
)
from workpools.services.reaper import recover_lost_runs
from workpools.services.waiting import RunWaiter, next_due_at, wait_for_due_runs
from workpools.services.workers import mark_worker_stopped, record_worker_heartbeat, register_worker

__all__ = [
    "RunWaiter",
    "claim_runs",
    "create_work_pool",
    "create_work_queue",
    "delete_work_pool",
    "delete_work_queue",
    "get_work_pool",
    "get_work_queue",
    "get_work_queues",
    "mark_worker_stopped",
    "next_due_at",
    "recover_lost_runs",
    "record_worker_heartbeat",
    "register_worker",
    "route_to_queue",
    "runs_to_start",
    "set_concurrency_limit",
    "set_work_pool_paused",
    "set_work_queue_paused",
    "unstarted_runs",
    "update_work_pool",
    "wait_for_due_runs",
]
