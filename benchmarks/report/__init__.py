"""The report: a run folder's records turned into tables and plots. It imports no framework (numpy and
matplotlib only), and reads runs through `benchmarks.records` (older runs through `benchmarks.migrate`).

    render(run_dir) -> (paths written, terminal summary lines)   what the harness calls at the end of a run
    python -m benchmarks.report [RUN_DIR]                         the same from the command line
    python -m benchmarks.report compare RUN_A RUN_B               changes beyond the run-to-run noise
    python -m benchmarks.report merge RUN [RUN ...]               runs of several machines in one table

Modules: stats (quartiles, Mann–Whitney U), rows (records -> rows), columns (the one list of columns),
tables (markdown, CSV, terminal), plots, write (render), compare, merge.
"""

from __future__ import annotations

from benchmarks.records import RecordError
from benchmarks.report.write import RESULTS_DIR, load, newest_run, render

__all__ = ["RESULTS_DIR", "RecordError", "load", "newest_run", "render"]
