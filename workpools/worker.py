"""The worker loop behind `manage.py runworker` (the command only wires it up).

Each step returns whether it did something; the loop sleeps (in slices that watch the stop
flag) only when nothing happened. Tests drive the steps one at a time.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import IO, Any

from django.conf import settings
from django.db import close_old_connections

from runs.errors import StateConflict
from runs.models import FlowRun
from runs.services import record_run_process, set_state
from runs.states import StateType
from workpools import services
from workpools.infrastructure import Infrastructure, RunProcess, for_pool_type
from workpools.models import Worker

log = logging.getLogger(__name__)
S = StateType


class ProcessWorker:
    def __init__(
        self,
        worker: Worker,
        *,
        queue_ids: list[Any] | None = None,
        poll_interval: float = 0.5,
        prefetch_seconds: float = 0.0,
        grace: float = 30.0,
        kill_after: float = 10.0,
        run_once: bool = False,
        prewarm: bool = False,
        infrastructure: Infrastructure | None = None,
        out: IO[str] = sys.stdout,
    ) -> None:
        self.worker = worker
        self.queue_ids = queue_ids
        self.poll_interval = poll_interval
        self.prefetch_seconds = prefetch_seconds
        self.grace = grace
        self.kill_after = kill_after
        self.run_once = run_once
        self.infrastructure = infrastructure or for_pool_type(worker.pool.type, prewarm=prewarm)
        self.out = out
        self.children: dict[Any, RunProcess] = {}
        self.stopping = False
        self.force = False
        self.stop_requested_at: float | None = None
        self.last_heartbeat = 0.0
        self.claimed_any = False
        self._out_lock = threading.Lock()
        self.hostname = socket.gethostname()

    # --- output -------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        with self._out_lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} | worker {self.worker.name} - {message}\n")
            self.out.flush()

    def _child_output(self, name: str) -> Any:
        def write(line: str) -> None:
            with self._out_lock:
                self.out.write(f"{name} | {line}\n")
                self.out.flush()

        return write

    # --- signals ------------------------------------------------------------------------------

    def on_signal(self, signum: int, frame: object) -> None:
        # Only flags here: no database, no locks, no I/O.
        if self.stopping:
            self.force = True
        self.stopping = True

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        limit = self.worker.limit if self.worker.limit is not None else "none"
        self.say(
            f"started on pool {self.worker.pool.name!r} (limit {limit}, poll every {self.poll_interval:g} s); "
            "polling for work"
        )
        self.reconcile()
        backoff = 0.0
        while True:
            close_old_connections()
            try:
                did = self.reap_children()
                did |= self.handle_cancellations()
                did |= self.claim_and_start()
                self.heartbeat_if_due()
                did |= self.handle_stop()
                backoff = 0.0
            except Exception:
                # A broken step must not kill the worker (and orphan its children): log it with
                # its traceback and back off, as healthchecks does with its loops.
                log.exception("Worker loop error; retrying")
                backoff = min(30.0, (backoff or 0.5) * 2)
                self.sleep(backoff)
                continue
            if self.finished():
                break
            if not did:
                self.sleep(self.poll_interval)
        self.infrastructure.close()
        services.mark_worker_stopped(self.worker)
        close_old_connections()

    def finished(self) -> bool:
        if self.children:
            return False
        return self.stopping or (self.run_once and self.claimed_any)

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    # --- steps --------------------------------------------------------------------------------

    def claim_and_start(self) -> bool:
        """Claim due runs (if not stopping) and start a process for each. True if any started."""
        if self.stopping or (self.run_once and self.claimed_any):
            return False
        runs = services.claim_runs(self.worker, queue_ids=self.queue_ids, prefetch_seconds=self.prefetch_seconds)
        if self.run_once:
            self.claimed_any = True
        for run in runs:
            self.start(run)
        return bool(runs)

    def start(self, run: FlowRun) -> None:
        run = FlowRun.objects.with_related().get(pk=run.pk)
        self.say(f"submitting flow run {run.name!r} ({run.pk})")
        try:
            child = self.infrastructure.start(run, on_output=self._child_output(run.name))
        except Exception as error:
            # Nothing stays PENDING forever: a run that cannot start fails with the reason.
            log.exception("Could not start flow run %s", run.pk)
            self._set(run, S.FAILED, f"The worker could not start the flow run: {type(error).__name__}: {error}")
            return
        record_run_process(run, pid=child.pid, hostname=self.hostname)
        self.children[run.pk] = child

    def reap_children(self) -> bool:
        """Collect ended processes; a run its process left PENDING/RUNNING is CRASHED, one being
        cancelled is CANCELLED. True if any ended."""
        ended = [(run_id, child, code) for run_id, child in self.children.items() if (code := child.poll()) is not None]
        for run_id, child, code in ended:
            del self.children[run_id]
            run = FlowRun.objects.filter(pk=run_id).first()
            if run is None:
                continue
            if run.state_type == S.CANCELLING:
                self._set(run, S.CANCELLED, "Cancelled: the worker stopped the flow run's process.")
            elif run.state_type in (S.PENDING, S.RUNNING, S.PAUSED):
                if child.stopped_by == "shutdown":
                    why = "The worker shut down and stopped the flow run's process"
                else:
                    why = f"The flow run's process {_describe_exit(code)} while the run was {run.state_name}"
                self._set(run, S.CRASHED, f"{why}.", only_from=(S.PENDING, S.RUNNING))
            run.refresh_from_db()
            self.say(f"flow run {run.name!r} {_describe_exit(code)}; final state {run.state_name}")
        return bool(ended)

    def handle_cancellations(self) -> bool:
        """Stop the processes of runs asked to cancel: SIGTERM, then SIGKILL after kill_after.
        True if any signal was sent."""
        did = False
        if self.children:
            cancelling = set(
                FlowRun.objects.filter(pk__in=list(self.children), state_type=S.CANCELLING).values_list("pk", flat=True)
            )
            for run_id in cancelling:
                child = self.children[run_id]
                if child.term_sent_at is None:
                    self.say(f"cancelling flow run {child.run_name!r}: stopping its process")
                    child.terminate(reason="cancel")
                    did = True
        did |= self._escalate()
        return did

    def _escalate(self) -> bool:
        did = False
        now = time.monotonic()
        for child in self.children.values():
            if child.term_sent_at is not None and not child.kill_sent and now - child.term_sent_at >= self.kill_after:
                self.say(f"flow run {child.run_name!r} did not stop in {self.kill_after:g} s; killing it")
                child.kill()
                did = True
        return did

    def heartbeat_if_due(self) -> bool:
        now = time.monotonic()
        if now - self.last_heartbeat < settings.WORKER_HEARTBEAT_SECONDS:
            return False
        services.record_worker_heartbeat(self.worker)
        self.last_heartbeat = now
        return True

    def handle_stop(self) -> bool:
        """After a stop signal: let children finish within `grace`; then (or at a second
        signal) stop them. True if it signalled anything."""
        if not self.stopping or not self.children:
            return False
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
            self.say(f"finishing... waiting up to {self.grace:g} s for {len(self.children)} flow run(s)")
        if self.force or time.monotonic() - self.stop_requested_at >= self.grace:
            pending = [c for c in self.children.values() if c.term_sent_at is None]
            for child in pending:
                self.say(f"stopping flow run {child.run_name!r}")
                child.terminate(reason="shutdown")
            return bool(pending)
        return False

    def reconcile(self) -> None:
        """On start, settle runs this worker (by name) held before a restart: adopt processes
        that are still alive on this host, crash runs whose process is gone."""
        owned = FlowRun.objects.filter(worker=self.worker, state_type__in=[S.PENDING, S.RUNNING, S.CANCELLING])
        for run in owned:
            alive = run.pid and run.hostname == self.hostname and _pid_alive(run.pid)
            if alive:
                self.say(f"adopting flow run {run.name!r} (pid {run.pid}) from before the restart")
                self.children[run.pk] = RunProcess(run_id=run.pk, run_name=run.name, pid=run.pid)
            elif run.state_type == S.CANCELLING:
                self._set(run, S.CANCELLED, "Cancelled: its process was gone when the worker restarted.")
            else:
                self._set(run, S.CRASHED, "The worker restarted and the flow run's process was gone.")

    # --- helpers ------------------------------------------------------------------------------

    def _set(self, run: FlowRun, to: S, message: str, only_from: tuple[S, ...] | None = None) -> None:
        try:
            if only_from and run.state_type not in only_from:
                return
            set_state(run, to, message=message)
        except StateConflict:
            pass  # the run moved on by itself meanwhile (e.g. the engine finished it)



def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe_exit(code: int) -> str:
    if code == -1:
        return "ended (exit code unknown)"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
