"""Text from the case table: comparison.md (machine block, main table, details table, legend), the CSV and the
terminal summary. The markdown and terminal tables are made from `columns.COLUMNS`, the CSV from
`columns.CSV_COLUMNS`."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from benchmarks.report import columns as cols
from benchmarks.report.cases import View, skipped
from benchmarks.report.columns import Column, Row, cells, detail_columns, main_columns, md_cell, num, shown
from benchmarks.report.frame import Run, describe

TITLE = "RNN benchmark"
TERMINAL_CELL = 70  # characters of a cell in the terminal summary; longer reasons are cut


def metric_of(runs: Sequence[Run]) -> dict[str, str]:
    """The metric the header names: the first run's (a merged table of different tasks says so above it)."""
    return runs[0].metric if runs else {"name": "metric", "label": "metric", "about": "", "trivial": ""}


def machine_block(run: Run) -> list[str]:
    """Markdown lines: host, CPU, threads, OS, Python, frameworks, GPU, options, task, commit, run."""
    m, start, finish = run.machine, run.start, run.records.finish
    lines = []
    if m is not None:
        threads = m.threads
        in_force = [f"{fw} {describe(v)}" for fw, v in (threads.get("frameworks") or {}).items()]
        pools = [f"{p.get('internal_api')} {p.get('num_threads')}" for p in threads.get("native_pools") or []]
        used = "; ".join(filter(None, [", ".join(in_force), f"native pools: {', '.join(pools)}" if pools else ""]))
        versions = ", ".join(f"{k} {v}" for k, v in m.frameworks.items())
        gpu = f"{m.gpu} (driver {m.gpu_driver or '?'})" if m.gpu else "none"
        lines += [
            f"- host: {m.host}",
            f"- CPU: {m.cpu}; {m.cores if m.cores is not None else '?'} logical cores",
            f"- threads: requested {threads.get('requested', '?')}" + (f"; in force: {used}" if used else ""),
            f"- OS: {m.os}",
            f"- Python: {m.python}",
            f"- frameworks: {versions or '?'}",
            f"- GPU: {gpu}",
        ]
        if m.commit:
            lines.append(f"- commit: {m.commit}" + (" (dirty)" if m.dirty else ""))
    else:
        lines.append("- machine: not recorded")
    if start.options:
        lines.append("- options: " + ", ".join(f"{k} {describe(v)}" for k, v in start.options.items()))
    metric = run.metric
    lines.append(f"- task: {run.task.get('name', '?')}, scored by {metric['label']} ({metric['about']})")
    ended = f"finished {finish.finished or '?'}" if finish is not None else "did not record its end"
    lines.append(f"- run: {run.name} ({run.shown_path}), started {start.started or '?'}, {ended}")
    if finish is not None and finish.note:
        lines.append(f"- note: {finish.note}")
    if run.records.migrated_from is not None:
        lines.append(f"- records: upgraded from schema {run.records.migrated_from}")
    return lines


def overhead_line(result: View) -> str:
    """The harness's own cost per timed call, absolute and against the fastest step of the run."""
    overhead = result.overhead
    if overhead is None:
        return "harness overhead per timed call: not measured"
    timed = [r for r in result.rows if (cols.finite(r["step_median_s"]) or 0) > 0]
    text = f"harness overhead per timed call: {num(overhead * 1e6)} µs"
    if not timed:
        return text + " (no step was timed)"
    fastest = min(timed, key=lambda r: r["step_median_s"])
    share = 100 * overhead / fastest["step_median_s"]
    return (
        f"{text} = {num(share, 2)}% of the fastest step ({num(fastest['step_median_s'] * 1e3)} ms, "
        f"{fastest['backend']} {fastest['mode']} on {fastest['device']})"
    )


def markdown_table(rows: list[Row], columns: list[Column], metric: dict[str, str]) -> list[str]:
    lines = ["| " + " | ".join(md_cell(c.title(metric)) for c in columns) + " |"]
    lines.append("|" + "|".join("--:" if c.numbers else "---" for c in columns) + "|")
    lines += ["| " + " | ".join(md_cell(text) for text in cells(row, columns)) + " |" for row in rows]
    return lines


def legend(rows: list[Row], metric: dict[str, str]) -> list[str]:
    return [f"- **{c.title(metric)}**: {c.explain(metric)}" for c in shown(rows)]


def document(title: str, runs: Sequence[Run], rows: list[Row], warnings: list[str], after: list[str],
             plots: Sequence[str] = (), labels: Sequence[str] = ()) -> str:  # fmt: skip
    """A whole comparison.md: title, warnings, machine block(s), main table, details table, legend, plots."""
    metric = metric_of(runs)
    lines = [f"# {title}", ""]
    lines += [f"> **{md_cell(w)}**" + ("  " if i < len(warnings) - 1 else "") for i, w in enumerate(warnings)]
    lines += [""] if warnings else []
    for run, label in zip(runs, labels or [""] * len(runs)):
        heading = f"## Machine: {label} (run {run.name})" if len(runs) > 1 else "## Machine"
        lines += [heading, "", *machine_block(run), ""]
    lines += ["## Results", "", *markdown_table(rows, main_columns(rows), metric), ""]
    lines += ["## Details", "", *markdown_table(rows, detail_columns(rows), metric), ""]
    lines += ["## Columns", "", *legend(rows, metric), ""]
    lines += [*after, ""] if after else []
    lines += [f"![{name.rsplit('.', 1)[0]}]({name})" for name in plots]
    return "\n".join(lines).rstrip() + "\n"


def markdown(result: View, plots: Sequence[str] = ()) -> str:
    """comparison.md of one run."""
    return document(f"{TITLE}: {result.run.name}", [result.run], result.rows, result.run.warnings,
                    [overhead_line(result)], plots)  # fmt: skip


def csv_frame(table: pd.DataFrame, extra: dict[str, pd.Series] | None = None) -> pd.DataFrame:
    """The CSV's columns of the case table (plus `extra`): the texts a reader needs as columns of their own."""
    rows = table.to_dict("records")
    out = table.assign(
        outcome=[cols.outcome_cell(r) for r in rows],
        oracle=[cols.oracle_cell(r) for r in rows],
        notes=["; ".join(r["notes"]) for r in rows],
    )[cols.CSV_COLUMNS]
    if "label" in table:  # a merged table: the machine each row comes from
        out.insert(4, "machine", table["label"])
    return out.assign(**(extra or {}))


def csv_text(table: pd.DataFrame, extra: dict[str, pd.Series] | None = None) -> str:
    """One line per case; seconds, bytes and plain ratios (every digit); empty where not measured."""
    return csv_frame(table, extra).to_csv(index=False, lineterminator="\n")


def text_table(rows: list[Row], metric: dict[str, str]) -> list[str]:
    """The main table as fixed-width text, each row's notes on the line below it."""
    columns = main_columns(rows)
    grid = [[c.title(metric) for c in columns]]
    grid += [[" ".join(t.split())[: TERMINAL_CELL * (2 if skipped(row) else 1)] for t in cells(row, columns)]
             for row in rows]  # fmt: skip
    last = len(columns) - 1
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    # a skipped row's reason sits in the step column and may be long: let it run over instead of widening
    step = next((i for i, c in enumerate(columns) if c.skipped and not c.key), None)
    if step is not None:
        widths[step] = max([len(grid[0][step])] + [len(g[step]) for g, r in zip(grid[1:], rows) if not skipped(r)])

    def line(values: list[str], row: Row | None) -> str:
        parts = []
        for i, (text, c) in enumerate(zip(values, columns)):
            if row is not None and skipped(row) and i == step:
                parts.append(text)
                break
            parts.append(text.rjust(widths[i]) if c.numbers else text.ljust(widths[i]) if i < last else text)
        return "  ".join(parts).rstrip()

    out = [line(grid[0], None)]
    indent = " " * (sum(widths[:3]) + 4)
    for values, row in zip(grid[1:], rows):
        out.append(line(values, row))
        if row["notes"]:
            out.append(indent + " ".join("; ".join(row["notes"]).split())[:160])
    return out


def summary_lines(result: View) -> list[str]:
    """The terminal summary: warnings, the main table, the overhead line (also written to summary.txt)."""
    out = [f"warning: {w}" for w in result.run.warnings]
    return [*out, *text_table(result.rows, result.run.metric), overhead_line(result)]
