"""Comparison tables and plots regenerated from a run folder's saved JSON; never imports a framework.

python -m benchmarks.report [RUN_DIR]            # tables + plots (default: the newest run)
python -m benchmarks.report compare RUN_A RUN_B  # markdown ratio table B/A, flags real changes
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import atomic
from benchmarks.compare import compare_markdown, write_compare
from benchmarks.report_data import (
    REFERENCE,
    Row,
    Run,
    RunError,
    comparison_rows,
    harness_overhead,
    load_run,
    md_cell,
    newest_run,
)

__all__ = [
    "Row",
    "Run",
    "RunError",
    "compare_markdown",
    "comparison_csv",
    "comparison_markdown",
    "comparison_rows",
    "summary_lines",
    "load_run",
    "main",
    "newest_run",
    "write_compare",
    "write_outputs",
    "write_report",
]

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
MIB = 1024**2
COLUMNS = [
    ("backend", "backend"),
    ("device", "device"),
    (
        "kernel / path",
        "the backend's own description of the code path (info: kernel; mode; XLA; GPU model), then any failure or note",
    ),
    (
        "step median (ms)",
        "one train_step (forward, BPTT, Adam, state carried): median of the timed rounds, the median over repeats",
    ),
    ("step IQR (ms)", "interquartile range of those rounds (the median over repeats): the noise within a block"),
    (
        "step repeats (ms)",
        "lowest–highest median of the repeats, blocks of rounds taken in turn across backends: the machine's "
        "drift during the run",
    ),
    (
        "first step (ms)",
        "the first train_step on a fresh backend (tracing / compiling), not in the median; a framework's one-time "
        "start-up falls on its first row in the run",
    ),
    ("predict median (ms)", "one forward-only call on one window"),
    ("held-out MSE", "mean ± sample std over seeds of the MSE on the held-out windows; diverged seeds excluded"),
    ("MSE 95% CI", "95% t interval of that mean, clipped at 0 (wide when few seeds or one seed fails to converge)"),
    (
        "train run (s)",
        "wall time of one run's training steps (first step included), mean over seeds that did not diverge",
    ),
    ("final loss", "training loss of the last step, mean over non-diverged seeds"),
    ("params", "trainable parameters as the framework counts them"),
    ("peak mem (MiB)", "peak RSS of a child process that loaded only this backend and trained (+ GPU peak)"),
    (f"speed-up vs {REFERENCE}", f"{REFERENCE}'s step median on the same device / this row's (> 1: faster)"),
    ("GPU/CPU", "this cuda row's step median / the same backend's cpu median (< 1: the GPU is faster)"),
]


def _fmt(value: float | None, unit: float = 1.0) -> str:
    """A number scaled by 1/unit with about 3 significant digits; '' for None."""
    if value is None:
        return ""
    v = value / unit
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.{2 if abs(v) < 10 else 1}f}"


def _mse_cells(row: Row) -> tuple[str, str]:
    if row.status == "diverged":
        return f"diverged ({row.diverged}/{row.seeds} seeds)", ""
    if row.mse_mean is None:
        return "", ""
    kept = (row.seeds or 0) - (row.diverged or 0)
    text = _fmt(row.mse_mean) + (f" ± {_fmt(row.mse_std)}" if row.mse_std is not None else f" (n={kept})")
    if row.diverged:
        text += f" ({row.diverged}/{row.seeds} diverged)"
    ci = f"[{_fmt(row.mse_ci_low)}, {_fmt(row.mse_ci_high)}]" if row.mse_ci_low is not None else ""
    return text, ci


def _memory_cell(row: Row) -> str:
    text = _fmt(row.peak_rss_bytes, MIB)
    if row.gpu_peak_bytes is not None:
        text += f" (+ GPU {_fmt(row.gpu_peak_bytes, MIB)})"
    return text.strip()


def _remarks(row: Row) -> str:
    """A measured row's failures and notes, for the kernel cell and the terminal summary."""
    return "; ".join(filter(None, [f"failed: {row.failures}" if row.failures else "", row.notes]))


def _range(values: list[float], unit: float) -> str:
    return f"{_fmt(min(values), unit)}–{_fmt(max(values), unit)}" if len(values) > 1 else ""


def _ratio(value: float | None) -> str:
    return f"{value:.2f}×" if value is not None else ""


def _markdown_cells(row: Row) -> list[str]:
    if row.status in ("unavailable", "failed"):
        return [row.backend, row.device] + [f"{row.status}: {md_cell(row.reason)}"] + ["—"] * (len(COLUMNS) - 3)
    mse, ci = _mse_cells(row)
    return [
        row.backend,
        row.device,
        md_cell("; ".join(filter(None, [row.kernel, _remarks(row)]))),
        _fmt(row.step_median, 1e-3),
        _fmt(row.step_iqr, 1e-3),
        _range(row.step_repeat_medians, 1e-3),
        _fmt(row.first_step, 1e-3),
        _fmt(row.predict_median, 1e-3),
        mse,
        ci,
        _fmt(row.train_run_mean),
        _fmt(row.final_loss_mean),
        "" if row.params is None else str(row.params),
        _memory_cell(row),
        _ratio(row.speedup),
        _ratio(row.gpu_cpu),
    ]


def _machine_block(run: Run) -> list[str]:
    m, meta = run.machine, run.meta
    cpu = run.cpu_name or "unknown"
    threads = m.get("threads") if isinstance(m.get("threads"), dict) else {}
    per_fw = threads.get("frameworks") or {}
    used = ", ".join(f"{fw} intra-op {v.get('intra_op')}, inter-op {v.get('inter_op')}" for fw, v in per_fw.items())
    pools = ", ".join(f"{p.get('internal_api')} {p.get('num_threads')}" for p in threads.get("native_pools") or [])
    if pools:
        used += f"; native pools: {pools}"
    versions = ", ".join(f"{k} {v}" for k, v in (m.get("frameworks") or {}).items())
    os_name = m.get("os") or f"{m.get('system', '?')} {m.get('release', '')}".strip()
    gpu = f"{m['gpu']} (driver {m.get('gpu_driver') or '?'})" if m.get("gpu") else "none"
    opts = meta.get("options") or {}
    lines = [
        f"- host: {m.get('node', '?')}",
        f"- CPU: {cpu}; {m.get('cores', '?')} logical cores",
        f"- threads: requested {threads.get('requested', '?')}" + (f"; in force: {used}" if used else ""),
        f"- OS: {os_name} ({m.get('machine', '?')})",
        f"- Python: {m.get('python_version', '?')} ({m.get('python_implementation', '?')})",
        f"- frameworks: {versions or '?'}",
        f"- GPU: {gpu}",
    ]
    if opts:
        keys = (
            "device",
            "seeds",
            "train_steps",
            "hidden_size",
            "seq_len",
            "batch_size",
            "threads",
            "rounds",
            "repeats",
        )
        lines.append("- options: " + ", ".join(f"{k} {opts[k]}" for k in keys if k in opts))
    commit = run.bench.get("commit_info") or {}
    if commit.get("id"):
        lines.append(f"- commit: {commit['id']}" + (" (dirty)" if commit.get("dirty") else ""))
    started, finished = meta.get("started") or run.bench.get("datetime", "?"), meta.get("finished") or "did not finish"
    lines.append(f"- run: {run.name}, started {started}, finished {finished}")
    if meta.get("complete") is False:
        lines.append("- **this run was interrupted: some rows may be missing**")
    return lines


def overhead_line(run: Run, rows: list[Row]) -> str:
    """The harness overhead per timed call, absolute and relative to the fastest measured step."""
    overhead = harness_overhead(run)
    timed = [r for r in rows if r.step_median]
    if overhead is None:
        return "harness overhead per timed call: not measured"
    if not timed:
        return f"harness overhead per timed call: {overhead * 1e6:.2f} µs (no backend step was timed)"
    fastest = min(timed, key=lambda r: r.step_median)
    share = 100 * overhead / fastest.step_median
    return (
        f"harness overhead per timed call: {overhead * 1e6:.2f} µs = {share:.2g}% of the fastest backend's step "
        f"({fastest.step_median * 1e3:.3g} ms, {fastest.backend} on {fastest.device})"
    )


def summary_lines(rows: list[Row]) -> list[str]:
    """A narrow version of the table for the terminal: step time, first step, accuracy, speed-up."""
    header = f"{'backend':<22} {'device':<6} {'step ms (IQR)':>16} {'first ms':>9} {'held-out MSE':>26} {'speed-up':>9}"
    lines = [header]
    for r in rows:
        if r.status in ("unavailable", "failed"):
            lines.append(f"{r.backend:<22} {r.device:<6} {r.status}: {' '.join(r.reason.split())[:90]}")
            continue
        step = f"{_fmt(r.step_median, 1e-3)} ({_fmt(r.step_iqr, 1e-3)})" if r.step_median is not None else ""
        mse = _mse_cells(r)[0]
        lines.append(
            f"{r.backend:<22} {r.device:<6} {step:>16} {_fmt(r.first_step, 1e-3):>9} {mse:>26} {_ratio(r.speedup):>9}"
        )
        if _remarks(r):
            lines.append(f"{'':<22} {'':<6} {' '.join(_remarks(r).split())[:120]}")
    return lines


def comparison_markdown(run: Run, rows: list[Row], plots: Sequence[str] = ()) -> str:
    """comparison.md: title, machine block, table, column legend, harness overhead, plot links."""
    lines = [f"# RNN benchmark: {run.name}", "", "## Machine", "", *_machine_block(run), "", "## Results", ""]
    lines.append("| " + " | ".join(name for name, _ in COLUMNS) + " |")
    lines.append("|" + "|".join("---" if i < 3 else "--:" for i in range(len(COLUMNS))) + "|")
    lines += ["| " + " | ".join(_markdown_cells(row)) + " |" for row in rows]
    lines += ["", "## Columns", "", *(f"- **{name}**: {text}" for name, text in COLUMNS), ""]
    lines += [overhead_line(run, rows), ""]
    lines += [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines).rstrip() + "\n"


# CSV header -> Row attribute; the unit is in the header name (seconds, bytes, plain ratios)
CSV_FIELDS = {
    "backend": "backend",
    "device": "device",
    "status": "status",
    "reason": "reason",
    "failures": "failures",
    "notes": "notes",
    "kernel": "kernel",
    "framework": "framework",
    "step_median_s": "step_median",
    "step_iqr_s": "step_iqr",
    "step_q1_s": "step_q1",
    "step_q3_s": "step_q3",
    "step_min_s": "step_min",
    "step_rounds": "step_rounds",
    "step_repeats": "step_repeats",
    "step_spread_s": "step_spread",
    "first_step_s": "first_step",
    "predict_median_s": "predict_median",
    "predict_iqr_s": "predict_iqr",
    "predict_spread_s": "predict_spread",
    "seeds": "seeds",
    "diverged_seeds": "diverged",
    "heldout_mse_mean": "mse_mean",
    "heldout_mse_std": "mse_std",
    "heldout_mse_ci95_low": "mse_ci_low",
    "heldout_mse_ci95_high": "mse_ci_high",
    "train_run_mean_s": "train_run_mean",
    "final_loss_mean": "final_loss_mean",
    "params": "params",
    "peak_rss_bytes": "peak_rss_bytes",
    "baseline_rss_bytes": "baseline_rss_bytes",
    "gpu_peak_bytes": "gpu_peak_bytes",
    "speedup_vs_torch_rnn": "speedup",
    "gpu_over_cpu": "gpu_cpu",
}


def comparison_csv(rows: list[Row]) -> str:
    """comparison.csv: one line per row, plain numbers in seconds and bytes, empty where not measured."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in rows:
        values = [getattr(row, attr) for attr in CSV_FIELDS.values()]
        # repr keeps every digit of a float; None becomes an empty cell, which pandas reads as NaN
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in values])
    return buf.getvalue()


def write_report(run_dir: str | Path) -> list[Path]:
    """Write comparison.md, comparison.csv and the plots into the run folder (atomically); returns the paths."""
    run = load_run(run_dir)
    return write_outputs(run, comparison_rows(run))


def write_outputs(run: Run, rows: list[Row]) -> list[Path]:
    """write_report for a run already loaded and its rows already computed."""
    from benchmarks import plots

    written = []
    try:
        import matplotlib  # noqa: F401 - only to learn whether plots can be drawn
    except ImportError:  # the tables still come out; the GPU machine may lack matplotlib
        print("matplotlib is not installed: no plots (pip install -e '.[bench]')", file=sys.stderr)
    else:
        for name, draw in plots.PLOTS.items():
            png = draw(run, rows)
            if png is not None:
                written.append(atomic.write_bytes(run.path / name, png))
    md = comparison_markdown(run, rows, [p.name for p in written])
    written.insert(0, atomic.write_text(run.path / "comparison.md", md))
    written.insert(1, atomic.write_text(run.path / "comparison.csv", comparison_csv(rows)))
    return written


USAGE = "usage: python -m benchmarks.report [RUN_DIR] | python -m benchmarks.report compare RUN_A RUN_B"


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code (2 on bad arguments, with one line on stderr)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        if args and args[0] == "compare":
            if len(args) != 3:
                raise RunError(f"compare needs two run folders, got {len(args) - 1}; {USAGE}")
            text, path = write_compare(args[1], args[2])
            print(text, end="")
            print(f"wrote {path}")
            return 0
        if len(args) > 1 or (args and args[0].startswith("-")):
            raise RunError(f"unexpected arguments {' '.join(args)!r}; {USAGE}")
        run_dir = Path(args[0]) if args else newest_run(RESULTS_DIR)
        for path in write_report(run_dir):
            print(f"wrote {path}")
        return 0
    except RunError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (TypeError, AttributeError, KeyError, ValueError) as err:  # right shape at the top, wrong deeper down
        print(f"error: unexpected content in the run's JSON ({type(err).__name__}: {err})", file=sys.stderr)
        return 2
    except OSError as err:  # the inputs were fine but an output could not be written (read-only folder, full disk)
        print(f"error: cannot write the report: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
