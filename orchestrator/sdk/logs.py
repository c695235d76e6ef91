"""Run logs: a logger bound to a flow or task run, its one-line console format, shipping its
records to the run's logs in the database in batches, and print() capture (`log_prints`).

    12:14:30.143 | INFO    | Task run 'log_message-dd6ef374-0' - Hello Leo!
"""

from __future__ import annotations

import builtins
import logging
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from orchestrator.client.base import LogEntry, OrchestratorClient
from orchestrator.sdk import masking
from orchestrator.sdk.shipper import BATCH_SIZE, FLUSH_SECONDS, LogShipper

RUN_LOGGER = "orchestrator.runs"
ENGINE_LOGGER = f"{RUN_LOGGER}.engine"
FLOW_RUN_LOGGER = f"{RUN_LOGGER}.flow_run"
TASK_RUN_LOGGER = f"{RUN_LOGGER}.task_run"


class RunLogger(logging.LoggerAdapter):
    """A logger bound to one run: its records carry the run's ids and the label shown on the
    console ("Flow run 'certain-cormorant'")."""

    def __init__(self, name: str, *, label: str, flow_run_id: str, task_run_id: str | None = None) -> None:
        super().__init__(
            logging.getLogger(name), {"run_label": label, "flow_run_id": flow_run_id, "task_run_id": task_run_id}
        )

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(run_label)s - %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "run_label"):
            record.run_label = record.name
        return super().format(record)


class ConsoleHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (a test may be capturing it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(masking.mask(self.format(record)) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


__all__ = ["BATCH_SIZE", "FLUSH_SECONDS", "LogShipper"]

# How long the end of a run waits for its last lines to be stored (the orchestrator may be
# restarting): the run's final state is recorded only after them.
FINAL_FLUSH_SECONDS = 600.0

_shippers: dict[str, LogShipper] = {}


class ShippingHandler(logging.Handler):
    """Hands each record of a run logger to the shipper of its flow run."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        shipper = _shippers.get(getattr(record, "flow_run_id", None) or "")
        if shipper is None:
            return
        try:
            shipper.add(
                LogEntry(
                    flow_run_id=record.flow_run_id,  # type: ignore[attr-defined]  # set on the record by RunLogger.process
                    task_run_id=getattr(record, "task_run_id", None),
                    level=record.levelno,
                    logger=record.name,
                    message=masking.mask(self.format(record)),
                    timestamp=datetime.fromtimestamp(record.created, tz=UTC),
                )
            )
        except Exception:
            self.handleError(record)


@contextmanager
def shipping(client: OrchestratorClient, flow_run_id: str) -> Iterator[LogShipper]:
    """Ship the records of `flow_run_id`'s loggers while the block runs; on the way out, send
    what is left (trying for up to FINAL_FLUSH_SECONDS) and stop."""
    configure()
    shipper = LogShipper(client, run_id=flow_run_id)
    _shippers[flow_run_id] = shipper
    try:
        yield shipper
    finally:
        shipper.close(FINAL_FLUSH_SECONDS)
        if _shippers.get(flow_run_id) is shipper:
            del _shippers[flow_run_id]


def shipper_for(client: OrchestratorClient, flow_run_id: str) -> LogShipper:
    """The shipper of `flow_run_id`'s records in this process, started on first use and kept
    (a cluster worker runs many task runs of one flow run: it flushes after each, see
    orchestrator.sdk.task_runners.remote)."""
    configure()
    with _configure_lock:
        shipper = _shippers.get(flow_run_id)
        if shipper is None:
            shipper = _shippers[flow_run_id] = LogShipper(client, run_id=flow_run_id)
        return shipper


_configured = False
_configure_lock = threading.Lock()


def configure() -> None:
    """Attach the console and shipping handlers to the run loggers (once per process). They do
    not propagate: Django's root console handler would print every line twice."""
    global _configured
    if _configured:
        return
    with _configure_lock:
        if _configured:
            return
        logger = logging.getLogger(RUN_LOGGER)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        console = ConsoleHandler()
        console.setFormatter(ConsoleFormatter())
        logger.addHandler(console)
        logger.addHandler(ShippingHandler())
        _configured = True


# --- print() capture --------------------------------------------------------------------------

_print_logger: ContextVar[RunLogger | None] = ContextVar("print_logger", default=None)
_builtin_print = builtins.print
_capturing = 0
_capture_lock = threading.Lock()


def _print(*args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False) -> None:
    logger = _print_logger.get()
    if logger is not None and (file is None or file is sys.stdout):
        logger.info((" " if sep is None else sep).join(str(a) for a in args))
        return
    _builtin_print(*args, sep=sep, end=end, file=file, flush=flush)


@contextmanager
def prints_logged_to(logger: RunLogger | None) -> Iterator[None]:
    """While the block runs, print() to stdout in this context (and the task threads it starts)
    goes to `logger` instead. With None, prints stay prints. builtins.print is swapped only while
    some run captures prints; other code and threads keep printing as usual."""
    global _capturing
    if logger is None:
        token = _print_logger.set(None)
        try:
            yield
        finally:
            _print_logger.reset(token)
        return
    with _capture_lock:
        _capturing += 1
        builtins.print = _print
    token = _print_logger.set(logger)
    try:
        yield
    finally:
        _print_logger.reset(token)
        with _capture_lock:
            _capturing -= 1
            if not _capturing:
                builtins.print = _builtin_print
