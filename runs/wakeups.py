"""Wake-ups: a run that becomes claimable in a pool wakes that pool's idle workers at once, instead
of waiting for their next poll.

Two mechanisms, picked by the database:

- PostgreSQL: NOTIFY on one channel per pool, sent *inside* the transaction that makes the run
  claimable. PostgreSQL delivers it at commit (never before: a woken worker always sees the row)
  and drops it on rollback; identical notifications of one transaction are delivered once. A
  listener holds a connection of its own with LISTEN on its pool's channel, so it works across
  hosts, for direct-transport workers and for the server side of the HTTP long poll.
- SQLite (one host, the embedded default): after commit, one UDP datagram on the loopback to every
  listener of the pool. Each listener binds a port and registers it as a file
  `$ORCHESTRATOR_HOME/wakeups/<pool id>/<port>-<pid>`, removed when it closes (and by the next
  listener if its process died).

No lost wake-ups: a listener listens *before* its owner first looks for work, and it buffers what
arrives meanwhile, so a run created while a worker is claiming makes the next `wait()` return at
once. After a lost PostgreSQL connection the listener reconnects, listens again and reports a
wake-up, since it cannot know what it missed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "orch_pool_"
# A listener checks its connection with a query when it heard nothing for this long, so a
# connection that died silently is noticed and replaced.
LIVENESS_SECONDS = 30.0
# After a failed reconnect, wait this long before the next attempt.
RECONNECT_BACKOFF_SECONDS = 1.0


def channel(pool_id: Any) -> str:
    """The pool's NOTIFY channel (an identifier: hex digits only)."""
    return CHANNEL_PREFIX + str(pool_id).replace("-", "")


def notify_pools(pool_ids: Iterable[Any]) -> None:
    """Wake the idle workers of these pools once the current transaction commits (at once when
    there is none). Call it wherever a run becomes claimable: created, back to SCHEDULED, a slot
    freed, a pool or queue resumed. Cheap, and never raises for a pool nobody listens to."""
    wanted = sorted({str(pool_id) for pool_id in pool_ids if pool_id is not None})
    if not wanted:
        return
    if connection.vendor == "postgresql":
        # Transactional: delivered at commit, dropped on rollback.
        with connection.cursor() as cursor:
            for pool_id in wanted:
                cursor.execute("SELECT pg_notify(%s, '')", [channel(pool_id)])
    else:
        # No transactional signal here: send after commit, so a woken worker sees the run.
        transaction.on_commit(partial(_signal_local, wanted))


# --- SQLite: datagrams on the loopback -------------------------------------------------------------


def _wakeup_dir(pool_id: Any) -> Path:
    return Path(settings.ORCHESTRATOR_HOME) / "wakeups" / str(pool_id)


_sender: socket.socket | None = None


def _signal_local(pool_ids: list[str]) -> None:
    global _sender
    for pool_id in pool_ids:
        try:
            names = os.listdir(_wakeup_dir(pool_id))
        except OSError:
            continue  # nobody listens to this pool
        if _sender is None:
            _sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            _sender.setblocking(False)
        for name in names:
            port = name.partition("-")[0]
            if not port.isdigit():
                continue
            with contextlib.suppress(OSError):  # a full buffer already holds a wake-up
                _sender.sendto(b"w", ("127.0.0.1", int(port)))


# --- listeners ---------------------------------------------------------------------------------------


class Listener:
    """Waits for the wake-ups of one or more pools. Not thread-safe: one owner (a worker loop, a
    long-poll request) uses it."""

    mechanism = "poll"

    def listen(self, pool_id: Any) -> None:
        """Start receiving the pool's wake-ups (before looking for its runs, so none is lost)."""

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True as soon as a wake-up came (all those waiting are
        consumed), False when the time ran out."""
        time.sleep(max(0.0, timeout))
        return False

    def close(self) -> None:
        """Stop listening and release the connection or socket."""

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalListener(Listener):
    """SQLite's listener: a UDP socket on the loopback, registered under the data directory."""

    mechanism = "local"

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.files: list[Path] = []

    def listen(self, pool_id: Any) -> None:
        folder = _wakeup_dir(pool_id)
        folder.mkdir(parents=True, exist_ok=True)
        _remove_dead(folder)
        file = folder / f"{self.port}-{os.getpid()}"
        file.touch()
        self.files.append(file)

    def wait(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not ready:
            return False
        while True:
            try:
                self.sock.recv(64)
            except (BlockingIOError, OSError):
                return True

    def close(self) -> None:
        for file in self.files:
            with contextlib.suppress(OSError):
                file.unlink()
        self.files = []
        self.sock.close()


def _remove_dead(folder: Path) -> None:
    """Drop the registrations of listeners whose process is gone (killed without closing)."""
    for file in folder.iterdir():
        pid = file.name.partition("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                file.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PostgresListener(Listener):
    """PostgreSQL's listener: a connection of its own (autocommit) with LISTEN on each pool's
    channel. It survives a database restart: a broken connection is replaced at the next wait,
    which listens again and reports a wake-up."""

    mechanism = "postgres"

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.channels: list[str] = []
        self.conn: Any = None
        self.next_attempt = 0.0
        self.last_heard = time.monotonic()
        self.reconnects = 0  # how many times it had to connect again (tests and logs read it)
        self._connect()

    def listen(self, pool_id: Any) -> None:
        name = channel(pool_id)
        if name in self.channels:
            return
        self.channels.append(name)
        if self.conn is not None:
            try:
                self.conn.execute(f'LISTEN "{name}"')
            except Exception:
                self._drop()

    def wait(self, timeout: float) -> bool:
        if self.conn is None:
            # Down: try again (bounded), and report a wake-up once back, since what was
            # notified meanwhile is lost.
            now = time.monotonic()
            if now < self.next_attempt or not self._connect():
                time.sleep(max(0.0, min(timeout, self.next_attempt - time.monotonic())))
                return False
            self.reconnects += 1
            log.info("Listening for wake-ups again after reconnecting to the database")
            return True
        try:
            got = any(True for _ in self.conn.notifies(timeout=max(0.0, timeout), stop_after=1))
            if got:
                list(self.conn.notifies(timeout=0))  # consume the rest: one claim serves them all
                self.last_heard = time.monotonic()
                return True
            if time.monotonic() - self.last_heard >= LIVENESS_SECONDS:
                self.conn.execute("SELECT 1")
                self.last_heard = time.monotonic()
            return False
        except Exception as error:
            log.warning("Lost the wake-up connection to the database (%s); reconnecting", error)
            self._drop()
            return False

    def _connect(self) -> bool:
        import psycopg

        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
            for name in self.channels:
                conn.execute(f'LISTEN "{name}"')
        except Exception as error:
            self.conn = None
            self.next_attempt = time.monotonic() + RECONNECT_BACKOFF_SECONDS
            log.debug("No wake-up connection yet: %s", error)
            return False
        self.conn = conn
        self.last_heard = time.monotonic()
        return True

    def _drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None
        self.next_attempt = 0.0

    def close(self) -> None:
        self._drop()


def postgres_conninfo(settings_dict: dict[str, Any]) -> str:
    """A libpq connection string for the database Django's `settings_dict` names."""
    from psycopg.conninfo import make_conninfo

    params: dict[str, Any] = {
        "dbname": settings_dict.get("NAME") or "",
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or None,
        "port": str(settings_dict["PORT"]) if settings_dict.get("PORT") else None,
    }
    for key, value in (settings_dict.get("OPTIONS") or {}).items():
        if isinstance(value, str | int) and key not in ("isolation_level", "pool", "server_side_binding"):
            params[key] = value
    params.setdefault("application_name", "orchestrator:wakeups")
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def listener_for(pool_ids: Iterable[Any]) -> Listener:
    """A listener for these pools on this database, already listening."""
    if connection.vendor == "postgresql":
        listener: Listener = PostgresListener(postgres_conninfo(connection.settings_dict))
    elif connection.vendor == "sqlite":
        listener = LocalListener()
    else:
        listener = Listener()
    for pool_id in pool_ids:
        listener.listen(pool_id)
    return listener
