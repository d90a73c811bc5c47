"""The report's figures as PNG bytes, drawn from rows. matplotlib is imported here only, through Agg (a
Figure with its own canvas, no pyplot state); a figure without data is not drawn."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.report.rows import Row, RunInfo, RunRows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# a GPU row must stand out from a cpu row by shape as well as colour
DEVICE_STYLE = {"cpu": ("o", "tab:blue"), "cuda": ("D", "tab:orange")}
OTHER_STYLE = ("s", "tab:gray")
LINES = ["-", "--", ":", "-."]
SMOOTH = 10  # steps in the loss curves' moving mean


def _figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _style(device: str) -> tuple[str, str]:
    return DEVICE_STYLE.get(device, OTHER_STYLE)


def label(row: Row, rows: Sequence[Row] = ()) -> str:
    """backend mode @device, with the machine and size when the rows differ in them."""
    text = f"{row.case.backend} {row.case.mode} @{row.case.device}"
    if len({r.case.size for r in rows}) > 1:
        text += f" {row.case.size}"
    if row.machine and len({r.machine for r in rows}) > 1:
        text += f" · {row.machine}"
    return text


def subtitle(runs: Sequence[RunInfo]) -> str:
    """host · CPU · GPU · run, for each run."""
    parts = []
    for run in runs:
        m = run.machine
        bits = [m.host, m.cpu] + ([m.gpu] if m.gpu else []) if m else []
        parts.append(" · ".join([*bits, f"run {run.name}"]))
    return "\n".join(parts)


def _titles(fig: Figure, title: str, runs: Sequence[RunInfo]) -> None:
    fig.suptitle(f"{title}\n{subtitle(runs)}", fontsize=10)


def _device_legend(ax: Axes, rows: Sequence[Row], extra: Sequence[Any] = ()) -> None:
    from matplotlib.lines import Line2D

    handles = []
    for device in dict.fromkeys(r.case.device for r in rows):
        marker, colour = _style(device)
        handles.append(Line2D([], [], linestyle="none", marker=marker, color=colour, label=device))
    ax.legend(handles=[*handles, *extra], fontsize=8, loc="best")


def step_times(rows: Sequence[Row], runs: Sequence[RunInfo]) -> bytes | None:
    """Each row's step median as a dot with its interval (lowest–highest repeat median; Q1–Q3 of the rounds
    with one repeat) on a log axis, in table order; each repeat's median faint. None without timed rows."""
    from matplotlib.lines import Line2D

    timed = [r for r in rows if r.step is not None and r.step.median > 0]
    if not timed:
        return None
    fig = _figure(10, 1.6 + 0.36 * len(timed))
    ax = fig.add_subplot()
    for y, row in enumerate(timed):
        marker, colour = _style(row.case.device)
        median = row.step.median * 1e3
        low, high = (v * 1e3 for v in row.step.interval)
        ax.plot([low, high], [y, y], color=colour, linewidth=2, alpha=0.6, solid_capstyle="butt")
        ax.plot([median], [y], linestyle="none", marker=marker, color=colour, markersize=7)
        if row.step.repeats > 1:
            ax.plot([m * 1e3 for m in row.step.repeat_medians], [y] * row.step.repeats, linestyle="none",
                    marker="|", color="black", alpha=0.35, markersize=8)  # fmt: skip
        ax.annotate(f"{median:.3g} ms", (high, y), xytext=(5, -3), textcoords="offset points", fontsize=7)
    ax.set_yticks(range(len(timed)), [label(r, timed) for r in timed], fontsize=8)
    ax.invert_yaxis()  # the table's first row on top
    ax.set_xscale("log")
    lows = [r.step.interval[0] * 1e3 for r in timed]
    highs = [r.step.interval[1] * 1e3 for r in timed]
    ax.set_xlim(min(lows) / 1.5, max(highs) * 3)  # room for the value labels
    ax.set_xlabel("train step: forward + BPTT + Adam on one window (ms, log scale)")
    ax.grid(alpha=0.3, axis="x", which="both")
    extra = [
        Line2D([], [], color="0.4", linewidth=2, alpha=0.6, label="lowest–highest repeat median (one repeat: IQR)"),
        Line2D([], [], linestyle="none", marker="|", color="black", alpha=0.35, label="each repeat's median"),
    ]
    _device_legend(ax, timed, extra)
    _titles(fig, "Train-step time per case: median over repeats", runs)
    return _png(fig)


def speed_accuracy(rows: Sequence[Row], runs: Sequence[RunInfo], metric: dict[str, str]) -> bytes | None:
    """One point per row: step median (x) against the metric's median over converged seeds (y), each
    seed faint behind it. None without rows that have both."""
    both = [r for r in rows if r.step is not None and r.step.median > 0 and r.converged]
    if not both:
        return None
    fig = _figure(10, 6)
    ax = fig.add_subplot()
    values = [v for r in both for v in r.converged]
    for row in both:
        marker, colour = _style(row.case.device)
        x = row.step.median * 1e3
        ax.plot([x] * len(row.converged), row.converged, linestyle="none", marker=marker, color=colour, alpha=0.2,
                markersize=4)  # fmt: skip
        median = float(np.median(row.converged))
        ax.plot([x], [median], linestyle="none", marker=marker, color=colour, markersize=8, markeredgecolor="black")
        ax.annotate(label(row, both), (x, median), xytext=(6, 3), textcoords="offset points", fontsize=7)
    ax.set_xscale("log")
    if min(values) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("train step median (ms, log scale): left is faster")
    ax.set_ylabel(f"{metric['label']}: median over converged seeds (faint: each seed); lower is better")
    ax.grid(alpha=0.3, which="both")
    _device_legend(ax, both)
    _titles(fig, f"Speed and accuracy: step time against {metric['label']}", runs)
    return _png(fig)


def predictions(result: RunRows) -> bytes | None:
    """Small multiples: each case's held-out prediction (seed 0, stream 0) against the target. None without any."""
    task = result.run.task
    panels = []
    for row in result.rows:
        held = result.held_out.get(row.case.size)
        pred = next((t.predictions for t in row.trainings if t.predictions), None)
        if held is not None and pred:
            panels.append((row, held, pred))
    if not panels:
        return None
    cols = min(3, len(panels))
    rows_n = math.ceil(len(panels) / cols)
    height = 1.2 + 2.3 * rows_n
    fig = _figure(4 * cols, height, layout=None)  # a fixed grid: constrained layout costs seconds for many panels
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / height, top=1 - 0.8 / height, hspace=0.35, wspace=0.12)
    axes = fig.subplots(rows_n, cols, sharex=True, sharey=True, squeeze=False)
    target_label = str(task.get("target_label") or "target")
    for ax, (row, held, pred) in zip(axes.flat, panels):
        n = min(len(held.t), len(pred))
        ax.plot(held.t, held.target, color="0.6", linewidth=3, label=f"true {target_label}")
        marker, colour = _style(row.case.device)
        ax.plot(held.t[:n], pred[:n], color=colour, linewidth=1.2, label="prediction")
        ax.set_title(label(row, [p[0] for p in panels]), fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    last = (len(panels) - 1) // cols
    for col in range(cols):  # the lowest panel of each column carries the axis labels
        ax = axes[last if last * cols + col < len(panels) else last - 1, col]
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel(str(task.get("axis_label") or "t"), fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(target_label, fontsize=8)
    axes.flat[0].legend(fontsize=7, loc="best")
    source = task.get("input_label") or "the input"
    _titles(fig, f"Held-out prediction of {target_label} from {source} (seed 0, stream 0)", [result.run])
    return _png(fig)


def loss_curves(result: RunRows) -> bytes | None:
    """Training loss per step: each case's median over seeds (a moving mean), lines only. None without curves."""
    curves = [(r, [t.losses for t in r.trainings if t.losses]) for r in result.rows]
    curves = [(r, c) for r, c in curves if c]
    if not curves:
        return None
    fig = _figure(10, 6)
    ax = fig.add_subplot()
    colours = [f"C{i}" for i in range(10)]
    for i, (row, seeds) in enumerate(curves):
        length = max(len(c) for c in seeds)
        grid = np.full((len(seeds), length), np.nan)
        for s, curve in enumerate(seeds):
            grid[s, : len(curve)] = [np.nan if v is None else v for v in curve]
        grid[~(grid > 0)] = np.nan  # log axis: non-positive or diverged losses are left out
        with warnings.catch_warnings():  # steps where every seed diverged are all-NaN and stay blank
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(grid, axis=0)
        steps = np.arange(1, length + 1, dtype=float)
        if length >= SMOOTH:  # per-step losses at lr 0.02 jump tenfold: a moving mean shows the trend
            median = np.convolve(median, np.ones(SMOOTH) / SMOOTH, mode="valid")
            steps = steps[SMOOTH - 1 :]
        note = f" ({len(row.diverged)}/{row.seeds} diverged)" if row.diverged else ""
        ax.plot(steps, median, color=colours[i % len(colours)], linestyle=LINES[(i // len(colours)) % len(LINES)],
                linewidth=1.3, label=label(row, result.rows) + note)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("training step (one window each)")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3, which="both")
    fig.legend(fontsize=7, loc="outside lower center", ncol=3)
    _titles(fig, f"Training loss: median over seeds, {SMOOTH}-step moving mean", [result.run])
    return _png(fig)


def draw_run(result: RunRows) -> dict[str, bytes]:
    """Every figure of one run that has data, by file name."""
    figures = {
        "step_times.png": step_times(result.rows, [result.run]),
        "speed_accuracy.png": speed_accuracy(result.rows, [result.run], result.run.metric),
        "predictions.png": predictions(result),
        "loss_curves.png": loss_curves(result),
    }
    return {name: png for name, png in figures.items() if png is not None}
