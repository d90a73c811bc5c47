"""The size sweep's report, from a sweep folder's records only (numpy and matplotlib, no framework).

`render_sweep(folder)` writes into the folder:
- sweep.csv: one row per backend x mode x device x size (skipped points too, with why), plus run-level
  columns (host, CPU, GPU, commit, threads, versions);
- sweep.md: the winner at each size per device and operation, with its margin over the runner-up; the
  GPU/CPU crossover where both devices were measured; what was skipped and why;
- sweep-train_step.png, sweep-predict.png: step time against each axis (hidden, batch, seq_len; the
  others fixed) and against work (batch x seq x hidden^2, every size), log-log, one line per case;
- sweep-winners.png: the winner map over sizes; sweep-throughput.png: sequence steps per second
  (batch x seq_len / step time, so batch sizes compare); sweep-gpu-cpu.png: GPU/CPU step-time ratio
  against size, where a size was measured on both devices.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import records

OPS = ("train_step", "predict")
AXES = ("hidden", "batch", "seq_len")
CSV_FILE, MD_FILE = "sweep.csv", "sweep.md"
DEVICE_STYLE = {"cpu": "-", "cuda": "--"}


@dataclasses.dataclass
class Point:
    """One backend x mode x device at one size, as the records tell it."""

    backend: str
    mode: str
    device: str
    size: str
    seconds: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # op -> every round, all repeats
    repeats: dict[str, int] = dataclasses.field(default_factory=dict)
    first_step_s: float | None = None
    params: int | None = None
    framework: str = ""
    skipped: list[records.Skipped] = dataclasses.field(default_factory=list)
    metrics: list[float] = dataclasses.field(default_factory=list)  # held-out metric per seed, when trained

    @property
    def dims(self) -> tuple[int, int, int]:
        return parse_size(self.size)

    @property
    def label(self) -> str:
        return f"{self.backend} {self.mode}"

    @property
    def measured(self) -> bool:
        return bool(self.seconds)

    @property
    def status(self) -> str:
        if self.measured:
            return "measured"
        return self.skipped[0].status if self.skipped else "not reached"

    @property
    def reason(self) -> str:
        return "; ".join(
            dict.fromkeys(f"{s.where + ': ' if s.where != 'sweep' else ''}{s.reason}" for s in self.skipped)
        )

    def median(self, op: str) -> float | None:
        values = self.seconds.get(op)
        return float(np.median(values)) if values else None

    def quartiles(self, op: str) -> tuple[float, float] | None:
        values = self.seconds.get(op)
        return tuple(float(q) for q in np.percentile(values, [25, 75])) if values else None  # type: ignore[return-value]

    def throughput(self, op: str) -> float | None:
        """Sequence steps per second: batch x seq_len per step time."""
        median = self.median(op)
        _, batch, seq_len = self.dims
        return batch * seq_len / median if median else None


def parse_size(size: str) -> tuple[int, int, int]:
    hidden, batch, seq_len = (int(p) for p in size.split("x"))
    return hidden, batch, seq_len


def work(size: str) -> float:
    """Multiply-adds of one step, roughly (the sweep orders sizes by it)."""
    hidden, batch, seq_len = parse_size(size)
    return float(batch * seq_len * hidden * (hidden + 3))


def points(run: records.RunRecords) -> list[Point]:
    """Every point the records mention, in the order the sweep took them."""
    by_case: dict[records.Case, Point] = {}

    def point(case: records.Case) -> Point:
        if case not in by_case:
            by_case[case] = Point(case.backend, case.mode, case.device, case.size)
        return by_case[case]

    for record in run.records:
        if isinstance(record, records.Block):
            p = point(record.case)
            p.seconds.setdefault(record.op, []).extend(record.seconds)
            p.repeats[record.op] = p.repeats.get(record.op, 0) + 1
        elif isinstance(record, records.FirstStep):
            point(record.case).first_step_s = record.seconds
        elif isinstance(record, records.Loaded):
            p = point(record.case)
            p.params, p.framework = record.params, str(record.info.get("framework", ""))
        elif isinstance(record, records.Skipped):
            point(record.case).skipped.append(record)
        elif isinstance(record, records.Training) and record.metric is not None:
            point(record.case).metrics.append(record.metric)
    for case in run.cases():
        point(case)
    return list(by_case.values())


def sizes_in(pts: Sequence[Point]) -> list[str]:
    """The sizes, by work."""
    return sorted({p.size for p in pts}, key=lambda s: (work(s), parse_size(s)))


def run_info(run: records.RunRecords) -> dict[str, Any]:
    """The run-level columns: where and with what the sweep ran."""
    m = run.machine
    opts = run.start.options
    versions = "; ".join(f"{k}={v}" for k, v in (m.frameworks if m else {}).items() if v != "*not-installed*")
    return {
        "run": run.name,
        "host": m.host if m else "",
        "cpu": m.cpu if m else "",
        "gpu": (m.gpu or "") if m else "",
        "commit": ((m.commit or "")[:12] + ("-dirty" if m.dirty else "")) if m else "",
        "threads": opts.get("threads", ""),
        "versions": versions,
        "complete": run.complete,
    }


def _us(value: float | None) -> str:
    return "" if value is None else f"{value * 1e6:.2f}"


def _num(value: float | None, fmt: str = ".4g") -> str:
    return "" if value is None else format(value, fmt)


def _op_columns(op: str) -> list[tuple[str, Callable[[Point], Any]]]:
    def quartile(i: int) -> Callable[[Point], Any]:
        return lambda p: _us(q[i]) if (q := p.quartiles(op)) else ""

    return [
        (f"{op}_median_us", lambda p: _us(p.median(op))),
        (f"{op}_q1_us", quartile(0)),
        (f"{op}_q3_us", quartile(1)),
        (f"{op}_rounds", lambda p: len(p.seconds.get(op, [])) or ""),
        (f"{op}_repeats", lambda p: p.repeats.get(op, "")),
        (f"{op}_seq_steps_per_s", lambda p: _num(p.throughput(op))),
    ]


# The CSV's columns, in order: one list, so adding a column is one entry.
POINT_COLUMNS: list[tuple[str, Callable[[Point], Any]]] = [
    ("backend", lambda p: p.backend),
    ("mode", lambda p: p.mode),
    ("device", lambda p: p.device),
    ("size", lambda p: p.size),
    ("hidden", lambda p: p.dims[0]),
    ("batch", lambda p: p.dims[1]),
    ("seq_len", lambda p: p.dims[2]),
    ("status", lambda p: p.status),
    ("reason", lambda p: p.reason),
    *_op_columns("train_step"),
    *_op_columns("predict"),
    ("first_step_s", lambda p: _num(p.first_step_s)),
    ("params", lambda p: p.params or ""),
    ("framework", lambda p: p.framework),
    ("held_out_metric", lambda p: _num(float(np.median(p.metrics))) if p.metrics else ""),
]
RUN_COLUMNS = ("run", "host", "cpu", "gpu", "commit", "threads", "versions", "complete")


def write_csv(path: Path, pts: Sequence[Point], info: dict[str, Any]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([name for name, _ in POINT_COLUMNS] + list(RUN_COLUMNS))
        for p in pts:
            writer.writerow([get(p) for _, get in POINT_COLUMNS] + [info[k] for k in RUN_COLUMNS])
    return path


def ranking(pts: Sequence[Point], device: str, op: str, size: str) -> list[tuple[Point, float]]:
    """Measured points of one device, op and size, fastest first."""
    out = [(p, m) for p in pts if p.device == device and p.size == size and (m := p.median(op)) is not None]
    return sorted(out, key=lambda pm: pm[1])


def _time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def margin(winner: float, runner_up: float) -> str:
    return f"{runner_up / winner:.2f}× ({(runner_up / winner - 1) * 100:.0f}% slower)"


def crossovers(pts: Sequence[Point], op: str = "train_step") -> dict[str, list[tuple[str, float]]]:
    """backend-mode -> [(size, GPU/CPU step-time ratio)] over the sizes measured on both devices, by work."""
    cpu = {(p.label, p.size): m for p in pts if p.device == "cpu" and (m := p.median(op)) is not None}
    out: dict[str, list[tuple[str, float]]] = {}
    for p in pts:
        m = p.median(op)
        if p.device == "cuda" and m is not None and (p.label, p.size) in cpu:
            out.setdefault(p.label, []).append((p.size, m / cpu[(p.label, p.size)]))
    return {k: sorted(v, key=lambda sv: work(sv[0])) for k, v in out.items()}


def _crossover_text(ratios: list[tuple[str, float]]) -> str:
    if all(r < 1 for _, r in ratios):
        return "GPU faster at every size measured on both"
    if all(r >= 1 for _, r in ratios):
        return "CPU faster at every size measured on both"
    for i, (size, _) in enumerate(ratios):
        if all(r < 1 for _, r in ratios[i:]):
            return f"GPU faster from {size} on (sizes by work)"
    return "no single crossover (the ratio crosses 1 more than once)"


def write_md(
    path: Path, run: records.RunRecords, pts: Sequence[Point], info: dict[str, Any], plots: list[Path]
) -> Path:
    opts = run.start.options
    sizes = sizes_in(pts)
    devices = [d for d in ("cpu", "cuda") if any(p.device == d for p in pts)]
    lines = [
        f"# Size sweep {info['run']}",
        "",
        f"- machine: {info['host']}, {info['cpu']}" + (f", GPU {info['gpu']}" if info["gpu"] else ", no GPU"),
        f"- commit {info['commit'] or 'unknown'}, threads {info['threads']}; {info['versions']}",
        f"- sizes (hidden×batch×seq_len, by work): {', '.join(sizes)}",
        "- budgets: "
        + ", ".join(
            f"{k} {opts[k]}"
            for k in ("point_budget_s", "max_call_s", "max_memory_mb", "setup_budget_s", "budget_s", "repeats")
            if k in opts
        ),
        "- " + ("complete" if run.complete else "**incomplete**: the sweep did not finish"),
        "",
        "Step time is the median over every timed round of every repeat. Time only"
        + (
            ""
            if any(p.metrics for p in pts)
            else " (no training: the seed's learning rate does not carry to other sizes)"
        )
        + ". Margin: the runner-up's median over the winner's.",
    ]
    for device in devices:
        for op in OPS:
            lines += ["", f"## Winners: {op} on {device}", ""]
            lines += ["| size | winner | median | runner-up | median | margin |", "|---|---|---|---|---|---|"]
            for size in sizes:
                ranked = ranking(pts, device, op, size)
                if not ranked:
                    lines.append(f"| {size} | — | | | | |")
                    continue
                (w, wm), rest = ranked[0], ranked[1:]
                if rest:
                    (r, rm) = rest[0]
                    lines.append(f"| {size} | {w.label} | {_time(wm)} | {r.label} | {_time(rm)} | {margin(wm, rm)} |")
                else:
                    lines.append(f"| {size} | {w.label} | {_time(wm)} | — | | only one measured |")
    ratios = crossovers(pts)
    lines += ["", "## GPU / CPU", ""]
    if ratios:
        lines += ["train_step median on the GPU over the CPU's (below 1: the GPU is faster).", ""]
        lines += ["| backend mode | ratios by size | crossover |", "|---|---|---|"]
        for label, rs in ratios.items():
            shown = ", ".join(f"{s} {r:.2g}" for s, r in rs)
            lines.append(f"| {label} | {shown} | {_crossover_text(rs)} |")
    else:
        lines.append("No size was measured on both devices.")
    lines += _skipped_md(pts)
    lines += ["", "## Files", "", f"- {CSV_FILE}: one row per backend × mode × device × size"]
    lines += [f"- {p.name}" for p in plots]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _skipped_md(pts: Sequence[Point]) -> list[str]:
    groups: dict[tuple[str, str], list[Point]] = {}
    for p in pts:
        if not p.measured:
            groups.setdefault((f"{p.label} @{p.device}", p.status), []).append(p)
    lines = ["", "## Skipped", ""]
    if not groups:
        return lines + ["Nothing was skipped."]
    lines += ["| case | status | sizes | why (at the first of them) |", "|---|---|---|---|"]
    for (label, status), group in groups.items():
        group.sort(key=lambda p: work(p.size))
        lines.append(f"| {label} | {status} | {', '.join(p.size for p in group)} | {group[0].reason} |")
    return lines


# ---- plots ----


def _styles(pts: Sequence[Point]) -> dict[str, Any]:
    """A colour per backend-mode, stable in the order of the records."""
    import matplotlib

    labels = list(dict.fromkeys(p.label for p in pts))
    cmap = matplotlib.colormaps["tab20"]
    return {label: cmap(i % 20) for i, label in enumerate(labels)}


def _axis_line(sizes: Sequence[str], axis: int) -> list[str]:
    """The longest run of sizes that differ only along `axis` (the others fixed), ordered along it."""
    groups: dict[tuple[int, ...], set[str]] = {}
    for size in sizes:
        dims = parse_size(size)
        groups.setdefault(tuple(d for i, d in enumerate(dims) if i != axis), set()).add(size)
    if not groups:
        return []
    key = max(groups, key=lambda k: (len(groups[k]), [-d for d in k]))
    return sorted(groups[key], key=lambda s: parse_size(s)[axis])


def _series(pts: Sequence[Point]) -> dict[tuple[str, str], list[Point]]:
    out: dict[tuple[str, str], list[Point]] = {}
    for p in pts:
        out.setdefault((p.label, p.device), []).append(p)
    return out


def _legend(fig: Any, axes: Any) -> None:
    handles, labels = {}, {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
            labels[lab] = lab
    if handles:
        fig.legend(list(handles.values()), list(labels), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)


def plot_axes(path: Path, pts: Sequence[Point], op: str, colours: dict[str, Any]) -> Path | None:
    import matplotlib.pyplot as plt

    sizes = sizes_in(pts)
    lines = [_axis_line(sizes, i) for i in range(3)]
    panels = [(AXES[i], lines[i], lambda s, i=i: parse_size(s)[i]) for i in range(3) if len(lines[i]) >= 2]
    panels.append(("work (batch × seq_len × hidden²)", sizes, work))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (name, chosen, x_of) in zip(axes[0], panels):
        for (label, device), series in _series(pts).items():
            xy = sorted((x_of(p.size), m) for p in series if p.size in chosen and (m := p.median(op)) is not None)
            if xy:
                xs, ys = zip(*xy)
                style = DEVICE_STYLE.get(device, ":") if name in AXES else "none"  # work: shapes differ, no lines
                ax.plot(xs, ys, linestyle=style, marker="o", ms=3, color=colours[label])
                ax.plot(
                    [], [], linestyle=DEVICE_STYLE.get(device, ":"), color=colours[label], label=f"{label} @{device}"
                )
        ax.set(xscale="log", yscale="log", xlabel=name, ylabel=f"{op} median (s)")
        if name in AXES:
            fixed = [f"{a}={d}" for a, d in zip(AXES, parse_size(chosen[0])) if a != name]
            ax.set_title(", ".join(fixed), fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{op} step time against size (log–log)")
    _legend(fig, axes)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_winners(path: Path, pts: Sequence[Point], colours: dict[str, Any]) -> Path | None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    sizes = sizes_in(pts)
    rows = [(d, op) for d in ("cpu", "cuda") if any(p.device == d for p in pts) for op in OPS]
    if not sizes or not rows:
        return None
    image = np.ones((len(rows), len(sizes), 4))
    fig, ax = plt.subplots(figsize=(1.3 * len(sizes) + 2, 0.9 * len(rows) + 1.6))
    for i, (device, op) in enumerate(rows):
        for j, size in enumerate(sizes):
            ranked = ranking(pts, device, op, size)
            if not ranked:
                ax.text(j, i, "—", ha="center", va="center", fontsize=7)
                continue
            w, wm = ranked[0]
            image[i, j] = to_rgba(colours[w.label], 0.8)
            extra = f"\n×{ranked[1][1] / wm:.2f}" if len(ranked) > 1 else ""
            ax.text(j, i, f"{w.backend}\n{w.mode}{extra}", ha="center", va="center", fontsize=6)
    ax.imshow(image, aspect="auto")
    ax.set_xticks(range(len(sizes)), sizes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{op} @{d}" for d, op in rows], fontsize=8)
    ax.set_title("Fastest at each size (×: runner-up's time over the winner's)", fontsize=9)
    ax.set_xlabel("size (hidden×batch×seq_len), by work")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_throughput(path: Path, pts: Sequence[Point], colours: dict[str, Any]) -> Path | None:
    import matplotlib.pyplot as plt

    sizes = sizes_in(pts)
    fig, axes = plt.subplots(1, len(OPS), figsize=(6 * len(OPS), 4.2), squeeze=False)
    for ax, op in zip(axes[0], OPS):
        for (label, device), series in _series(pts).items():
            xy = sorted((sizes.index(p.size), t) for p in series if (t := p.throughput(op)) is not None)
            if xy:
                xs, ys = zip(*xy)
                style = DEVICE_STYLE.get(device, ":")
                ax.plot(xs, ys, style, marker="o", ms=3, color=colours[label], label=f"{label} @{device}")
        ax.set_yscale("log")
        ax.set_xticks(range(len(sizes)), sizes, rotation=45, ha="right", fontsize=7)
        ax.set(xlabel="size (hidden×batch×seq_len), by work", ylabel="sequence steps / s (batch × seq_len / step)")
        ax.set_title(op)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Throughput")
    _legend(fig, axes)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_gpu_cpu(path: Path, pts: Sequence[Point], colours: dict[str, Any]) -> Path | None:
    """GPU/CPU step-time ratio against size, where a size was measured on both devices; None if none was."""
    import matplotlib.pyplot as plt

    per_op = {op: crossovers(pts, op) for op in OPS}
    if not any(per_op.values()):
        return None
    sizes = sorted({s for ratios in per_op.values() for rs in ratios.values() for s, _ in rs}, key=work)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(sizes) + 3), 4.2))
    for op, style in zip(OPS, ("-", ":")):
        for label, rs in per_op[op].items():
            xs = [sizes.index(s) for s, _ in rs]
            ax.plot(xs, [r for _, r in rs], style, marker="o", ms=3, color=colours[label], label=f"{label} {op}")
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
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def render_sweep(folder: str | Path, plots: bool = True) -> list[Path]:
    """Write sweep.csv, sweep.md and (unless `plots` is False) the plots into a sweep folder, from its
    records; returns the files."""
    folder = Path(folder)
    run = records.read(folder)
    pts = points(run)
    info = run_info(run)
    made: list[Path] = []
    if plots:
        import matplotlib

        matplotlib.use("Agg")
        colours = _styles(pts)
        drawn = [
            plot_axes(folder / "sweep-train_step.png", pts, "train_step", colours),
            plot_axes(folder / "sweep-predict.png", pts, "predict", colours),
            plot_winners(folder / "sweep-winners.png", pts, colours),
            plot_throughput(folder / "sweep-throughput.png", pts, colours),
            plot_gpu_cpu(folder / "sweep-gpu-cpu.png", pts, colours),
        ]
        made = [p for p in drawn if p is not None]
    csv_path = write_csv(folder / CSV_FILE, pts, info)
    md_path = write_md(folder / MD_FILE, run, pts, info, made)
    return [csv_path, md_path, *made]
