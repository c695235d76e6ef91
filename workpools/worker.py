"""The worker loop behind `manage.py runworker` (the command only wires it up).

Each step returns whether it did something; the loop sleeps (in slices that watch the stop
flag) only when nothing happened. Tests drive the steps one at a time.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
import threading
import time
from typing import IO, Any

from orchestrator.client import ClaimedRun, FlowRunInfo, OrchestratorClient, WorkerInfo
from orchestrator.client.http import KEY_VARIABLE, URL_VARIABLE
from orchestrator.core.errors import NotFound, OrchestratorError, StateConflict
from orchestrator.core.states import StateType
from workpools.infrastructure import Infrastructure, RunHandle, for_pool_type
from workpools.liveness import ClaimBudget, HeartbeatThread, OutputRelay

log = logging.getLogger(__name__)
S = StateType
UNFINISHED = [S.PENDING, S.RUNNING, S.CANCELLING]
# With wake-ups, an idle worker with no child to watch looks for work on its own only this often
# (a safety net: new runs, freed slots and resumed pools wake it at once).
IDLE_WAIT_SECONDS = 5.0
# Waits are cut in slices this long so a stop signal is noticed promptly.
STOP_CHECK_SECONDS = 0.5
# A flow process's console line: "12:14:30.143 | WARNING | Task run 'x' - text".
_LOG_LEVEL = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \| (\w+)\s*\|")
_SHOWN_WHEN_QUIET = {"WARNING", "ERROR", "CRITICAL"}


class WorkerLoop:
    """The loop of one worker. It reaches the orchestrator only through `client` (direct or
    HTTP), so the same loop runs beside the database or on a machine without one."""

    def __init__(
        self,
        worker: WorkerInfo,
        *,
        client: OrchestratorClient,
        poll_interval: float = 0.5,
        prefetch_seconds: float = 0.0,
        long_poll: float = 0.0,
        grace: float = 30.0,
        kill_after: float = 10.0,
        run_once: bool = False,
        prewarm: bool = False,
        infrastructure: Infrastructure | None = None,
        out: IO[str] = sys.stdout,
        output_max_bytes: int | None = None,
        quiet: bool = False,
    ) -> None:
        self.worker = worker
        self.client = client
        self.poll_interval = poll_interval
        self.prefetch_seconds = prefetch_seconds
        self.long_poll = long_poll  # seconds a claim may wait server-side while the worker is idle
        self.grace = grace
        self.kill_after = kill_after
        self.run_once = run_once
        self.infrastructure = infrastructure or for_pool_type(worker.pool_type, prewarm=prewarm)
        self.infrastructure.set_worker(worker)
        # What the flow processes need to reach the orchestrator as this worker does.
        self.infrastructure.set_transport_env(
            {**client.environment(), "RUN_HEARTBEAT_SECONDS": f"{worker.run_heartbeat_seconds:g}"}
        )
        self.out = out
        self.quiet = quiet  # the flows' output: only warnings and errors
        self.children: dict[str, RunHandle] = {}
        self.stopping = False
        self.force = False
        self.stop_requested_at: float | None = None
        self.last_heartbeat = 0.0
        self.claimed_any = False
        self.exit_code = 0  # 1 when the worker stopped because it could not go on
        self._out_lock = threading.Lock()
        self.hostname = socket.gethostname()
        # Claim no more than can be started before the runs' lease (their heartbeat) runs out.
        self.budget = ClaimBudget(worker.run_heartbeat_seconds)
        if output_max_bytes is None:
            from django.conf import settings

            output_max_bytes = settings.WORKER_OUTPUT_MAX_BYTES
        self.output_max_bytes = output_max_bytes

    # --- output -------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        with self._out_lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} | worker {self.worker.name} - {message}\n")
            self.out.flush()

    def _child_output(self, name: str) -> Any:
        level = ["INFO"]  # of the last log line: a traceback's lines go with the line they follow

        def write(line: str) -> None:
            if self.quiet:
                match = _LOG_LEVEL.match(line)
                if match:
                    level[0] = match.group(1)
                elif line.startswith("Traceback"):
                    level[0] = "ERROR"
                if level[0] not in _SHOWN_WHEN_QUIET:
                    return
            with self._out_lock:
                self.out.write(f"{name} | {line}\n")
                self.out.flush()

        return OutputRelay(name, write, max_bytes=self.output_max_bytes)

    # --- signals ------------------------------------------------------------------------------

    def on_signal(self, signum: int, frame: object) -> None:
        # Only flags here: no database, no network, no locks, no I/O.
        if self.stopping:
            self.force = True
        self.stopping = True

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        # The launcher first, so "polling for work" means it: the first run is a fork too.
        self.infrastructure.prepare()
        limit = self.worker.limit if self.worker.limit is not None else "none"
        woken = f", woken by {self.client.wakeups} wake-ups" if self.client.wakeups else ""
        self.say(
            f"started on pool {self.worker.pool_name!r} (limit {limit}, poll every {self.poll_interval:g} s{woken}); "
            "polling for work"
        )
        try:
            self.reconcile()
        except Exception as error:
            # The runs it cannot settle now are the reaper's: their heartbeats stop.
            self._log_error("Could not settle the runs held before a restart", error)
        # Liveness from a thread of its own: a loop busy starting runs never looks dead.
        heartbeat = HeartbeatThread(self.client, self.worker)
        heartbeat.start()
        backoff = 0.0
        while True:
            self.client.idle()
            began = time.monotonic()
            try:
                did = self.reap_children()
                did |= self.record_processes()
                did |= self.handle_cancellations()
                did |= self.claim_and_start()
                did |= self.handle_stop()
                backoff = 0.0
            except Exception as error:
                # A broken step must not kill the worker (and orphan its children): log it and
                # back off; the next round takes every step again, nothing is dropped.
                backoff = min(30.0, (backoff or 0.5) * 2)
                self._log_error(f"Worker loop error; retrying in {backoff:g} s", error)
                self.sleep(backoff)
                continue
            if self.finished():
                break
            if not did:
                self.wait_for_work(began)
        self.infrastructure.close()
        heartbeat.stop()
        try:
            self.client.mark_worker_stopped(self.worker)
        except Exception as error:
            self._log_error("Could not tell the orchestrator that the worker stopped", error)
        self.client.idle()

    def finished(self) -> bool:
        if self.children:
            return False
        return self.stopping or (self.run_once and self.claimed_any)

    def wait_for_work(self, began: float) -> None:
        """Nothing happened in the round that began at `began`: wait until the next one. That
        is poll_interval after `began`, or IDLE_WAIT_SECONDS when the client has wake-ups and no
        child needs watching; a wake-up (a run to claim in the pool) or the next scheduled run
        coming due ends the wait at once. A long poll already waited on the server. Slices of
        at most STOP_CHECK_SECONDS watch the stop flag."""
        bound = self.poll_interval
        if self.client.wakeups and not self.children:
            bound = max(bound, IDLE_WAIT_SECONDS)
        deadline = began + bound
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            timeout = min(left, STOP_CHECK_SECONDS)
            if self.client.wait_for_runs(self.worker, timeout=timeout, prefetch_seconds=self.prefetch_seconds):
                return

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    # --- steps --------------------------------------------------------------------------------

    def claim_and_start(self) -> bool:
        """Claim due runs (if not stopping) and start a process for each. True if any started.
        While it has nothing else to watch, the claim may wait server-side (long poll)."""
        if self.stopping or (self.run_once and self.claimed_any):
            return False
        if self.worker.limit is not None and len(self.children) >= self.worker.limit:
            # At its --limit: no claim (and no query) until a child ends; the orchestrator
            # enforces the limit anyway, this only spares it a claim that must come back empty.
            return False
        wait = self.long_poll if not self.children else 0.0
        try:
            runs = self.client.claim_runs(
                self.worker, prefetch_seconds=self.prefetch_seconds, wait_seconds=wait, max_runs=self.budget.runs()
            )
        except NotFound as error:
            # A --queue deleted (or the worker's pool or row gone): polling on would claim
            # nothing forever while the worker shows ONLINE. Say so and stop (exit code 1).
            self.say(f"{error} Stopping: restart the worker with queues that exist.")
            self.stopping = True
            self.exit_code = 1
            return False
        if self.run_once:
            self.claimed_any = True
        started = [run for run in runs if run.id not in self.children]  # handed out again: already ours
        began = time.monotonic()
        for run in started:
            self.start(run)
        self.budget.measured(len(started), time.monotonic() - began)
        return bool(started)

    def start(self, run: ClaimedRun) -> None:
        self.say(f"submitting flow run {run.name!r} ({run.id})")
        try:
            if run.configuration_error:
                raise ValueError(run.configuration_error)
            child = self.infrastructure.start(
                run, on_output=self._child_output(run.name), credentials=self.run_credentials(run)
            )
        except Exception as error:
            # Nothing stays PENDING forever: a run that cannot start fails with the reason.
            log.exception("Could not start flow run %s", run.id)
            self._set(
                run.id, S.PENDING, S.FAILED, f"The worker could not start the flow run: {type(error).__name__}: {error}"
            )
            return
        self.children[run.id] = child
        self.record_processes()

    def run_credentials(self, run: ClaimedRun) -> dict[str, str] | None:
        """What the run's job uses to reach the orchestrator instead of the worker's own
        credentials: a token that acts on this run only (None: it shares the worker's database
        connection settings, a process beside a direct worker)."""
        transport = self.client.environment()
        if not (self.infrastructure.runs_remotely or URL_VARIABLE in transport):
            return None
        credentials = {KEY_VARIABLE: self.client.issue_run_token(run.id)}
        if URL_VARIABLE in transport:
            credentials[URL_VARIABLE] = transport[URL_VARIABLE]
        return credentials

    def record_processes(self) -> bool:
        """Record where each new child runs (retried on the next round if the orchestrator
        could not be told). True if any was recorded."""
        did = False
        for run_id, child in self.children.items():
            if not child.recorded:
                if child.pid:
                    self.client.record_run_process(run_id, pid=child.pid, hostname=self.hostname)
                child.recorded = did = True
        return did

    def reap_children(self) -> bool:
        """Collect ended processes; a run its process left PENDING/RUNNING is CRASHED, one being
        cancelled is CANCELLED. True if any ended. A child stays watched until its run is
        settled, so an orchestrator that cannot be reached just delays this to the next round."""
        ended = [(run_id, child, code) for run_id, child in self.children.items() if (code := child.poll()) is not None]
        for run_id, child, code in ended:
            try:
                run = self.client.read_flow_run(run_id)
            except NotFound:
                del self.children[run_id]
                continue
            if run.state_type == S.CANCELLING:
                message = f"Cancelled: the worker stopped the flow run's {child.what}."
                run = self._set(run_id, S.CANCELLING, S.CANCELLED, message) or self.client.read_flow_run(run_id)
            elif run.state_type in (S.PENDING, S.RUNNING):
                if child.stopped_by == "shutdown":
                    why = f"The worker shut down and stopped the flow run's {child.what}"
                else:
                    why = f"The flow run's {child.what} {child.describe_exit(code)} while the run was {run.state_name}"
                run = self._set(run_id, run.state_type, S.CRASHED, f"{why}.") or self.client.read_flow_run(run_id)
            del self.children[run_id]
            self.say(f"flow run {run.name!r} {child.describe_exit(code)}; final state {run.state_name}")
            try:
                child.release()
            except Exception as error:
                self._log_error(f"Could not clean up after flow run {run.name!r}", error)
        return bool(ended)

    def handle_cancellations(self) -> bool:
        """Stop the processes of runs asked to cancel: SIGTERM, then SIGKILL after kill_after.
        True if any signal was sent."""
        did = False
        if self.children:
            cancelling = {run.id for run in self.client.read_held_runs(self.worker, states=[S.CANCELLING])}
            for run_id in cancelling & set(self.children):
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
        if now - self.last_heartbeat < self.worker.heartbeat_seconds:
            return False
        self.client.heartbeat_worker(self.worker)
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
        held = self.client.read_held_runs(self.worker, states=UNFINISHED)
        found = (
            self.infrastructure.adopt(
                held, hostname=self.hostname, worker_name=self.worker.name, on_output_for=self._child_output
            )
            if held
            else {}
        )
        for run in held:
            child = found.get(run.id)
            what = self.infrastructure.what
            if child is not None:
                where = f"pid {child.pid}" if child.pid else child.what
                self.say(f"adopting flow run {run.name!r} ({where}) from before the restart")
                self.children[run.id] = child
            elif run.state_type == S.CANCELLING:
                self._set(
                    run.id, run.state_type, S.CANCELLED, f"Cancelled: its {what} was gone when the worker restarted."
                )
            else:
                self._set(
                    run.id, run.state_type, S.CRASHED, f"The worker restarted and the flow run's {what} was gone."
                )

    # --- helpers ------------------------------------------------------------------------------

    def _set(self, run_id: str, expected: str, to: str, message: str) -> FlowRunInfo | None:
        """Move the run from `expected` and return it; None when it moved on by itself
        meanwhile (e.g. the engine finished it)."""
        try:
            return self.client.set_flow_run_state(run_id, to, expected=expected, message=message)
        except StateConflict:
            return None

    def _log_error(self, what: str, error: Exception) -> None:
        if isinstance(error, OrchestratorError):
            # The network or the orchestrator said no (Unreachable, a revoked key, ...): its
            # message is a sentence for the operator, not a bug, so no traceback.
            log.warning("%s: %s", what, error)
        else:
            log.exception("%s", what)
