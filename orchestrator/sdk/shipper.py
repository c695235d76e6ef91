"""Shipping one flow run's log lines to the orchestrator, without losing any while the run lives.

Lines wait in a bounded buffer in memory; past MAX_BUFFERED_LINES (the orchestrator cannot be
reached for a while and the flow keeps logging) they go to a spill file in the run's temporary
directory (TMPDIR) and come back from it in order. A background thread sends them in batches
(BATCH_SIZE lines, or FLUSH_SECONDS after the first waiting one). A batch that cannot be stored
because the orchestrator is unreachable (a database restart, a network error) is sent again,
with backoff, until it is; only a batch the orchestrator refuses outright (its run is gone)
is dropped, with a line on stderr. `flush()` waits until every line added before it is stored:
the engine flushes before it records the run's final state, so a run that ended has its logs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections import deque
from datetime import datetime
from typing import IO, Any

from orchestrator.client.base import LogEntry, OrchestratorClient, Unreachable
from orchestrator.core.errors import OrchestratorError

# A flow that logs 10,000 lines makes ten round trips, not 10,000; a quiet one still shows its
# lines within about a second.
BATCH_SIZE = 1000
FLUSH_SECONDS = 1.0
# Lines held in memory while they cannot be sent; more go to the spill file
# (ORCHESTRATOR_LOG_BUFFER_LINES overrides it, for a small flow process or a test).
MAX_BUFFERED_LINES = int(os.environ.get("ORCHESTRATOR_LOG_BUFFER_LINES") or 20_000)
# Waits between two tries of a batch the orchestrator could not store.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0


def _say(text: str) -> None:
    """A line on the process's own stderr (not a captured sys.stderr): the worker relays it."""
    (sys.__stderr__ or sys.stderr).write(text)


def is_permanent(error: BaseException) -> bool:
    """The orchestrator answered and refused the batch (bad record, run gone, key revoked):
    sending it again cannot help. Anything else (unreachable, lost connection) may pass later."""
    return isinstance(error, OrchestratorError) and not isinstance(error, Unreachable)


class LogShipper:
    """Ships one flow run's lines (see the module docstring)."""

    def __init__(
        self,
        client: OrchestratorClient,
        *,
        run_id: str = "",
        batch_size: int = BATCH_SIZE,
        flush_seconds: float = FLUSH_SECONDS,
        max_buffered: int = MAX_BUFFERED_LINES,
        spill_dir: str | None = None,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.max_buffered = max_buffered
        self.spill_dir = spill_dir
        self.batches_sent = 0
        self.lines_sent = 0
        self.lines_dropped = 0
        self.lines_spilled = 0
        self._buffer: deque[LogEntry] = deque()
        self._spill: IO[str] | None = None
        self._spill_path = ""
        self._spill_read = 0  # offset of the next spilled line to read
        self._spill_pending = 0  # spilled lines not read back yet
        self._added = 0
        self._done = 0  # lines stored (or dropped) so far, in order
        self._first_waiting_at: float | None = None
        self._flush_to = 0  # a flush waits for the lines up to here
        self._stopping = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
        self._thread.start()

    # --- the flow's side ----------------------------------------------------------------------

    def add(self, entry: LogEntry) -> None:
        with self._cond:
            self._added += 1
            if self._first_waiting_at is None:
                self._first_waiting_at = time.monotonic()
                self._cond.notify_all()  # the thread now waits FLUSH_SECONDS at most
            if self._spill_pending or len(self._buffer) >= self.max_buffered:
                # Keep the order: once lines spill, the next ones follow them to the file.
                self._write_spill(entry)
            else:
                self._buffer.append(entry)
            if len(self._buffer) + self._spill_pending >= self.batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every line added so far is stored; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._added
            self._cond.notify_all()  # send now, not FLUSH_SECONDS later
            self._flush_to = max(self._flush_to, target)
            while self._done < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Send what is left (trying for up to `timeout` seconds) and stop."""
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(5.0)
        left = self._added - self._done
        if self.lines_spilled:
            _say(
                f"{self.lines_spilled} log line(s) of the run waited in a spill file while the orchestrator "
                "was unreachable.\n"
            )
        if left:
            _say(f"Could not store {left} log line(s) of the run: the orchestrator was unreachable.\n")
        self._remove_spill()

    # --- the shipping thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                self._send(batch)
        finally:
            self.client.release_thread()

    def _next_batch(self) -> list[LogEntry] | None:
        """The next lines to send, once a batch is full, its first line FLUSH_SECONDS old, or a
        flush asks; None when stopping with nothing left."""
        with self._cond:
            while True:
                waiting = len(self._buffer) + self._spill_pending
                if self._stopping:
                    if not waiting:
                        return None
                    break
                if waiting >= self.batch_size or (waiting and self._flush_to > self._done):
                    break
                if waiting and self._first_waiting_at is not None:
                    left = self._first_waiting_at + self.flush_seconds - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                else:
                    self._cond.wait()
            batch: list[LogEntry] = []
            while self._buffer and len(batch) < self.batch_size:
                batch.append(self._buffer.popleft())
            if len(batch) < self.batch_size and self._spill_pending:
                batch.extend(self._read_spill(self.batch_size - len(batch)))
            self._first_waiting_at = time.monotonic() if (self._buffer or self._spill_pending) else None
            return batch

    def _send(self, batch: list[LogEntry]) -> None:
        delay = RETRY_FIRST_SECONDS
        reported = False
        while True:
            try:
                self.client.send_logs(batch)
            except Exception as error:
                if is_permanent(error):
                    _say(f"Could not store {len(batch)} log line(s) of the run: {type(error).__name__}: {error}\n")
                    self._settle(len(batch), dropped=True)
                    return
                if not reported:
                    _say(
                        f"Could not store {len(batch)} log line(s) of the run yet ({type(error).__name__}: {error}); "
                        "retrying\n"
                    )
                    reported = True
                with self._cond:
                    if self._stopping:
                        return  # close() gave up waiting: the lines are reported as lost there
                    self._cond.wait(delay)
                delay = min(RETRY_MAX_SECONDS, delay * 2)
            else:
                self.batches_sent += 1
                self.lines_sent += len(batch)
                self._settle(len(batch), dropped=False)
                return

    def _settle(self, lines: int, *, dropped: bool) -> None:
        with self._cond:
            self._done += lines
            if dropped:
                self.lines_dropped += lines
            self._cond.notify_all()

    # --- the spill file (called with the lock held) -------------------------------------------

    def _write_spill(self, entry: LogEntry) -> None:
        if self._spill is None:
            fd, self._spill_path = tempfile.mkstemp(
                prefix=f"orchestrator-logs-{self.run_id or 'run'}-", suffix=".jsonl", dir=self.spill_dir
            )
            self._spill = os.fdopen(fd, "w+", encoding="utf-8")
            self._spill_read = 0
        record = {**entry.__dict__, "timestamp": entry.timestamp.isoformat()}
        self._spill.seek(0, os.SEEK_END)
        self._spill.write(json.dumps(record) + "\n")
        self._spill_pending += 1
        self.lines_spilled += 1

    def _read_spill(self, count: int) -> list[LogEntry]:
        assert self._spill is not None
        self._spill.flush()
        self._spill.seek(self._spill_read)
        entries: list[LogEntry] = []
        while len(entries) < count and self._spill_pending:
            line = self._spill.readline()
            if not line:
                break
            record: dict[str, Any] = json.loads(line)
            record["timestamp"] = datetime.fromisoformat(record["timestamp"])
            entries.append(LogEntry(**record))
            self._spill_pending -= 1
        self._spill_read = self._spill.tell()
        if not self._spill_pending:
            # Everything came back: start the file afresh, so it never grows past one outage.
            self._spill.seek(0)
            self._spill.truncate()
            self._spill_read = 0
        return entries

    def _remove_spill(self) -> None:
        with self._cond:
            if self._spill is not None:
                self._spill.close()
                self._spill = None
                try:
                    os.unlink(self._spill_path)
                except OSError:
                    pass
