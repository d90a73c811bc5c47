"""The report's figures, drawn from saved JSON. matplotlib is imported lazily and only through Agg."""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from benchmarks.report_data import Row, Run

# distinct styles: the backends agree closely, so colour alone would hide lines under each other
STYLES = [("--", "o"), (":", "s"), ("-.", "^"), ((0, (5, 1)), "D"), ((0, (1, 1)), "v"), ((0, (3, 1, 1, 1)), "P")]


def _figure(width: float, height: float) -> Figure:
    # a Figure with its own Agg canvas, not pyplot: no global state, no GUI backend, safe in any process
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def subtitle(run: Run) -> str:
    """Machine line under every title: host, CPU, GPU, run name."""
    m = run.machine
    cpu = run.cpu_name or "?"
    parts = [str(m.get("node") or "?"), str(cpu)] + ([str(m["gpu"])] if m.get("gpu") else []) + [f"run {run.name}"]
    return " · ".join(parts)


def _titles(fig: Figure, ax: Axes, title: str, run: Run) -> None:
    fig.suptitle(title, fontweight="bold")
    ax.set_title(subtitle(run), fontsize=8, color="0.35")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _extra(entries: dict[tuple[str, str], dict[str, Any]], row: Row, key: str) -> Any:
    return (entries.get((row.backend, row.device), {}).get("extra_info") or {}).get(key)


def _label(backend: str, device: str) -> str:
    return f"{backend} ({device})"


def predictions_png(run: Run, rows: list[Row]) -> bytes | None:
    """True cos(t) over the held-out windows (red) and each backend's seed-0 prediction; None without data."""
    entries = run.entries("training_run")
    keyed = [(r, _extra(entries, r, "held_out")) for r in rows]
    keyed = [(r, h) for r, h in keyed if isinstance(h, dict) and h.get("t") and h.get("target")]
    if not keyed:
        return None
    fig = _figure(10, 5.5)
    ax = fig.add_subplot()
    first = keyed[0][1]
    ax.plot(first["t"], first["target"], color="red", linewidth=3, alpha=0.6, label="true cos(t)")
    for i, (row, held) in enumerate(keyed):
        style, marker = STYLES[i % len(STYLES)]
        if held.get("prediction") is None:
            ax.plot([], [], linestyle="none", label=f"{_label(row.backend, row.device)}: seed 0 diverged")
            continue
        pred = [float("nan") if v is None else v for v in held["prediction"]]
        ax.plot(held["t"], pred, linestyle=style, marker=marker, markersize=3, markevery=(i % 5, 5), linewidth=1.2,
                label=_label(row.backend, row.device))  # fmt: skip
    ax.set_xlabel("t (radians), held-out windows after training")
    ax.set_ylabel("output (cos t)")
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncol=min(4, len(keyed) + 1))
    _titles(fig, ax, "Held-out prediction of cos(t) from sin(t), seed 0, stream 0", run)
    return _png(fig)


SMOOTH = 10  # steps in the loss curves' moving mean


def loss_curves_png(run: Run, rows: list[Row]) -> bytes | None:
    """Training loss per step (log y): median over seeds per backend, min-max band; None without data."""
    import numpy as np

    entries = run.entries("training_run")
    curves = [(r, _extra(entries, r, "loss_curves")) for r in rows]
    curves = [(r, c) for r, c in curves if isinstance(c, list) and any(c)]
    if not curves:
        return None
    fig = _figure(10, 5.5)
    ax = fig.add_subplot()
    top, bottom = 0.0, float("inf")
    for i, (row, seeds) in enumerate(curves):
        length = max(len(c) for c in seeds)
        grid = np.full((len(seeds), length), np.nan)
        for s, curve in enumerate(seeds):
            grid[s, : len(curve)] = [np.nan if v is None else v for v in curve]
        grid[~(grid > 0)] = np.nan  # log axis: non-positive or diverged losses are left out
        if length >= SMOOTH:  # per-step losses at lr 0.02 jump by 10x; a moving mean shows the trend
            kernel = np.ones(SMOOTH) / SMOOTH
            grid = np.stack([np.convolve(g, kernel, mode="valid") for g in grid])
            length = grid.shape[1]
        with warnings.catch_warnings():  # steps where every seed diverged are all-NaN, and stay blank
            warnings.simplefilter("ignore", RuntimeWarning)
            median, low, high = np.nanmedian(grid, 0), np.nanmin(grid, 0), np.nanmax(grid, 0)
        raw = max(len(c) for c in seeds)
        steps = np.arange(raw - length + 1, raw + 1)  # each point sits at the last step it averages
        note = f", {row.diverged}/{row.seeds} seeds diverged" if row.diverged else ""
        (line,) = ax.plot(steps, median, linestyle=STYLES[i % len(STYLES)][0], linewidth=1.3,
                          label=f"{_label(row.backend, row.device)}{note}")  # fmt: skip
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.08, linewidth=0)
        if np.isfinite(high[:10]).any():
            top = max(top, float(np.nanmax(high[:10])))
        if np.isfinite(low).any():
            bottom = min(bottom, float(np.nanmin(low)))
    ax.set_yscale("log")
    if 0 < bottom < top:  # a diverged seed would stretch the axis to 1e6 and flatten the curves that matter
        ax.set_ylim(bottom / 2, top * 10)
    ax.set_xlabel("training step (one window each)")
    ax.set_ylabel("training loss (MSE over the window)")
    ax.grid(alpha=0.3, which="both")
    fig.legend(fontsize=8, loc="outside lower center", ncol=min(3, len(curves)))
    title = f"Training loss ({SMOOTH}-step moving mean): median over seeds, band = min to max"
    _titles(fig, ax, title, run)
    return _png(fig)


def step_times_png(run: Run, rows: list[Row]) -> bytes | None:
    """Train-step median per backend x device as bars with IQR whiskers, the min and each repeat's median;
    None without data."""
    timed = [r for r in rows if r.step_median]
    if not timed:
        return None
    ms = [r.step_median * 1e3 for r in timed]
    low = [max(0.0, (r.step_median - (r.step_q1 or r.step_median)) * 1e3) for r in timed]
    high = [max(0.0, ((r.step_q3 or r.step_median) - r.step_median) * 1e3) for r in timed]
    fig = _figure(10, 2.2 + 0.45 * len(timed))
    ax = fig.add_subplot()
    y = list(range(len(timed)))
    colors = ["tab:green" if r.device == "cuda" else "tab:blue" for r in timed]
    ax.barh(y, ms, xerr=[low, high], color=colors, alpha=0.75, capsize=3, error_kw={"elinewidth": 1})
    mins = [(r.step_min or r.step_median) * 1e3 for r in timed]
    ax.plot(mins, y, linestyle="none", marker="|", markersize=12, markeredgewidth=1, color="black", label="min")
    repeats = [
        (m * 1e3, yi) for r, yi in zip(timed, y) if len(r.step_repeat_medians) > 1 for m in r.step_repeat_medians
    ]
    if repeats:  # each repeat's median: how far the machine drifted between blocks
        xs, ys = zip(*repeats)
        ax.plot(xs, ys, linestyle="none", marker="o", markersize=3, color="black", alpha=0.6, label="repeat medians")
    for yi, value in zip(y, ms):
        ax.annotate(f"{value:.3g} ms", (value, yi), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.set_yticks(y, [_label(r.backend, r.device) for r in timed])
    ax.invert_yaxis()  # first row of the table on top
    right = max(m + h for m, h in zip(ms, high))
    if max(ms) / min(ms) > 20:  # a linear axis would flatten the fast backends to nothing
        ax.set_xscale("log")
        ax.set_xlim(min(mins) / 1.5, right * 2)  # room for the value labels
    else:
        ax.set_xlim(0, right * 1.15)
    ax.set_xlabel("train step: forward + BPTT + Adam on one window (ms); whiskers = IQR")
    ax.grid(alpha=0.3, axis="x", which="both")
    devices = [_patch(color, device) for device, color in (("cpu", "tab:blue"), ("cuda", "tab:green"))
               if any(r.device == device for r in timed)]  # fmt: skip
    handles = [*devices, *ax.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncol=3)
    _titles(fig, ax, "Train-step time per backend and device (median)", run)
    return _png(fig)


def _patch(color: str, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(color=color, alpha=0.75, label=label)


PLOTS = {"predictions.png": predictions_png, "loss_curves.png": loss_curves_png, "step_times.png": step_times_png}
