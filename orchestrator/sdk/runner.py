"""The task runner: `task.submit()` runs a task run on a pool of threads and returns a future."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from typing import Any


class TaskRunFuture:
    """A task run that was submitted: `result()` waits for it and returns its value or raises
    its exception."""

    def __init__(self, future: Future[Any], task_run_name: str) -> None:
        self._future = future
        self.task_run_name = task_run_name
        self.retrieved = False  # someone asked for the outcome, so a failure is theirs to handle

    def result(self, timeout: float | None = None) -> Any:
        self.retrieved = True
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self.retrieved = True
        return self._future.exception(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the task run finished (or `timeout` seconds). Returns whether it did."""
        wait_for([self._future], timeout)
        return self._future.done()

    def done(self) -> bool:
        return self._future.done()

    def __repr__(self) -> str:
        return f"<TaskRunFuture {self.task_run_name!r} {'done' if self.done() else 'running'}>"


class ThreadTaskRunner:
    """Runs submitted functions on up to `max_workers` daemon threads, each in a copy of the
    submitter's context (so the code knows its flow run). Daemon threads, unlike a
    ThreadPoolExecutor's, never keep a finished script alive while a timed-out task still
    sleeps. `on_thread_exit` runs in each thread as it ends (to close its database
    connection)."""

    name = "ThreadTaskRunner"

    def __init__(self, *, max_workers: int, on_thread_exit: Callable[[], None]) -> None:
        self.max_workers = max_workers
        self.on_thread_exit = on_thread_exit
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._waiting_items = 0
        self._idle_threads = 0

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self._work.put((future, contextvars.copy_context(), fn))
        with self._lock:
            self._waiting_items += 1
            # Start a thread when more items wait than threads are idle, up to the limit.
            if self._waiting_items > self._idle_threads and len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._work_loop, name=f"task-runner-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _work_loop(self) -> None:
        try:
            while True:
                with self._lock:
                    self._idle_threads += 1
                item = self._work.get()
                with self._lock:
                    self._idle_threads -= 1
                    if item is not None:
                        self._waiting_items -= 1
                if item is None:
                    return
                future, context, fn = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = context.run(fn)
                except BaseException as error:  # the future carries it, Interrupted included
                    future.set_exception(error)
                else:
                    future.set_result(result)
        finally:
            self.on_thread_exit()

    def shutdown(self, *, wait: bool) -> None:
        """Let the threads end once they are idle; with `wait`, wait for them (a moment: every
        task is done by then). Busy threads of timed-out tasks end when their task does."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join(timeout=5)
