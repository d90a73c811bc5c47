"""Run folders under results/: one per run, never overwritten, published only when complete.

A run writes into `runs/<stamp>-<host>.partial/`; at the end the folder is renamed to
`runs/<stamp>-<host>/` (or `...-incomplete/` after an interruption, kept but not published),
then `latest` (a symlink) and `index.json` are replaced atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path

from benchmarks import atomic

PARTIAL = ".partial"


def new_run(results_dir: Path) -> Path:
    """Create and return a fresh partial run folder."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40]
    runs = results_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for n in range(100):
        name = f"{stamp}-{host}" + (f"-{n}" if n else "")
        path = runs / (name + PARTIAL)
        if not (runs / name).exists() and not path.exists():
            path.mkdir()
            return path
    raise RuntimeError(f"cannot create a new run folder in {runs}")


def finish_run(partial: Path, complete: bool) -> Path:
    """Rename the partial folder to its final name; publish it as latest when complete."""
    final = partial.with_name(partial.name.removesuffix(PARTIAL) + ("" if complete else "-incomplete"))
    partial.rename(final)
    if complete:
        publish(final)
    return final


def publish(run: Path) -> None:
    """Point results/latest at `run` and add it to results/index.json."""
    results_dir = run.parent.parent
    link = results_dir / "latest"
    tmp = results_dir / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(Path("runs") / run.name)
    os.replace(tmp, link)
    index_path = results_dir / "index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {"runs": []}
    index["runs"] = [r for r in index.get("runs", []) if r != run.name] + [run.name]
    index["latest"] = run.name
    atomic.write_text(index_path, json.dumps(index, indent=2) + "\n")
