"""Render a run folder, each file written atomically: a benchmark run gets comparison.md, comparison.csv,
summary.txt and its plots; a size sweep (its start record's options say `sweep`) gets sweep.md, sweep.csv and
its plots. One entry point for both: `render`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import atomic, records
from benchmarks.records import RecordError
from benchmarks.report import tables
from benchmarks.report.cases import View, load

RESULTS_DIR = Path(__file__).resolve().parents[2] / "results"
RUN_FILES = (records.FILE, "benchmark.json")  # a folder holding one of these is a run
REPORT, SWEEP_REPORT = "comparison.md", "sweep.md"


def is_run(folder: Path) -> bool:
    """Whether `folder` is a run folder (records, or schema 1's benchmark.json)."""
    return any((folder / name).is_file() for name in RUN_FILES)


def _plots(draw: str, result: View) -> dict[str, bytes]:
    """The run's PNGs by file name; {} without matplotlib (the tables still come out)."""
    try:
        import matplotlib  # noqa: F401 - only to learn whether plots can be drawn
    except ImportError:
        print("matplotlib is not installed: no plots (pip install -e '.[bench]')", file=sys.stderr)
        return {}
    if draw == "sweep":
        from benchmarks.report import sweep

        return sweep.draw(result)
    from benchmarks.report import plots

    return plots.draw_run(result)


def render(run_dir: str | Path, out_dir: str | Path | None = None, plots: bool = True) -> tuple[list[Path], list[str]]:
    """Write a run folder's report (unless `plots` is False, without plots) into `out_dir`, default the run folder
    itself, never another run's folder; returns the paths written and the terminal summary lines. A sweep folder
    gets the sweep's report."""
    result = load(run_dir)
    own = result.run.path
    out = own if out_dir is None else check_output(Path(out_dir) / REPORT, own=own).parent
    out.mkdir(parents=True, exist_ok=True)
    if result.run.sweep:
        from benchmarks.report import sweep

        pngs = _plots("sweep", result) if plots else {}
        summary = sweep_summary(result)
        written = [
            atomic.write_text(out / sweep.CSV_FILE, sweep.csv_text(result)),
            atomic.write_text(out / SWEEP_REPORT, sweep.markdown(result, list(pngs))),
        ]
    else:
        pngs = _plots("run", result) if plots else {}
        summary = tables.summary_lines(result)
        written = [
            atomic.write_text(out / REPORT, tables.markdown(result, list(pngs))),
            atomic.write_text(out / "comparison.csv", tables.csv_text(result.table)),
            atomic.write_text(out / "summary.txt", "\n".join(summary) + "\n"),
        ]
    return written + [atomic.write_bytes(out / name, data) for name, data in pngs.items()], summary


def sweep_summary(result: View) -> list[str]:
    """The terminal lines of a sweep: warnings and the train_step winner at each size per device."""
    from benchmarks.report import sweep

    out = [f"warning: {w}" for w in result.run.warnings]
    rows = result.rows
    for device, op, model in sweep.panels(rows):
        for size in sweep.sizes_in(rows) if op == "train_step" else []:
            ranked = sweep.ranking(rows, device, op, size, model)
            if len(ranked) > 1:
                w, r = ranked[:2]
                out.append(
                    f"{device} {size}: {sweep.label(w)}, runner-up {sweep.label(r)}: {sweep.margin(w, r, 'train_step')}"
                )
            elif ranked:
                out.append(f"{device} {size}: {sweep.label(ranked[0])}, the only one measured")
    return out


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


def check_output(path: Path, own: Path | None = None) -> Path:
    """`path` for a file the report writes: RecordError when it would land in a run folder other than `own` (a
    committed reference run must stay as it was measured; another run's report is never replaced)."""
    for folder in [path.parent, *path.parent.parents]:
        if is_run(folder) and (own is None or folder.resolve() != own.resolve()):
            raise RecordError(f"{path}: inside the run folder {folder}; write it elsewhere (--out)")
    return path
