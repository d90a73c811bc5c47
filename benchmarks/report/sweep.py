"""The size sweep's report: the same case table as every run report (one row per backend x mode x device x
size, the same step-time statistic), seen across sizes.

- sweep.csv: the run CSV's columns plus, per op, the median in µs and the throughput in sequence steps per
  second (batch x seq_len / median: batch sizes compare);
- sweep.md: the winner at each size per device and op, with its margin over the runner-up (a tie when their
  repeat ranges overlap), the accuracy of each point when the sweep trained, the GPU/CPU ratios where both
  devices ran, and what was skipped and why;
- sweep-train_step.png, sweep-predict.png: time against each axis (the others fixed) and against work, log-log;
  sweep-winners.png: the winner map; sweep-throughput.png; sweep-gpu-cpu.png (where both devices ran).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import names
from benchmarks.report import tables
from benchmarks.report.cases import PREFIX, View
from benchmarks.report.columns import Row, metric_cell, outcome_cell
from benchmarks.report.frame import finite

CSV_FILE, MD_FILE = "sweep.csv", "sweep.md"
AXES = ("hidden", "batch", "seq_len")
WINNERS = "| size | winner | median | runner-up | median | margin |"
BUDGETS = ("point_budget_s", "max_call_s", "max_memory_mb", "setup_budget_s", "budget_s", "repeats")


def sizes_in(rows: Sequence[Row]) -> list[str]:
    """The sizes, by work."""
    return sorted({r["size"] for r in rows}, key=lambda s: (names.work(s), names.size_parts(s)))


def seconds(row: Row, op: str, stat: str = "median_s") -> float | None:
    return finite(row[f"{PREFIX[op]}_{stat}"])


def throughput(row: Row, op: str) -> float | None:
    """Sequence steps per second: batch x seq_len per call."""
    median = seconds(row, op)
    return row["batch"] * row["seq_len"] / median if median else None


def ranking(rows: Sequence[Row], device: str, op: str, size: str, model: str = "rnn") -> list[Row]:
    """Measured rows of one device, op, size and model, fastest first."""
    timed = [r for r in rows if (r["device"], r["size"], r["model"]) == (device, size, model) and seconds(r, op)]
    return sorted(timed, key=lambda r: seconds(r, op))  # type: ignore[arg-type, return-value]


def panels(rows: Sequence[Row]) -> list[tuple[str, str, str]]:
    """(device, op, model) of every winners table: devices in table order, models as first seen."""
    devices = [d for d in names.DEVICE_ORDER if any(r["device"] == d for r in rows)]
    models = list(dict.fromkeys(r["model"] for r in rows))
    return [(d, op, m) for d in devices for m in models for op in names.OPS]


def tie(winner: Row, runner_up: Row, op: str) -> bool:
    """Whether the runner-up's repeat range overlaps the winner's: within the run's noise, not ranked."""
    return seconds(runner_up, op, "low_s") <= seconds(winner, op, "high_s")  # type: ignore[operator]


def _time(value: float) -> str:
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def margin(winner: Row, runner_up: Row, op: str) -> str:
    factor = seconds(runner_up, op) / seconds(winner, op)  # type: ignore[operator]
    text = f"{factor:.2f}× ({(factor - 1) * 100:.0f}% slower)"
    return f"tie: {text}, within the noise (repeat ranges overlap)" if tie(winner, runner_up, op) else text


def label(row: Row) -> str:
    """'torch-rnn eager', with the model where it is not the vanilla RNN."""
    model = "" if row["model"] == "rnn" else f" ({row['model']})"
    return f"{row['backend']} {row['mode']}{model}"


def crossovers(rows: Sequence[Row], op: str = "train_step") -> dict[str, list[tuple[str, float]]]:
    """backend-mode -> [(size, GPU/CPU ratio)] over the sizes measured on both devices, by work."""
    out: dict[str, list[tuple[str, float]]] = {}
    for row in rows:
        ratio = finite(row[f"{PREFIX[op]}_gpu_cpu"])
        if ratio is not None:
            out.setdefault(label(row), []).append((row["size"], ratio))
    return {k: sorted(v, key=lambda sv: names.work(sv[0])) for k, v in out.items()}


def _crossover_text(ratios: list[tuple[str, float]]) -> str:
    if all(r < 1 for _, r in ratios):
        return "GPU faster at every size measured on both"
    if all(r >= 1 for _, r in ratios):
        return "CPU faster at every size measured on both"
    for i, (size, _) in enumerate(ratios):
        if all(r < 1 for _, r in ratios[i:]):
            return f"GPU faster from {size} on (sizes by work)"
    return "no single crossover (the ratio crosses 1 more than once)"


def csv_text(result: View) -> str:
    """sweep.csv: the run CSV plus, per op, the median in µs and the throughput."""
    rows, extra = result.rows, {}
    for op in names.OPS:
        us = [seconds(r, op) for r in rows]
        extra[f"{op}_median_us"] = pd.Series([None if v is None else v * 1e6 for v in us], dtype="float64")
        extra[f"{op}_seq_steps_per_s"] = pd.Series([throughput(r, op) for r in rows], dtype="float64")
    return tables.csv_text(result.table, extra)


def trained(result: View) -> bool:
    return bool(result.run.options.get("accuracy")) or any(r["seeds"] for r in result.rows)


def markdown(result: View, plots: Sequence[str] = ()) -> str:
    run, rows = result.run, result.rows
    m, opts = run.machine, run.options
    versions = "; ".join(f"{k}={v}" for k, v in (m.frameworks if m else {}).items() if v != "*not-installed*")
    commit = ((m.commit or "unknown")[:12] + ("-dirty" if m.dirty else "")) if m else "unknown"
    where = f"{m.host}, {m.cpu}" + (f", GPU {m.gpu}" if m.gpu else ", no GPU") if m else "not recorded"
    compiling = sorted({label(r) for r in rows if names.compiles_per_size(r["mode"])})
    lines = [
        f"# Size sweep {run.name}",
        "",
        *[f"> **{w}**" for w in run.warnings],
        f"- machine: {where}",
        f"- commit {commit}, threads {opts.get('threads', '?')}; {versions}",
        f"- sizes (hidden×batch×seq_len, by work): {', '.join(sizes_in(rows))}",
        "- budgets: " + ", ".join(f"{k} {opts[k]}" for k in BUDGETS if k in opts),
        "- " + ("complete" if run.records.complete else "**incomplete**: the sweep did not finish"),
        "",
        "Step time is the median over repeats of each repeat's median round (as in every report of this suite), the "
        "lowest–highest repeat median its noise. Margin: the runner-up's median over the winner's; a **tie** when "
        "their repeat ranges overlap, which this run cannot order. "
        + (
            f"Trained at every measured point ({opts.get('seeds', '?')} seed(s) × {opts.get('train_steps', '?')} "
            "steps): the accuracy section gives the held-out metric over learned seeds and every point's outcome."
            if trained(result)
            else "Time only (no training: the seed's learning rate does not carry to other sizes)."
        ),
    ]
    if compiling:
        lines.append(f"Modes that compile again at every size (their first step includes it): {', '.join(compiling)}.")
    for device, op, model in panels(rows):
        heading = f"## Winners: {op} on {device}" + ("" if model == "rnn" else f", {model}")
        lines += ["", heading, "", WINNERS, "|---|---|---|---|---|---|"]
        for size in sizes_in(rows):
            ranked = ranking(rows, device, op, size, model)
            if not ranked:
                lines.append(f"| {size} | — | | | | |")
            elif len(ranked) == 1:
                w = ranked[0]
                lines.append(f"| {size} | {label(w)} | {_time(seconds(w, op))} | — | | only one measured |")  # type: ignore[arg-type]
            else:
                w, r = ranked[:2]
                lines.append(f"| {size} | {label(w)} | {_time(seconds(w, op))} | {label(r)} | "  # type: ignore[arg-type]
                             f"{_time(seconds(r, op))} | {margin(w, r, op)} |")  # type: ignore[arg-type]  # fmt: skip
    if trained(result):
        lines += _accuracy(result)
    lines += _gpu_cpu(rows) + _skipped(rows)
    lines += ["", "## Files", "", f"- {CSV_FILE}: one row per backend × mode × device × size"]
    lines += [f"- {name}" for name in plots]
    return "\n".join(lines) + "\n"


def _accuracy(result: View) -> list[str]:
    metric = result.run.metric["label"]
    lines = ["", "## Accuracy", "", f"{metric}: median [first–third quartile] over the learned seeds; outcome per "
             f"seed: learned, diverged, or did not learn (no better than {result.run.metric['trivial']}).", "",
             f"| size | case | {metric} | outcome |", "|---|---|--:|---|"]  # fmt: skip
    rows = [r for r in result.rows if r["status"] == "measured"]
    for size in sizes_in(rows):
        for row in (r for r in rows if r["size"] == size):
            name = names.case_label(row["backend"], row["mode"], row["device"])
            lines.append(f"| {size} | {name} | {metric_cell(row)} | {outcome_cell(row) or 'not trained'} |")
    return lines


def _gpu_cpu(rows: Sequence[Row]) -> list[str]:
    ratios = crossovers(rows)
    lines = ["", "## GPU / CPU", ""]
    if not ratios:
        return lines + ["No size was measured on both devices."]
    lines += ["train_step median on the GPU over the CPU's (below 1: the GPU is faster).", ""]
    lines += ["| backend mode | ratios by size | crossover |", "|---|---|---|"]
    for name, rs in ratios.items():
        lines.append(f"| {name} | {', '.join(f'{s} {r:.2g}' for s, r in rs)} | {_crossover_text(rs)} |")
    return lines


def _skipped(rows: Sequence[Row]) -> list[str]:
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row["status"] != "measured":
            name = names.case_label(row["backend"], row["mode"], row["device"])
            groups.setdefault((name, row["status"]), []).append(row)
    lines = ["", "## Skipped", ""]
    if not groups:
        return lines + ["Nothing was skipped."]
    lines += ["| case | status | sizes | why (at the first of them) |", "|---|---|---|---|"]
    for (name, status), group in groups.items():
        group.sort(key=lambda r: names.work(r["size"]))
        reason = " ".join(group[0]["reason"].split()).replace("|", "\\|")
        lines.append(f"| {name} | {status} | {', '.join(r['size'] for r in group)} | {reason} |")
    return lines


# ---- plots (matplotlib's object API through benchmarks.report.plots) ----


def _colours(rows: Sequence[Row]) -> dict[str, Any]:
    """A colour per backend-mode, stable in table order."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return {name: cmap(i % 20) for i, name in enumerate(dict.fromkeys(label(r) for r in rows))}


def _axis_line(sizes: Sequence[str], axis: int) -> list[str]:
    """The longest run of sizes that differ only along `axis` (the others fixed), ordered along it."""
    groups: dict[tuple[int, ...], set[str]] = {}
    for size in sizes:
        dims = names.size_parts(size)
        groups.setdefault(tuple(d for i, d in enumerate(dims) if i != axis), set()).add(size)
    if not groups:
        return []
    key = max(groups, key=lambda k: (len(groups[k]), [-d for d in k]))
    return sorted(groups[key], key=lambda s: names.size_parts(s)[axis])


def _series(rows: Sequence[Row]) -> dict[tuple[str, str], list[Row]]:
    out: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        out.setdefault((label(row), row["device"]), []).append(row)
    return out


def _legend(fig: Any, axes: Any) -> None:
    handles: dict[str, Any] = {}
    for ax in np.ravel(axes):
        for handle, text in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(text, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)


def plot_axes(rows: Sequence[Row], op: str, colours: dict[str, Any]) -> bytes | None:
    from benchmarks.report.plots import figure, png

    sizes = sizes_in(rows)
    lines = [_axis_line(sizes, i) for i in range(3)]
    part: Callable[[int], Callable[[str], float]] = lambda i: lambda s: names.size_parts(s)[i]  # noqa: E731
    panels = [(AXES[i], lines[i], part(i)) for i in range(3) if len(lines[i]) >= 2]
    panels.append(("work (batch × seq_len × hidden²)", sizes, names.work))
    fig = figure(4.2 * len(panels), 4, layout="tight")
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (name, chosen, x_of) in zip(axes[0], panels):
        for (case, device), series in _series(rows).items():
            xy = sorted((x_of(r["size"]), v) for r in series if r["size"] in chosen and (v := seconds(r, op)))
            line = names.style(device).line
            if xy:
                xs, ys = zip(*xy)
                ax.plot(xs, ys, linestyle=line if name in AXES else "none", marker="o", ms=3, color=colours[case])
                ax.plot([], [], linestyle=line, color=colours[case], label=f"{case} @{device}")
        ax.set(xscale="log", yscale="log", xlabel=name, ylabel=f"{op} median (s)")
        if name in AXES:
            fixed = [f"{a}={d}" for a, d in zip(AXES, names.size_parts(chosen[0])) if a != name]
            ax.set_title(", ".join(fixed), fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{op} step time against size (log–log)")
    _legend(fig, axes)
    return png(fig, bbox_inches="tight")


def plot_winners(rows: Sequence[Row], colours: dict[str, Any]) -> bytes | None:
    from matplotlib.colors import to_rgba

    from benchmarks.report.plots import figure, png

    sizes = sizes_in(rows)
    grid = panels(rows)
    if not sizes or not grid:
        return None
    image = np.ones((len(grid), len(sizes), 4))
    fig = figure(1.3 * len(sizes) + 2, 0.9 * len(grid) + 1.6, layout="tight")
    ax = fig.add_subplot()
    for i, (device, op, model) in enumerate(grid):
        for j, size in enumerate(sizes):
            ranked = ranking(rows, device, op, size, model)
            if not ranked:
                ax.text(j, i, "—", ha="center", va="center", fontsize=7)
                continue
            w = ranked[0]
            image[i, j] = to_rgba(colours[label(w)], 0.8)
            extra = ""
            if len(ranked) > 1:
                factor = seconds(ranked[1], op) / seconds(w, op)  # type: ignore[operator]
                extra = f"\ntie ×{factor:.2f}" if tie(w, ranked[1], op) else f"\n×{factor:.2f}"
            ax.text(j, i, f"{w['backend']}\n{w['mode']}{extra}", ha="center", va="center", fontsize=6)
    ax.imshow(image, aspect="auto")
    ax.set_xticks(range(len(sizes)), sizes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(grid)), [f"{op} @{d}" + ("" if m == "rnn" else f" {m}") for d, op, m in grid], fontsize=8)
    ax.set_title("Fastest at each size (×: runner-up's time over the winner's; tie: their repeat ranges overlap)",
                 fontsize=9)  # fmt: skip
    ax.set_xlabel("size (hidden×batch×seq_len), by work")
    return png(fig, bbox_inches="tight")


def plot_throughput(rows: Sequence[Row], colours: dict[str, Any]) -> bytes | None:
    from benchmarks.report.plots import figure, png

    sizes = sizes_in(rows)
    fig = figure(6 * len(names.OPS), 4.2, layout="tight")
    axes = fig.subplots(1, len(names.OPS), squeeze=False)
    for ax, op in zip(axes[0], names.OPS):
        for (case, device), series in _series(rows).items():
            xy = sorted((sizes.index(r["size"]), t) for r in series if (t := throughput(r, op)) is not None)
            if xy:
                xs, ys = zip(*xy)
                ax.plot(xs, ys, names.style(device).line, marker="o", ms=3, color=colours[case],
                        label=f"{case} @{device}")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xticks(range(len(sizes)), sizes, rotation=45, ha="right", fontsize=7)
        ax.set(xlabel="size (hidden×batch×seq_len), by work", ylabel="sequence steps / s (batch × seq_len / step)")
        ax.set_title(op)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Throughput")
    _legend(fig, axes)
    return png(fig, bbox_inches="tight")


def plot_gpu_cpu(rows: Sequence[Row], colours: dict[str, Any]) -> bytes | None:
    """GPU/CPU step-time ratio against size, where a size was measured on both devices; None if none was."""
    from benchmarks.report.plots import figure, png

    per_op = {op: crossovers(rows, op) for op in names.OPS}
    if not any(per_op.values()):
        return None
    sizes = sorted({s for ratios in per_op.values() for rs in ratios.values() for s, _ in rs}, key=names.work)
    fig = figure(max(6.0, 0.8 * len(sizes) + 3), 4.2, layout="tight")
    ax = fig.add_subplot()
    for op, line in zip(names.OPS, ("-", ":")):
        for case, rs in per_op[op].items():
            ax.plot([sizes.index(s) for s, _ in rs], [r for _, r in rs], line, marker="o", ms=3, color=colours[case],
                    label=f"{case} {op}")  # fmt: skip
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    low, high = min(low, 0.5), max(high, 2.0)  # 1 always in view
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axhspan(low, 1.0, color="green", alpha=0.06)
    ax.set_ylim(low, high)
    ax.set_xticks(range(len(sizes)), sizes, rotation=45, ha="right", fontsize=7)
    ax.set(xlabel="size (hidden×batch×seq_len), by work", ylabel="GPU time / CPU time (below 1: GPU faster)")
    ax.set_title("GPU/CPU step-time ratio (solid: train_step, dotted: predict)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return png(fig, bbox_inches="tight")


def draw(result: View) -> dict[str, bytes]:
    """Every sweep figure that has data, by file name."""
    rows = result.rows
    colours = _colours(rows)
    figures = {
        "sweep-train_step.png": plot_axes(rows, "train_step", colours),
        "sweep-predict.png": plot_axes(rows, "predict", colours),
        "sweep-winners.png": plot_winners(rows, colours),
        "sweep-throughput.png": plot_throughput(rows, colours),
        "sweep-gpu-cpu.png": plot_gpu_cpu(rows, colours),
    }
    return {name: data for name, data in figures.items() if data is not None}


def render_sweep(folder: str | Path, plots: bool = True) -> list[Path]:
    """Write sweep.csv, sweep.md and (unless `plots` is False) the plots into a sweep folder; the files written.
    The same as `benchmarks.report.render(folder)` on a sweep folder."""
    from benchmarks.report.write import render

    return render(folder, plots=plots)[0]
