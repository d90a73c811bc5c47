"""The run report's figures as PNG bytes, drawn from the case table and the frame. matplotlib through its object
API only (a Figure with its own Agg canvas, no pyplot state); a figure without data is not drawn."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks import names
from benchmarks.report.cases import View
from benchmarks.report.columns import Row
from benchmarks.report.frame import Run, finite

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LINES = ["-", "--", ":", "-."]
SMOOTH = 10  # steps in the loss curves' moving mean


def figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **kwargs)
    return buf.getvalue()


def _style(device: str) -> tuple[str, str]:
    style = names.style(device)
    return style.marker, style.colour


def label(row: Row, rows: Sequence[Row] = ()) -> str:
    """backend mode @device, with the machine and size when the rows differ in them."""
    text = names.case_label(row["backend"], row["mode"], row["device"])
    if len({r["size"] for r in rows}) > 1:
        text += f" {row['size']}"
    if len({r["model"] for r in rows}) > 1:
        text += f" {row['model']}"
    if row.get("label") and len({r.get("label") for r in rows}) > 1:
        text += f" · {row['label']}"
    return text


def subtitle(runs: Sequence[Run]) -> str:
    """host · CPU · GPU · run, for each run."""
    parts = []
    for run in runs:
        m = run.machine
        bits = [m.host, m.cpu] + ([m.gpu] if m.gpu else []) if m else []
        parts.append(" · ".join([*bits, f"run {run.name}"]))
    return "\n".join(parts)


def _titles(fig: Figure, title: str, runs: Sequence[Run]) -> None:
    fig.suptitle(f"{title}\n{subtitle(runs)}", fontsize=10)


def _device_legend(ax: Axes, rows: Sequence[Row], extra: Sequence[Any] = ()) -> None:
    from matplotlib.lines import Line2D

    handles = []
    for device in dict.fromkeys(r["device"] for r in rows):
        marker, colour = _style(device)
        handles.append(Line2D([], [], linestyle="none", marker=marker, color=colour, label=device))
    ax.legend(handles=[*handles, *extra], fontsize=8, loc="best")


def _timed(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if (finite(r["step_median_s"]) or 0) > 0]


def step_times(rows: Sequence[Row], runs: Sequence[Run]) -> bytes | None:
    """Each row's step median as a dot with the lowest–highest repeat median on a log axis, in table order; each
    repeat's median faint. None without timed rows."""
    from matplotlib.lines import Line2D

    timed = _timed(rows)
    if not timed:
        return None
    fig = figure(10, 1.6 + 0.36 * len(timed))
    ax = fig.add_subplot()
    for y, row in enumerate(timed):
        marker, colour = _style(row["device"])
        median = row["step_median_s"] * 1e3
        low, high = row["step_low_s"] * 1e3, row["step_high_s"] * 1e3
        ax.plot([low, high], [y, y], color=colour, linewidth=2, alpha=0.6, solid_capstyle="butt")
        ax.plot([median], [y], linestyle="none", marker=marker, color=colour, markersize=7)
        medians = row["step_repeat_medians"]
        if len(medians) > 1:
            ax.plot([m * 1e3 for m in medians], [y] * len(medians), linestyle="none", marker="|", color="black",
                    alpha=0.35, markersize=8)  # fmt: skip
        ax.annotate(f"{median:.3g} ms", (high, y), xytext=(5, -3), textcoords="offset points", fontsize=7)
    ax.set_yticks(range(len(timed)), [label(r, timed) for r in timed], fontsize=8)
    ax.invert_yaxis()  # the table's first row on top
    ax.set_xscale("log")
    ax.set_xlim(min(r["step_low_s"] for r in timed) * 1e3 / 1.5, max(r["step_high_s"] for r in timed) * 3e3)
    ax.set_xlabel("train step: forward + BPTT + Adam on one window (ms, log scale)")
    ax.grid(alpha=0.3, axis="x", which="both")
    extra = [
        Line2D([], [], color="0.4", linewidth=2, alpha=0.6, label="lowest–highest repeat median"),
        Line2D([], [], linestyle="none", marker="|", color="black", alpha=0.35, label="each repeat's median"),
    ]
    _device_legend(ax, timed, extra)
    _titles(fig, "Train-step time per case: median over repeats", runs)
    return png(fig)


def speed_accuracy(rows: Sequence[Row], runs: Sequence[Run], metric: dict[str, str]) -> bytes | None:
    """One point per row: step median (x) against the metric's median over learned seeds (y), each learned seed
    faint behind it. None without rows that have both."""
    both = [r for r in _timed(rows) if r["learned_metrics"]]
    if not both:
        return None
    fig = figure(10, 6)
    ax = fig.add_subplot()
    values = [v for r in both for v in r["learned_metrics"]]
    for row in both:
        marker, colour = _style(row["device"])
        x, seeds = row["step_median_s"] * 1e3, row["learned_metrics"]
        ax.plot([x] * len(seeds), seeds, linestyle="none", marker=marker, color=colour, alpha=0.2, markersize=4)
        median = float(np.median(seeds))
        ax.plot([x], [median], linestyle="none", marker=marker, color=colour, markersize=8, markeredgecolor="black")
        ax.annotate(label(row, both), (x, median), xytext=(6, 3), textcoords="offset points", fontsize=7)
    ax.set_xscale("log")
    if min(values) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("train step median (ms, log scale): left is faster")
    ax.set_ylabel(f"{metric['label']}: median over learned seeds (faint: each); lower is better")
    ax.grid(alpha=0.3, which="both")
    _device_legend(ax, both)
    _titles(fig, f"Speed and accuracy: step time against {metric['label']}", runs)
    return png(fig)


def _per_case(result: View, column: str) -> dict[tuple[str, ...], list[Any]]:
    """The non-empty values of a training column per case key, seeds in record order."""
    trainings = result.frame[result.frame["kind"] == "training"].sort_values("order")
    out: dict[tuple[str, ...], list[Any]] = {}
    for row in trainings[["backend", "mode", "device", "size", column]].itertuples(index=False, name=None):
        if isinstance(row[-1], list) and row[-1]:
            out.setdefault(row[:-1], []).append(row[-1])
    return out


def _key(row: Row) -> tuple[str, ...]:
    return row["backend"], row["mode"], row["device"], row["size"]


def predictions(result: View) -> bytes | None:
    """Small multiples: each case's held-out prediction (first seed that has one, stream 0) against the target.
    None without any."""
    task, held_out, found = result.run.task, result.run.held_out, _per_case(result, "predictions")
    panels = [(r, held_out[r["size"]], found[_key(r)][0]) for r in result.rows
              if _key(r) in found and r["size"] in held_out]  # fmt: skip
    if not panels:
        return None
    cols = min(3, len(panels))
    rows_n = math.ceil(len(panels) / cols)
    height = 1.2 + 2.3 * rows_n
    fig = figure(4 * cols, height, layout=None)  # a fixed grid: constrained layout costs seconds for many panels
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / height, top=1 - 0.8 / height, hspace=0.35, wspace=0.12)
    axes = fig.subplots(rows_n, cols, sharex=True, sharey=True, squeeze=False)
    target_label = str(task.get("target_label") or "target")
    for ax, (row, held, pred) in zip(axes.flat, panels):
        n = min(len(held.t), len(pred))
        ax.plot(held.t, held.target, color="0.6", linewidth=3, label=f"true {target_label}")
        ax.plot(held.t[:n], pred[:n], color=_style(row["device"])[1], linewidth=1.2, label="prediction")
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
    return png(fig)


def loss_curves(result: View) -> bytes | None:
    """Training loss per step: each case's median over seeds (a moving mean), lines only. None without curves."""
    found = _per_case(result, "losses")
    curves = [(r, found[_key(r)]) for r in result.rows if _key(r) in found]
    if not curves:
        return None
    fig = figure(10, 6)
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
        note = f" ({row['diverged']}/{row['seeds']} diverged)" if row["diverged"] else ""
        ax.plot(steps, median, color=colours[i % len(colours)], linestyle=LINES[(i // len(colours)) % len(LINES)],
                linewidth=1.3, label=label(row, result.rows) + note)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("training step (one window each)")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3, which="both")
    fig.legend(fontsize=7, loc="outside lower center", ncol=3)
    _titles(fig, f"Training loss: median over seeds, {SMOOTH}-step moving mean", [result.run])
    return png(fig)


def draw_run(result: View) -> dict[str, bytes]:
    """Every figure of one run that has data, by file name."""
    figures = {
        "step_times.png": step_times(result.rows, [result.run]),
        "speed_accuracy.png": speed_accuracy(result.rows, [result.run], result.run.metric),
        "predictions.png": predictions(result),
        "loss_curves.png": loss_curves(result),
    }
    return {name: data for name, data in figures.items() if data is not None}
