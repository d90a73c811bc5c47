"""One rule for every interrupt (SIGINT, SIGTERM, SIGHUP), whenever it comes and however often.

Installed as early as possible (by the `-p benchmarks.pin_threads` plugin for pytest, at the top of the
sweep's main). While work runs, the first signal raises KeyboardInterrupt; a later one raises again only
after a pause (an impatient second Ctrl-C must not cut the run's own clean-up short). While the run's
folder is being finished (last records, rename, publish) signals are only noted. While its report renders,
a signal cuts the rendering short (the next command renders it). Any signal makes the run incomplete:
`received()` is what the run's end consults, never an exit status that a caught exception could hide.
A KeyboardInterrupt raised inside an at-fork hook (logging's, when a worker starts) would be swallowed with
a warning and its traceback: across a fork signals are only noted, and `check()`, called before each unit of
work, raises for them. One that reaches the top (before the run started, or after it ended) prints one line,
not a traceback.
"""

from __future__ import annotations

import contextlib
import logging  # noqa: F401 - registers its at-fork hooks before ours, so ours enclose them
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REPEAT_AFTER_S = 2.0  # a second signal this long after the first raises again: the user means it

_received: list[tuple[int, float]] = []
_mode = "work"  # "work", "defer" or "render"
_before_fork: list[str] = []  # the mode each fork in progress interrupted
_fork_hooks: list[bool] = []  # registered once per process


def _handler(signum: int, frame: Any) -> None:
    now = time.monotonic()
    first = not _received
    _received.append((signum, now))
    if _mode == "defer":
        return
    if _mode == "render" or first or now - _received[-2][1] >= REPEAT_AFTER_S:
        raise KeyboardInterrupt(name(signum))


def install() -> None:
    """Handle the signals (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in HANDLED:
        signal.signal(sig, _handler)
    sys.excepthook = _one_line
    if not _fork_hooks:
        _fork_hooks.append(True)
        os.register_at_fork(before=_fork_begins, after_in_parent=_fork_ended)


def _fork_begins() -> None:
    global _mode
    _before_fork.append(_mode)
    _mode = "defer"


def _fork_ended() -> None:
    global _mode
    if _before_fork:
        _mode = _before_fork.pop()


def _one_line(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    """An interrupt that no one caught (the run had not started, or had ended): one line, not a traceback."""
    if issubclass(kind, KeyboardInterrupt) and _received:
        print(f"rnn-bench: interrupted by {value or 'SIGINT'}", file=sys.stderr)
    else:
        sys.__excepthook__(kind, value, tb)


def check() -> None:
    """Raise KeyboardInterrupt if a signal came while work ran (its own KeyboardInterrupt may have been swallowed)."""
    if _received:
        raise KeyboardInterrupt(name(_received[0][0]))


def received() -> list[str]:
    """The signals received so far, by name."""
    return [name(s) for s, _ in _received]


def reset() -> None:
    """Forget earlier signals (a process that runs several runs, e.g. the tests)."""
    global _mode
    _received.clear()
    _mode = "work"


def name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def settle() -> None:
    """The run is over and its process about to exit: later signals are only noted (nothing is left to stop,
    and an interrupt raised while the interpreter shuts down can abort it)."""
    global _mode
    _mode = "defer"


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Signals are noted, not raised, inside (finishing the run's folder must not be cut in half)."""
    global _mode
    before, _mode = _mode, "defer"
    try:
        yield
    finally:
        _mode = before


@contextlib.contextmanager
def rendering() -> Iterator[None]:
    """A signal inside raises KeyboardInterrupt at once (the report can be made again later)."""
    global _mode
    before, _mode = _mode, "render"
    try:
        yield
    finally:
        _mode = before
