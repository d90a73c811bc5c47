"""Run folders under results/: one per run, never overwritten, published only when worth it.

A run writes into `runs/<stamp>-<host>.partial/` and holds a lock on its `.running` file while it
lives, its report included. When it ends the folder is renamed to `runs/<stamp>-<host>/` (or
`...-incomplete/`); it becomes `latest` (a symlink) and joins `index.json` only when it is complete,
measured at least one case and its report was written. A killed run cannot rename anything: the next
command that touches the results folder (`recover`, called by a run and by the report) finds its
`.partial` folder unlocked, renames it `-incomplete` and renders what it holds. `latest` and `index.json` change only
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
SWEEPS = "sweeps"  # the sweep's run folders live in RESULTS_DIR/sweeps, apart from the benchmark's
CACHES = ".caches"  # a run's fresh compile caches live in its folder: a killed run's go with its recovery
LOCK_WAIT_S = 120.0  # how long a command waits for another one's lock on the results folder
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class LockTimeout(OSError):
    """The results folder's lock stayed held by another process for too long."""


@contextlib.contextmanager
def locked(results_dir: Path, wait_s: float | None = None) -> Iterator[None]:
    """Hold the results folder's lock while `latest`, `index.json` or a dead run's folder change. While
    another process holds it, say so once (with its pid) and give up after `wait_s` (default LOCK_WAIT_S,
    read at the call) with LockTimeout."""
    wait_s = LOCK_WAIT_S if wait_s is None else wait_s
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


def _finish_of(folder: Path) -> records.Finish | None:
    """The run's last Finish record, if it has one that can be read."""
    try:
        return records.read(folder).finish
    except (records.RecordError, OSError):
        return None


def claim(folder: Path) -> IO[str] | None:
    """Take the lock on `folder`'s .running file (made if missing) and return it held; None while the run, or
    another command finishing it, holds it. A folder that cannot take the file is claimed without a lock."""
    try:
        handle = open(folder / RUNNING, "a")  # noqa: SIM115 - held until release()
    except OSError:
        return open(os.devnull, "a")  # noqa: SIM115 - a read-only folder: nothing to mark
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def release(folder: Path, handle: IO[str]) -> None:
    """The run's folder is finished and rendered: its .running file goes, and the lock with it."""
    with contextlib.suppress(OSError):
        if handle.name != os.devnull:
            (folder / RUNNING).unlink()
    handle.close()


def finish_run(partial: Path, complete: bool) -> Path:
    """Rename the partial folder to its final name (`-incomplete` unless complete). Its .running file stays,
    locked by whoever holds it, until the report is written (`release`): a run that renders is alive."""
    final = partial.with_name(partial.name.removesuffix(PARTIAL) + ("" if complete else INCOMPLETE))
    partial.rename(final)
    return final


def recover(
    results_dir: Path, render: Callable[[Path], object] | None = None, report: str = "comparison.md"
) -> list[Path]:
    """Finish every partial run whose process has died, and render it; returns those folders. A run killed
    before its last record is labelled incomplete (a Finish record saying so is appended, on a line of its
    own); one killed after that (while its report was being written) was already renamed: it is rendered
    (it lacks its report file: `report`, or sweep.md for a sweep), not published. A folder is claimed by
    taking the lock on its .running file (a live run holds it until its report is written), and partial
    folders are renamed under the results folder's lock: two commands never recover the same one."""
    runs = results_dir / "runs"
    found: list[Path] = []
    if not runs.is_dir():
        return found
    claimed: list[tuple[Path, IO[str]]] = []
    for folder in sorted(runs.iterdir()):  # finished, but killed while its report was being written
        if folder.is_dir() and not folder.name.endswith(PARTIAL) and (folder / FILE).exists():
            if not (folder / report_file(folder, report)).exists() and render is not None:
                handle = claim(folder)
                if handle is not None and not (folder / report_file(folder, report)).exists():
                    claimed.append((folder, handle))
                elif handle is not None:
                    handle.close()
    with locked(results_dir):
        for partial in sorted(runs.glob("*" + PARTIAL)):
            handle = claim(partial) if partial.is_dir() else None
            if handle is None:
                continue
            finish = _finish_of(partial)
            try:
                if finish is None and (partial / FILE).exists():
                    _append_finish(partial, "the run's process died; labelled by a later command")
                shutil.rmtree(partial / CACHES, ignore_errors=True)
                complete = finish is not None and finish.complete
                claimed.append((finish_run(partial, complete), handle))
            except OSError:  # made read-only: left as it is (its records stay readable), never in the way of a run
                handle.close()
    for final, handle in claimed:
        found.append(final)
        try:
            if render is not None and (final / FILE).exists():
                with contextlib.suppress(Exception):  # the folder is labelled; a report can be made later
                    render(final)
        finally:
            release(final, handle)
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
    """Append an incomplete Finish record on a line of its own. A last line cut off mid-record (the run was
    killed while writing it) is dropped first, as the reader drops it; a whole record that lacks only its
    newline gets one."""
    path = folder / FILE
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    tail = data[cut:]
    if tail.strip():
        try:
            json.loads(tail)
            with open(path, "ab") as f:
                f.write(b"\n")
        except ValueError:
            with open(path, "r+b") as f:
                f.truncate(cut)
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
