"""Render a run folder: comparison.md, comparison.csv, summary.txt and the plots, each written atomically."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import atomic, records
from benchmarks.records import RecordError
from benchmarks.report import tables
from benchmarks.report.rows import RunRows, build

RESULTS_DIR = Path(__file__).resolve().parents[2] / "results"
RUN_FILES = (records.FILE, "benchmark.json")  # a folder holding one of these is a run


def is_run(folder: Path) -> bool:
    """Whether `folder` is a run folder (schema 2 records, or schema 1 benchmark.json)."""
    return any((folder / name).is_file() for name in RUN_FILES)


def load(run_dir: str | Path, label: str = "") -> RunRows:
    """Read a run folder and build its rows; RecordError (one line, naming file and field) when unusable."""
    return build(records.read(run_dir), label)


def plot_files(result: RunRows) -> dict[str, bytes]:
    """The run's PNGs by file name; {} without matplotlib (the tables still come out)."""
    try:
        import matplotlib  # noqa: F401 - only to learn whether plots can be drawn
    except ImportError:
        print("matplotlib is not installed: no plots (pip install -e '.[bench]')", file=sys.stderr)
        return {}
    from benchmarks.report import plots

    return plots.draw_run(result)


def render(run_dir: str | Path, out_dir: str | Path | None = None, plots: bool = True) -> tuple[list[Path], list[str]]:
    """Write comparison.md, comparison.csv, summary.txt and the plots (unless `plots` is False) of a run
    folder into `out_dir`, default the run folder itself; returns the paths written and the terminal
    summary lines."""
    result = load(run_dir)
    out = Path(out_dir) if out_dir is not None else result.run.path
    out.mkdir(parents=True, exist_ok=True)
    pngs = plot_files(result) if plots else {}
    summary = tables.summary_lines(result)
    written = [
        atomic.write_text(out / "comparison.md", tables.markdown(result, list(pngs))),
        atomic.write_text(out / "comparison.csv", tables.csv_text(result.rows)),
        atomic.write_text(out / "summary.txt", "\n".join(summary) + "\n"),
    ]
    written += [atomic.write_bytes(out / name, data) for name, data in pngs.items()]
    return written, summary


def newest_run(results_dir: str | Path = RESULTS_DIR) -> Path:
    """results/latest, else index.json's latest, else the newest run folder in runs/ (an interrupted one
    only when there is no other; an unfinished .partial one never)."""
    results = Path(results_dir)
    candidates = [results / "latest"]
    try:
        index = json.loads((results / "index.json").read_text(encoding="utf-8"))
        names = [index.get("latest")] + list(reversed(index.get("runs") or []))
        candidates += [results / "runs" / n for n in names if isinstance(n, str) and n]
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # no or broken index: fall back to scanning
    runs = results / "runs"
    folders = [p for p in runs.iterdir() if p.is_dir() and is_run(p)] if runs.is_dir() else []
    folders = [p for p in folders if not p.name.endswith(".partial")]
    folders.sort(key=lambda p: (not p.name.endswith("-incomplete"), p.name))  # stamp-host names sort by time
    candidates += reversed(folders)
    for candidate in candidates:
        if candidate.is_dir() and is_run(candidate):
            return candidate.resolve()
    raise RecordError(f"{results}: no run found (no latest, index.json or run folder in runs/)")


def check_output(path: Path) -> Path:
    """`path` for a file the report writes outside a run: RecordError when it would land inside a run folder
    (a committed reference run must stay as it was measured)."""
    for folder in [path.parent, *path.parent.parents]:
        if is_run(folder):
            raise RecordError(f"{path}: inside the run folder {folder}; write it elsewhere (--out)")
    return path
