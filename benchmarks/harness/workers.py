"""The parent's side of the workers: start one, ask it, notice when it dies or hangs, and never leave one behind.

A worker is a fresh interpreter (`python -m benchmarks.harness.worker`) in a session of its own, so a
Ctrl-C at the terminal reaches only the parent, which decides how the run ends. The kernel kills the
worker when the parent dies, however it dies (PR_SET_PDEATHSIG), and the worker exits when its pipe
closes. Requests and replies go over two pipes as pickled messages; the worker's stdout and stderr go to
its log file, whose last lines name the cause when it dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from backends.errors import BackendUnavailable

ROOT = Path(__file__).resolve().parents[2]
LOG_LINES = 5  # lines of the worker's output quoted when it dies
PR_SET_PDEATHSIG = 1


class WorkerFailed(Exception):
    """A worker died, hung, or its request raised; the message names the cause in one line."""


def answer(reply: dict[str, Any], on_message: Callable[[dict[str, Any]], None] | None) -> None:
    """What a worker's message that is not its answer ({"done": ...}) means, for every kind of worker: the
    case cannot run here (BackendUnavailable), the request raised (WorkerFailed), or news on the way."""
    if "unavailable" in reply:
        raise BackendUnavailable(reply["unavailable"])
    if "error" in reply:
        raise WorkerFailed(reply["error"])
    if on_message is not None:
        on_message(reply)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class WorkerProcess:
    """One running worker: `request` sends a message and returns the worker's answer. The harness uses
    only `name`, `started`, `send`, `receive`, `request`, `alive`, `close` and `kill`: a worker that runs
    elsewhere (another machine) offers the same."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name, self.log_path = name, log
        self.started = time.perf_counter()
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.harness.worker", str(req_r), str(resp_w)],
                pass_fds=(req_r, resp_w),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - called from the main thread only
            )
        os.close(req_r)
        os.close(resp_w)
        self._outbox = Connection(req_w, readable=False)
        self._inbox = Connection(resp_r, writable=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._outbox.send(message)
        except OSError:
            raise self._died() from None

    def receive(self, timeout: float, on_message: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """The answer to the request sent last. A message on the way (progress, a seed's result) goes to
        `on_message` and restarts the clock. WorkerFailed when the worker dies, hangs or its request raised;
        BackendUnavailable when the case cannot run here."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise WorkerFailed(f"no answer within {timeout:g} s (--worker-timeout); worker stopped{self._tail()}")
            ready = self._inbox.poll(min(remaining, 0.5))
            if not ready:
                if self.proc.poll() is not None:
                    raise self._died()
                continue
            try:
                reply = self._inbox.recv()
            except (EOFError, OSError):
                raise self._died() from None
            if "done" in reply:
                return reply["done"]
            answer(reply, on_message)
            deadline = time.monotonic() + timeout

    def request(
        self, message: dict[str, Any], timeout: float, on_message: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        self.send(message)
        return self.receive(timeout, on_message)

    def _died(self) -> WorkerFailed:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        return WorkerFailed(f"the worker {how}{self._tail()}")

    def _tail(self) -> str:
        """The last lines of the worker's output, folded into the one-line reason, and where the rest is."""
        try:
            lines = [ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            lines = []
        shown = " | ".join(lines[-LOG_LINES:])[-400:]
        return f" (log {self.log_path.name}: {shown})" if shown else f" (log {self.log_path.name} is empty)"

    def close(self, wait_s: float = 2.0) -> None:
        """Ask the worker to exit; kill it if it does not."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self._outbox.send({"request": "exit"})
            try:
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                self.kill()
        for conn in (self._inbox, self._outbox):
            with contextlib.suppress(OSError):
                conn.close()

    def kill(self) -> None:
        """Kill the worker and anything it started (its own session)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
