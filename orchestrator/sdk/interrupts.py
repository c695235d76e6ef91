"""Stopping a flow's or a task's code from outside it: a timeout, or its run being taken away.

Python cannot kill a thread, so a `Scope` raises `Interrupted` inside the thread that entered it:
- in the main thread (where flows run) by sending it SIGALRM: the handler raises, and since
  Python retries a system call interrupted by a signal only after running the handlers, this
  also cuts short `time.sleep`, lock and future waits, and blocking socket reads;
- in any other thread (task runner threads) with PyThreadState_SetAsyncExc, which takes effect
  at the thread's next Python instruction: a task blocked in one long C call (a sleep, a read)
  notices its timeout when that call returns.

`Interrupted` is a BaseException, like KeyboardInterrupt, so the user's `except Exception`
cannot swallow it. A scope that was interrupted by its own timeout turns it into TimeoutError
when it unwinds, which the engine records as an ordinary failure; an interrupt aimed at an
outer scope passes through inner ones untouched.

`deferred()` marks code that must not be cut in half (a call to the orchestrator: a database
query stopped midway leaves its connection unusable): an interrupt that arrives meanwhile in the
main thread is raised when the block ends.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal


class Interrupted(BaseException):
    """Raised inside a scope's code to stop it. `scope` says which scope asked."""

    scope: Scope | None = None
    reason: str = "interrupted"

    def __init__(self, reason: str | None = None, scope: Scope | None = None) -> None:
        # Raised asynchronously, the class is instantiated without arguments: its class
        # attributes carry the reason and the scope.
        self.reason = reason or type(self).reason
        self.scope = scope or type(self).scope
        super().__init__(self.reason)


@dataclass
class _ThreadState:
    scopes: list[Scope] = field(default_factory=list)
    pending: list[Interrupted] = field(default_factory=list)  # main thread: raised by the handler
    defer_depth: int = 0
    async_target: Scope | None = None  # other threads: whose async exception is queued


_lock = threading.Lock()
_states: dict[int, _ThreadState] = {}
_handler_installed = False
_previous_handler: Any = None


def _main_ident() -> int | None:
    return threading.main_thread().ident


def _raise_pending(state: _ThreadState) -> None:
    """Raise the outermost pending interrupt of the main thread (an outer scope's interrupt
    unwinds the inner ones too, so the rest need not be raised)."""
    if not state.pending or state.defer_depth:
        return
    live = [p for p in state.pending if p.scope is not None and p.scope.active and p.scope in state.scopes]
    state.pending.clear()
    if live:
        raise min(live, key=lambda p: state.scopes.index(p.scope))  # type: ignore[arg-type]  # the pending entries are Interrupted exceptions


def _on_sigalrm(signum: int, frame: Any) -> None:
    # Runs in the main thread between two instructions. It takes no lock: the main thread may
    # hold _lock right now, and list operations are atomic under the GIL.
    state = _states.get(_main_ident() or 0)
    if state is None or not state.pending:
        if callable(_previous_handler):
            _previous_handler(signum, frame)
        return
    _raise_pending(state)


def _install_handler() -> None:
    """Install the SIGALRM handler once, from the main thread, for the life of the process
    (restoring the default later could let a late signal terminate the process)."""
    global _handler_installed, _previous_handler
    if _handler_installed:
        return
    _previous_handler = signal.signal(signal.SIGALRM, _on_sigalrm)
    _handler_installed = True


def _set_async_exc(ident: int, exc_class: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc_class) if exc_class else None
    )


class Scope:
    """A region of code in one thread that another thread, or its own timer, may stop.

    with Scope(timeout=5, timeout_message="Flow run exceeded its timeout of 5 s"):
        fn()   # TimeoutError after 5 s; Interrupted when someone calls scope.interrupt()
    """

    def __init__(self, *, timeout: float | None = None, timeout_message: str = "Timed out") -> None:
        self.timeout = timeout
        self.timeout_message = timeout_message
        self.active = False
        self.interrupted = False
        self.timed_out = False
        self.thread: int = 0
        self.in_main_thread = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Scope:
        self.thread = threading.get_ident()
        self.in_main_thread = threading.current_thread() is threading.main_thread()
        if self.in_main_thread:
            _install_handler()
        with deferred(), _lock:
            _states.setdefault(self.thread, _ThreadState()).scopes.append(self)
            self.active = True
        if self.timeout is not None:
            self._timer = threading.Timer(self.timeout, self._time_out)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _time_out(self) -> None:
        self.interrupt(self.timeout_message, timed_out=True)

    def interrupt(self, reason: str, *, timed_out: bool = False) -> bool:
        """Stop the scope's code (from any thread). Returns False when it already ended or
        was already interrupted."""
        with _lock:
            if not self.active or self.interrupted:
                return False
            self.interrupted = True
            self.timed_out = timed_out
            state = _states[self.thread]
            if self.in_main_thread:
                state.pending.append(Interrupted(reason, self))
                signal.pthread_kill(self.thread, signal.SIGALRM)
            else:
                exc_class = type("Interrupted", (Interrupted,), {"reason": reason, "scope": self})
                state.async_target = self
                _set_async_exc(self.thread, exc_class)
        return True

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if self._timer is not None:
            self._timer.cancel()
        with deferred(), _lock:
            self.active = False
            state = _states[self.thread]
            state.scopes.remove(self)
            state.pending = [p for p in state.pending if p.scope is not self]
            if isinstance(exc, Interrupted):
                state.async_target = None  # whatever was queued has been raised
            elif state.async_target is self:
                # Our interrupt was queued but the code finished first: take it back, so it
                # does not go off later in code outside this scope.
                _set_async_exc(self.thread, None)
                state.async_target = None
            if not state.scopes and not state.defer_depth:
                del _states[self.thread]
        if isinstance(exc, Interrupted) and exc.scope is self and self.timed_out:
            raise TimeoutError(self.timeout_message) from None
        return False


@contextmanager
def deferred() -> Iterator[None]:
    """Hold back interrupts of the main thread while the block runs; raise one that arrived
    meanwhile when it ends. Elsewhere it does nothing (see the module docstring)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ident = threading.get_ident()
    state = _states.setdefault(ident, _ThreadState())
    state.defer_depth += 1
    try:
        yield
    finally:
        state.defer_depth -= 1
        if not state.defer_depth:
            if not state.scopes and _states.get(ident) is state:
                del _states[ident]
            _raise_pending(state)
