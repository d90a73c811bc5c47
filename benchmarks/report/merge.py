"""Runs from several machines in one table and one plot. Each row keeps the comparisons of its own run (its
speed-up is against its own run's torch-rnn eager on the same device, its × floor against its own run's floor)
and is labelled by machine: host, and the run's name (or path, where names repeat) where hosts repeat."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmarks import atomic
from benchmarks.records import RecordError
from benchmarks.report import tables
from benchmarks.report.cases import View, load, sort
from benchmarks.report.write import RESULTS_DIR, check_output

DEFAULT_OUT = RESULTS_DIR / "merged"


def short_cpu(name: str | None) -> str:
    """'Intel(R) Xeon(R) Processor @ 2.10GHz' -> 'Intel Xeon'."""
    text = re.sub(r"\((R|TM|tm)\)|\bCPU\b|\bProcessor\b|@.*$|\d+-Core", " ", str(name or ""))
    return " ".join(text.split())


def short_gpu(name: str | None) -> str:
    """'NVIDIA H200' -> 'H200'."""
    return " ".join(re.sub(r"\b(NVIDIA|Tesla|GeForce)\b", " ", str(name or "")).split())


def merged(run_dirs: Sequence[str | Path]) -> tuple[list[View], list[str]]:
    """The runs (each once, by path) and their labels: the host, with the run's name where two runs share host and
    CPU, and its path where they share the name too."""
    if not run_dirs:
        raise RecordError("merge needs at least one run folder")
    seen: dict[Path, View] = {}
    for run_dir in run_dirs:
        path = Path(run_dir).resolve()
        if path in seen:
            raise RecordError(f"merge: the same run given twice ({path})")
        seen[path] = load(run_dir)
    views = list(seen.values())
    hosts = [(v.run.machine.host, short_cpu(v.run.machine.cpu)) if v.run.machine else ("?", "") for v in views]
    names = [v.run.name for v in views]
    labels = []
    for view, host in zip(views, hosts):
        if hosts.count(host) == 1:
            labels.append(host[0])
        else:
            labels.append(f"{host[0]} {view.run.shown_path if names.count(view.run.name) > 1 else view.run.name}")
    return views, labels


def table(views: list[View], labels: list[str]) -> pd.DataFrame:
    """The case tables of the runs, one after the other, each row labelled by its run's machine."""
    parts = []
    for view, label in zip(views, labels):
        m = view.run.machine
        models = [(short_cpu(m.cpu) if d == "cpu" else short_gpu(m.gpu)) if m else "" for d in view.table["device"]]
        parts.append(view.table.assign(label=[f"{label} · {model}" if model else label for model in models]))
    return sort(pd.concat(parts, ignore_index=True))


def markdown(views: list[View], labels: list[str], rows: list[dict], plots: Sequence[str] = ()) -> str:
    warnings = [f"{v.run.name}: {w}" for v in views for w in v.run.warnings]
    tasks = {v.run.metric["name"] for v in views}
    if len(tasks) > 1:
        warnings.append(
            f"the runs score different metrics ({', '.join(sorted(tasks))}): their accuracy is not comparable"
        )
    after = [f"{v.run.name}: {tables.overhead_line(v)}" for v in views]
    sweeps = [v for v in views if v.run.sweep]
    after += [f"{v.run.name} is a size sweep ({len({r['size'] for r in v.rows})} sizes): each size is a row of its own "
              "(the size column), compared within its own size only" for v in sweeps]  # fmt: skip
    if len(views) > 1:
        after.append("Across machines, read 'vs torch-rnn eager' and '× floor': each row against its own run on the "
                     "same machine and device, so the machine's speed cancels out; 'step (ms)' and 'first step (ms)' "
                     "compare machines as well as code.")  # fmt: skip
    names = ", ".join(v.run.name for v in views)
    title = f"{tables.TITLE}: {len(views)} runs merged ({names})"
    return tables.document(title, [v.run for v in views], rows, warnings, after, plots, labels)


def write_merge(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None, plots: bool = True) -> list[Path]:
    """Write comparison.md, comparison.csv, summary.txt and (unless `plots` is False) step_times.png of the merged
    runs into `out_dir` (default results/merged; never inside a run folder); returns the paths written."""
    views, labels = merged(run_dirs)
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT
    check_output(out / "comparison.md")
    merged_table = table(views, labels)
    rows = merged_table.to_dict("records")
    pngs: dict[str, bytes] = {}
    try:
        from benchmarks.report.plots import step_times

        png = step_times(rows, [v.run for v in views]) if plots else None
    except ImportError:  # no matplotlib: the tables still come out
        png = None
    if png is not None:
        pngs["step_times.png"] = png
    out.mkdir(parents=True, exist_ok=True)
    summary = [f"warning: {v.run.name}: {w}" for v in views for w in v.run.warnings]
    summary += tables.text_table(rows, tables.metric_of([v.run for v in views]))
    written = [
        atomic.write_text(out / "comparison.md", markdown(views, labels, rows, list(pngs))),
        atomic.write_text(out / "comparison.csv", tables.csv_text(merged_table)),
        atomic.write_text(out / "summary.txt", "\n".join(summary) + "\n"),
    ]
    return written + [atomic.write_bytes(out / name, data) for name, data in pngs.items()]
