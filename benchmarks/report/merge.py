"""Runs from several machines in one table and one plot. Each row keeps the comparisons of its own run
(its speed-up is against its own run's torch-rnn eager on the same device) and is labelled by machine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks import atomic
from benchmarks.records import RecordError
from benchmarks.report import tables
from benchmarks.report.rows import Row, RunRows, short_cpu, sort_rows
from benchmarks.report.write import RESULTS_DIR, check_output, load

DEFAULT_OUT = RESULTS_DIR / "merged"


def merged(run_dirs: Sequence[str | Path]) -> list[RunRows]:
    """Load the runs, each labelled by its host, or host and run name where two runs share host and CPU."""
    if not run_dirs:
        raise RecordError("merge needs at least one run folder")
    results = [load(d) for d in run_dirs]
    names = [r.run.name for r in results]
    if len(set(names)) < len(names):
        raise RecordError(
            f"merge: the same run given twice ({', '.join(sorted({n for n in names if names.count(n) > 1}))})"
        )
    hosts = [(r.run.machine.host, short_cpu(r.run.machine.cpu)) if r.run.machine else ("?", "") for r in results]
    for result, host in zip(results, hosts):
        result.run.label = host[0] if hosts.count(host) == 1 else f"{host[0]} {result.run.name}"
    return results


def markdown(results: list[RunRows], rows: list[Row], plots: Sequence[str] = ()) -> str:
    runs = [r.run for r in results]
    warnings = [f"{r.run.name}: {w}" for r in results for w in r.warnings]
    tasks = {r.run.metric["name"] for r in results}
    if len(tasks) > 1:
        warnings.append(
            f"the runs score different metrics ({', '.join(sorted(tasks))}): their accuracy is not comparable"
        )
    after = [f"{r.run.name}: {tables.overhead_line(r)}" for r in results]
    title = f"{tables.TITLE}: {len(results)} runs merged ({', '.join(r.run.name for r in results)})"
    return tables.document(title, runs, rows, warnings, after, plots)


def write_merge(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None) -> list[Path]:
    """Write comparison.md, comparison.csv, summary.txt and step_times.png of the merged runs into `out_dir`
    (default results/merged; never inside a run folder); returns the paths written."""
    results = merged(run_dirs)
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT
    check_output(out / "comparison.md")
    rows = sort_rows([row for r in results for row in r.rows])
    pngs: dict[str, bytes] = {}
    try:
        from benchmarks.report import plots

        png = plots.step_times(rows, [r.run for r in results])
    except ImportError:  # no matplotlib: the tables still come out
        png = None
    if png is not None:
        pngs["step_times.png"] = png
    out.mkdir(parents=True, exist_ok=True)
    summary = [f"warning: {r.run.name}: {w}" for r in results for w in r.warnings]
    summary += tables.text_table(rows, tables.metric_of([r.run for r in results]))
    written = [
        atomic.write_text(out / "comparison.md", markdown(results, rows, list(pngs))),
        atomic.write_text(out / "comparison.csv", tables.csv_text(rows)),
        atomic.write_text(out / "summary.txt", "\n".join(summary) + "\n"),
    ]
    return written + [atomic.write_bytes(out / name, data) for name, data in pngs.items()]
