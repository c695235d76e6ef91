"""A small process supervisor for `manage.py up`: starts several programs, prefixes their
output with their names, and stops them all when one exits or on Ctrl-C / SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO


@dataclass
class Program:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None


class Supervisor:
    def __init__(self, programs: list[Program], *, out: IO[str] = sys.stdout, grace: float = 10.0) -> None:
        self.programs = programs
        self.out = out
        self.grace = grace
        self.stopping = False
        self._lock = threading.Lock()
        self._width = max(len(p.name) for p in programs)

    def on_signal(self, signum: int, frame: object) -> None:
        # Only a flag: the loop does the work.
        self.stopping = True

    def say(self, name: str, line: str) -> None:
        with self._lock:
            self.out.write(f"{name.ljust(self._width)} | {line}\n")
            self.out.flush()

    def start(self) -> None:
        for program in self.programs:
            # A session of its own: Ctrl-C reaches only us, and we stop children in order.
            program.process = subprocess.Popen(
                program.argv,
                env={**os.environ, **program.env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
            threading.Thread(target=self._pump, args=(program,), daemon=True).start()

    def _pump(self, program: Program) -> None:
        assert program.process and program.process.stdout
        for line in program.process.stdout:
            self.say(program.name, line.rstrip("\n"))

    def run(self) -> int:
        """Start everything and wait. Returns 0 after a requested stop, else the exit code of
        the first program that ended on its own."""
        self.start()
        code = 0
        while not self.stopping:
            for program in self.programs:
                assert program.process
                rc = program.process.poll()
                if rc is not None:
                    self.say(program.name, f"exited with code {rc}; stopping the others")
                    code = rc or 1
                    self.stopping = True
                    break
            else:
                time.sleep(0.2)
        self.stop()
        return code

    def stop(self) -> None:
        alive = [p for p in self.programs if p.process and p.process.poll() is None]
        for program in alive:
            # The program's main process only: it stops its own children in order (Celery's
            # pool processes, gunicorn's workers). Signalling the whole group made Celery log
            # ERROR lines about pool processes killed under it.
            _signal_main(program, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and any(p.process.poll() is None for p in alive):
            time.sleep(0.1)
        for program in alive:
            if program.process.poll() is None:
                self.say(program.name, "did not stop in time; killing it")
                _signal_group(program, signal.SIGKILL)
                program.process.wait()


def _signal_main(program: Program, sig: int) -> None:
    try:
        os.kill(program.process.pid, sig)  # type: ignore[union-attr]
    except ProcessLookupError:
        pass


def _signal_group(program: Program, sig: int) -> None:
    try:
        os.killpg(program.process.pid, sig)
    except ProcessLookupError:
        pass
