"""Run folders under results/: one per run, never overwritten, published only when worth it.

A run writes into `runs/<stamp>-<host>.partial/` and holds a lock on its `.running` file while it
lives. When it ends the folder is renamed to `runs/<stamp>-<host>/` (or `...-incomplete/`); it
becomes `latest` (a symlink) and joins `index.json` only when it is complete, measured at least one
case and its report was written. A killed run cannot rename anything: the next command that touches
the results folder (`recover`, called by a run and by the report) finds its `.partial` folder
unlocked, renames it `-incomplete` and renders what it holds. `latest` and `index.json` change only
under the results folder's lock, so two runs at once cannot corrupt them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from benchmarks import atomic, records
from benchmarks.records import FILE

PARTIAL = ".partial"
INCOMPLETE = "-incomplete"
RUNNING = ".running"
CACHES = ".caches"  # a run's fresh compile caches live in its folder: a killed run's go with its recovery
LOCK_WAIT_S = 120.0  # how long a command waits for another one's lock on the results folder
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class LockTimeout(OSError):
    """The results folder's lock stayed held by another process for too long."""


@contextlib.contextmanager
def locked(results_dir: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the results folder's lock while `latest`, `index.json` or a dead run's folder change. While
    another process holds it, say so once (with its pid) and give up after `wait_s` with LockTimeout."""
    path = results_dir / ".lock"
    with open(path, "a+") as handle:
        deadline, said = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not said:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    print(f"rnn-bench: waiting for the lock on {path} (held by {holder})", file=sys.stderr)
                    said = True
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{path} stayed locked for {wait_s:g} s; is another run finishing?") from None
                time.sleep(0.2)
        try:
            handle.truncate(0)
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def new_run(results_dir: Path) -> tuple[Path, IO[str]]:
    """Create a fresh partial run folder; returns it and the open `.running` file whose lock marks it alive."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40]
    runs = results_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for n in range(100):
        name = f"{stamp}-{host}" + (f"-{n}" if n else "")
        path = runs / (name + PARTIAL)
        if (runs / name).exists() or (runs / (name + INCOMPLETE)).exists():
            continue
        try:
            path.mkdir()
        except FileExistsError:
            continue
        alive = open(path / RUNNING, "w")  # noqa: SIM115 - held for the run's life
        fcntl.flock(alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return path, alive
    raise RuntimeError(f"cannot create a new run folder in {runs}")


def _finished(folder: Path) -> bool:
    """Whether the run's records end with a complete Finish."""
    try:
        return records.read(folder).complete
    except (records.RecordError, OSError):
        return False


def _alive(folder: Path) -> bool:
    """Whether the run writing `folder` still runs (it holds the lock on its .running file)."""
    try:
        with open(folder / RUNNING, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def finish_run(partial: Path, complete: bool) -> Path:
    """Rename the partial folder to its final name (`-incomplete` unless complete)."""
    final = partial.with_name(partial.name.removesuffix(PARTIAL) + ("" if complete else INCOMPLETE))
    partial.rename(final)
    with contextlib.suppress(OSError):
        (final / RUNNING).unlink()
    return final


def recover(
    results_dir: Path, render: Callable[[Path], object] | None = None, report: str = "comparison.md"
) -> list[Path]:
    """Finish every partial run whose process has died, and render it; returns those folders. A run killed
    before its last record is labelled incomplete (a Finish record saying so is appended, on a line of its
    own); one killed after that (while its report was being written) was already renamed: it is rendered
    (it lacks its report file: `report`, or sweep.md for a sweep), not published. Folders are claimed under
    the results folder's lock, so two commands never recover the same one."""
    runs = results_dir / "runs"
    found: list[Path] = []
    if not runs.is_dir():
        return found
    for folder in sorted(runs.iterdir()):  # finished, but killed while its report was being written
        if folder.is_dir() and not folder.name.endswith(PARTIAL) and (folder / FILE).exists():
            if not (folder / report_file(folder, report)).exists() and render is not None:
                with contextlib.suppress(Exception):
                    render(folder)
                    found.append(folder)
    claimed: list[Path] = []
    with locked(results_dir):
        for partial in sorted(runs.glob("*" + PARTIAL)):
            if not partial.is_dir() or _alive(partial):
                continue
            finished = _finished(partial)
            if not finished and (partial / FILE).exists():
                _append_finish(partial, "the run's process died; labelled by a later command")
            shutil.rmtree(partial / CACHES, ignore_errors=True)
            claimed.append(finish_run(partial, complete=finished))
    for final in claimed:
        found.append(final)
        if render is not None and (final / FILE).exists():
            with contextlib.suppress(Exception):  # the folder is labelled; a report can be made later
                render(final)
    return found


def report_file(folder: Path, default: str = "comparison.md") -> str:
    """The report file that marks a rendered run: sweep.md for a sweep, else `default`."""
    try:
        with open(folder / FILE, encoding="utf-8") as f:
            first = json.loads(f.readline())
        return "sweep.md" if first.get("options", {}).get("sweep") else default
    except (OSError, ValueError, AttributeError):
        return default


def _append_finish(folder: Path, note: str) -> None:
    """Append an incomplete Finish record, starting a new line if the last one was cut off."""
    path = folder / FILE
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
        torn = size > 0 and f.read(1) != b"\n"
    if torn:
        with open(path, "ab") as f:
            f.write(b"\n")
    writer = records.Writer(folder)
    writer.write(records.Finish(dt.datetime.now().isoformat(timespec="seconds"), False, None, note))
    writer.close()


def publish(run: Path) -> None:
    """Point results/latest at `run` and add it to results/index.json, under the results folder's lock."""
    results_dir = run.parent.parent
    with locked(results_dir):
        link = results_dir / "latest"
        tmp = results_dir / f".latest-{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(Path("runs") / run.name)
        os.replace(tmp, link)
        runs = [r for r in read_index(results_dir) if r != run.name] + [run.name]
        atomic.write_text(results_dir / "index.json", json.dumps({"runs": runs, "latest": run.name}, indent=2) + "\n")


def read_index(results_dir: Path) -> list[str]:
    """The published runs, oldest first. A corrupt or wrong-typed index.json is kept aside (renamed)
    and the list rebuilt from the complete run folders."""
    path = results_dir / "index.json"
    if not path.exists():
        return _complete_runs(results_dir)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        runs = index["runs"]
        if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
            raise TypeError("runs must be a list of names")
        # only plain run-folder names: "../../etc" or "a/b" is not a run of this folder
        return [r for r in runs if RUN_NAME.fullmatch(r) and (results_dir / "runs" / r).is_dir()]
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        os.replace(path, path.with_name(f"index.json.corrupt-{stamp}"))
        return _complete_runs(results_dir)


def _complete_runs(results_dir: Path) -> list[str]:
    runs = results_dir / "runs"
    if not runs.is_dir():
        return []
    return sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.name.endswith((PARTIAL, INCOMPLETE)))
