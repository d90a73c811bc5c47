"""The report: run folders' records turned into one table of measurements, and every table, CSV and plot a
view of it. It imports no framework (pandas, matplotlib and, for one test, scipy) and reads runs of any
schema through `benchmarks.records.read`.

    frame(*run_dirs) -> pandas.DataFrame         every measurement of the runs: one tidy table
    render(run_dir) -> (paths written, summary)  a run's report (a sweep's, for a sweep folder); the harness's call
    python -m benchmarks.report [RUN_DIR]        the same from the command line
    python -m benchmarks.report compare A B      changes beyond the run-to-run noise, and against the machine's move
    python -m benchmarks.report merge RUN ...    runs of several machines in one table

`frame` is where a notebook starts. One row per block of timed rounds (a case x size x op x repeat), per
first step, per training seed, per memory probe, per case not measured (and why), and per harness-overhead
probe, told apart by `kind`; every row carries its run (run, path, host, cpu, gpu, commit, threads, versions,
...) and its case (backend, mode, device, size, hidden, batch, seq_len, model, params, ...). The columns and their
dtypes are `benchmarks.report.frame.COLUMNS`; what each kind of row holds is in that module's docstring.

    >>> from benchmarks.report import frame
    >>> df = frame("results/reference/cpu-20261128-022118-vm", "results/reference/cpu-sweep-20261128-023502-vm")
    >>> blocks = df[(df.kind == "block") & (df.op == "train_step")]
    >>> step = blocks.groupby(["run", "backend", "mode", "device", "size"]).seconds.median()  # median of repeat medians
    >>> seeds = df[df.kind == "training"].groupby(["backend", "mode"]).outcome.value_counts()

The step time every report shows is that statistic: the median over repeats of each repeat's (block's)
median round, the lowest–highest repeat median beside it as the run's noise (`benchmarks.report.cases`).

Modules: frame (records -> the table), cases (the table folded per case: statistics, comparisons within a run,
ranks and ties), columns (the one list of columns), tables (markdown, CSV, terminal), plots and sweep (figures,
sweep.md), write (render), compare, merge.
"""

from __future__ import annotations

from benchmarks.records import RecordError
from benchmarks.report.cases import View, load
from benchmarks.report.frame import COLUMNS, frame
from benchmarks.report.write import RESULTS_DIR, newest_run, render

__all__ = ["COLUMNS", "RESULTS_DIR", "RecordError", "View", "frame", "load", "newest_run", "render"]
