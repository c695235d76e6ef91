"""What keeps a busy worker from looking dead: its heartbeat beats from a thread of its own,
whatever the loop is doing (starting 500 runs takes a while), and it claims no more runs than
it can start before their lease runs out (a claimed run that is not started within it looks
like a run whose process died, and the reaper crashes it).

The output relay cap lives here too: what a flow prints goes through the worker's own output
(often a log file); past a cap per run, the rest is dropped with one line saying so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from orchestrator.client import OrchestratorClient, WorkerInfo

log = logging.getLogger(__name__)


class HeartbeatThread:
    """Heartbeats `worker` every heartbeat_seconds from its own thread until stopped. A beat
    that fails is logged once per outage and tried again at the next interval."""

    def __init__(self, client: OrchestratorClient, worker: WorkerInfo) -> None:
        self.client = client
        self.worker = worker
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        failing = False
        try:
            while True:
                try:
                    self.client.heartbeat_worker(self.worker)
                    self.beats += 1
                    failing = False
                except Exception as error:
                    if not failing:
                        log.warning(
                            "Worker heartbeat failed (tried again every %g s): %s", self.worker.heartbeat_seconds, error
                        )
                    failing = True
                if self._stop.wait(self.worker.heartbeat_seconds):
                    return
        finally:
            self.client.release_thread()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class ClaimBudget:
    """How many runs a claim may take: what this worker can start within one run-heartbeat
    interval (the shortest lease a claimed run can have: RUN_HEARTBEAT_SECONDS times at least
    one miss), at the pace it has been starting runs (a moving average, seeded cautiously)."""

    FIRST_GUESS_SECONDS = 0.25  # per start, until the worker has measured its own
    SHARE_OF_LEASE = 0.5  # leave half the lease for a slow database or a busy machine

    def __init__(self, lease_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_seconds = lease_seconds
        self.seconds_per_start = self.FIRST_GUESS_SECONDS
        self.clock = clock

    def runs(self) -> int:
        return max(1, int(self.lease_seconds * self.SHARE_OF_LEASE / self.seconds_per_start))

    def measured(self, started: int, seconds: float) -> None:
        """`started` runs took `seconds` to start."""
        if started <= 0:
            return
        pace = max(seconds / started, 0.001)
        self.seconds_per_start = 0.7 * self.seconds_per_start + 0.3 * pace if started < 5 else pace


class OutputRelay:
    """Relays one run's output lines through `write`, up to `max_bytes`; then one line saying
    the rest is dropped (the pipe is still read to its end, so the flow never blocks on it)."""

    def __init__(self, name: str, write: Callable[[str], None], *, max_bytes: int) -> None:
        self.name = name
        self.write = write
        self.max_bytes = max_bytes
        self.relayed = 0
        self.dropped = 0

    def __call__(self, line: str) -> None:
        size = len(line.encode("utf-8", "replace")) + 1
        if self.relayed + size <= self.max_bytes:
            self.relayed += size
            self.write(line)
            return
        if not self.dropped:
            self.write(
                f"[output past {self.max_bytes} bytes is not relayed (WORKER_OUTPUT_MAX_BYTES); "
                "the run's logs are in the orchestrator]"
            )
        self.dropped += size
