"""Two runs side by side: B/A ratios per backend x device, flagged only where the change exceeds the noise."""

from __future__ import annotations

from pathlib import Path

from benchmarks import atomic
from benchmarks.report_data import DEVICE_ORDER, Row, Run, backend_order, comparison_rows, load_run, md_cell

# (label, value attribute, noise attribute, display unit in seconds or 1)
METRICS = [
    ("step median (ms)", "step_median", "step_noise", 1e-3),
    ("predict median (ms)", "predict_median", "predict_noise", 1e-3),
    ("held-out MSE mean", "mse_mean", "mse_std", 1.0),
]
# run options that change what is measured; a difference is called out above the table
SETTINGS = (
    "train_steps",
    "seeds",
    "hidden_size",
    "seq_len",
    "batch_size",
    "threads",
    "rounds",
    "warmup_rounds",
    "repeats",
)
RELATIVE = 0.05  # below 5% a change is not reported even when the spread is tiny


def changed(a: float, b: float, noise_a: float | None, noise_b: float | None) -> bool | None:
    """True when |b - a| exceeds both runs' noise (IQR or std) and 5% of a; None when a noise is unknown
    (an MSE from one seed has no spread), since then no change can be told from noise."""
    if noise_a is None or noise_b is None:
        return None
    diff = abs(b - a)
    return diff > max(noise_a, noise_b) and diff > RELATIVE * abs(a)


def _g(value: float) -> str:
    return f"{value:.4g}"


def _describe(label: str, run: Run) -> str:
    m = run.machine
    cpu = run.cpu_name or "?"
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    return f"- {label}: {run.name} ({run.path}) on {m.get('node', '?')}, {cpu}{gpu}"


def compare_markdown(run_a: Run, run_b: Run) -> str:
    """A markdown table per backend x device and metric: value in A, in B, B/A, and a 'changed' flag."""
    rows_a = {(r.backend, r.device): r for r in comparison_rows(run_a)}
    rows_b = {(r.backend, r.device): r for r in comparison_rows(run_b)}
    order = list(dict.fromkeys(backend_order(run_b) + backend_order(run_a)))

    def sort_key(key: tuple[str, str]) -> tuple[int, int, str]:
        return order.index(key[0]), DEVICE_ORDER.index(key[1]) if key[1] in DEVICE_ORDER else 9, key[1]

    lines = [f"# Compare runs: {run_b.name} (B) against {run_a.name} (A)", "", _describe("A", run_a)]
    lines += [_describe("B", run_b), ""]
    if (run_a.machine.get("node"), run_a.machine.get("cpu_model")) != (
        run_b.machine.get("node"),
        run_b.machine.get("cpu_model"),
    ):
        lines += ["**The runs come from different machines: ratios compare machines as well as code.**", ""]
    opts_a, opts_b = run_a.options, run_b.options
    differ = [f"{k} {opts_a.get(k)} → {opts_b.get(k)}" for k in SETTINGS if opts_a.get(k) != opts_b.get(k)]
    if differ:
        lines += [f"**Settings differ: {', '.join(differ)}.**", ""]
    lines += ["| backend | device | metric | A | B | B/A | change |", "|---|---|---|--:|--:|--:|---|"]
    for key in sorted(set(rows_a) | set(rows_b), key=sort_key):
        a, b = rows_a.get(key), rows_b.get(key)
        if any(r is not None and (r.status in ("unavailable", "failed") or r.failures) for r in (a, b)):
            lines.append(f"| {key[0]} | {key[1]} | status | {_state(a)} | {_state(b)} |  |  |")
        for label, attr, noise, unit in METRICS:
            lines.extend(_metric_line(key, label, a, b, attr, noise, unit))
    lines += [
        "",
        "change: 'changed' when |B − A| > max(noise A, noise B) and > 5% of A; noise is, for times, the larger "
        "of the IQR of the timed rounds and the spread between repeat medians, and for the MSE the std over "
        "seeds ('no spread' when one run has a single seed). "
        "B/A > 1: B is slower (or less accurate).",
    ]
    return "\n".join(lines) + "\n"


def _metric_line(
    key: tuple[str, str], label: str, a: Row | None, b: Row | None, attr: str, noise: str, unit: float
) -> list[str]:
    va, vb = (getattr(r, attr) if r else None for r in (a, b))
    if va is None and vb is None:
        return []
    if va is None or vb is None:
        flag = f"{_absent(a)} in A" if va is None else f"{_absent(b)} in B"
        cells = ["" if va is None else _g(va / unit), "" if vb is None else _g(vb / unit), "", flag]
    else:
        ratio = f"{vb / va:.3f}" if va else ""
        verdict = changed(va, vb, getattr(a, noise), getattr(b, noise))
        flag = {True: "**changed**", False: "", None: "no spread"}[verdict]
        cells = [_g(va / unit), _g(vb / unit), ratio, flag]
    return ["| " + " | ".join([key[0], key[1], label, *cells]) + " |"]


def _absent(row: Row | None) -> str:
    if row is None:
        return "not run"
    return row.status if row.status in ("unavailable", "diverged", "failed") else "not measured"


def _state(row: Row | None) -> str:
    """A row's status cell: why it has no numbers, or which of its benchmarks failed."""
    if row is None:
        return "not run"
    if row.status in ("unavailable", "failed"):
        text = f"{row.status}: {row.reason}"
    else:
        text = f"measured; failed: {row.failures}" if row.failures else "measured"
    return md_cell(text)


def write_compare(run_a: str | Path, run_b: str | Path) -> tuple[str, Path]:
    """Compare two run folders; writes RUN_B/compare-<A name>.md and returns (markdown, its path)."""
    a, b = load_run(run_a), load_run(run_b)
    text = compare_markdown(a, b)
    name = a.path.resolve().name
    return text, atomic.write_text(b.path / f"compare-{name}.md", text)
