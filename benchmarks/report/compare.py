"""Runs B against runs A, per case: a change is flagged only beyond the noise.

Each side is one or more runs. With at least two runs on each side, the noise of a measure is the
run-to-run spread (highest − lowest of the runs' values) on either side. With one run on a side, the
run-to-run noise is unknown: the spread between the repeats inside each run stands in for it (for the
step and predict times; first step and memory have one value per run), and a relative threshold must
be exceeded as well. The held-out metric is compared over seeds with the Mann–Whitney U test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import atomic
from benchmarks.report import stats
from benchmarks.report.columns import MIB, md_cell, num
from benchmarks.report.rows import ALPHA, MIN_SEEDS, Row, RunInfo, RunRows, _p, describe, sort_rows
from benchmarks.report.write import RESULTS_DIR, check_output, load

NOT_SETTINGS = ("backends", "modes", "device", "devices", "results_dir")  # what is measured, not how


@dataclasses.dataclass(frozen=True)
class Measure:
    """One compared figure: its value in a row, the noise inside one run (None: one value per run),
    its display unit and the relative change it must exceed."""

    label: str
    value: Callable[[Row], float | None]
    within: Callable[[Row], float | None] | None
    unit: float
    relative: float


def _timing(op: str, attr: str) -> Callable[[Row], float | None]:
    return lambda r: getattr(getattr(r, op), attr) if getattr(r, op) is not None else None


def _memory(field: str) -> Callable[[Row], float | None]:
    return lambda r: getattr(r.memory, field) if r.memory is not None else None


MEASURES = (
    Measure("step median (ms)", _timing("step", "median"), _timing("step", "spread"), 1e-3, 0.10),
    Measure("predict median (ms)", _timing("predict", "median"), _timing("predict", "spread"), 1e-3, 0.10),
    Measure("first step (ms)", lambda r: r.first_step, None, 1e-3, 0.25),
    Measure("peak RSS (MiB)", _memory("peak_rss_bytes"), None, MIB, 0.10),
    Measure("GPU peak (MiB)", _memory("gpu_peak_bytes"), None, MIB, 0.10),
)


def _settings(run: RunInfo) -> dict[str, object]:
    try:  # the options table knows which options change what is measured
        from benchmarks.options import BY_NAME

        return {
            k: v for k, v in run.options.items() if k not in NOT_SETTINGS and getattr(BY_NAME.get(k), "setting", True)
        }
    except Exception:  # the report works from the records alone
        return {k: v for k, v in run.options.items() if k not in NOT_SETTINGS}


def rule(a: int, b: int) -> str:
    """The rule in words, for the runs given."""
    if min(a, b) >= 2:
        return (
            f"noise = run-to-run spread: highest − lowest of the per-run values, the larger of the two sides "
            f"({a} runs A, {b} runs B); a change is flagged when |B − A| (medians over runs) exceeds it and "
            "the relative threshold of its measure."
        )
    return (
        "one run on a side, so the run-to-run noise is unknown: a change is flagged when |B − A| exceeds the "
        "spread between repeat medians inside either run (step and predict times; first step and memory have "
        "one value per run) and the relative threshold of its measure. Give several runs per side "
        "(A1,A2 B1,B2) to measure the run-to-run noise."
    )


def verdict(measure: Measure, a: list[float], b: list[float], within: list[float]) -> str:
    """'changed: B ×1.52' or 'within noise' for the per-run values of each side."""
    va, vb = stats.median(a), stats.median(b)
    assert va is not None and vb is not None
    if min(len(a), len(b)) >= 2:
        noise = max(max(a) - min(a), max(b) - min(b))
    else:
        noise = max(within, default=0.0)
    diff = abs(vb - va)
    if diff > noise and diff > measure.relative * abs(va):
        return f"**changed: B ×{num(vb / va)}**" if va else "**changed**"
    return "within noise"


def _metric_line(key: tuple[str, ...], a: list[Row], b: list[Row], label: str) -> list[str]:
    seeds_a = [v for r in a for v in r.converged]
    seeds_b = [v for r in b for v in r.converged]
    if not seeds_a and not seeds_b:
        return []
    ma, mb = stats.median(seeds_a), stats.median(seeds_b)
    if min(len(seeds_a), len(seeds_b)) < MIN_SEEDS:
        flag = f"— (fewer than {MIN_SEEDS} seeds)"
    else:
        p = stats.mann_whitney(seeds_b, seeds_a)[1]
        flag = f"**differs (p={_p(p)})**" if p < ALPHA else f"within noise (p={_p(p)})"
    ratio = f"{num(mb / ma)}" if ma and mb is not None else ""
    return [_line(key, f"{label} median", num(ma), num(mb), ratio, flag)]


def _line(key: tuple[str, ...], label: str, a: str, b: str, ratio: str, flag: str) -> str:
    return "| " + " | ".join(md_cell(c) for c in (*key, label, a, b, ratio)) + f" | {flag} |"


def _state(rows: list[Row]) -> str:
    if not rows:
        return "not run"
    states = [f"{r.status}: {r.reason}" if r.skipped else "measured" for r in rows]
    return ", ".join(dict.fromkeys(states))


def _describe(side: str, result: RunRows) -> str:
    m = result.run.machine
    where = f"{m.host}, {m.cpu}" + (f", {m.gpu}" if m.gpu else "") if m else "machine not recorded"
    return f"- {side}: {result.run.name} ({result.run.path}) on {where}"


def compare_markdown(side_a: Sequence[RunRows], side_b: Sequence[RunRows]) -> str:
    """The comparison of B against A as markdown: settings, the rule, and one line per case and measure."""
    names = lambda side: ", ".join(r.run.name for r in side)  # noqa: E731
    lines = [f"# Compare: {names(side_b)} (B) against {names(side_a)} (A)", ""]
    lines += [_describe("A", r) for r in side_a] + [_describe("B", r) for r in side_b] + [""]
    machines = {(r.run.machine.host, r.run.machine.cpu, r.run.machine.gpu) if r.run.machine else None
                for r in (*side_a, *side_b)}  # fmt: skip
    if len(machines) > 1:
        lines += ["**The runs come from different machines: ratios compare machines as well as code.**", ""]
    sa, sb = _settings(side_a[0].run), _settings(side_b[0].run)
    keys = [k for k in dict.fromkeys([*sa, *sb]) if sa.get(k) != sb.get(k)]
    differ = [f"{k} {describe(sa.get(k))} → {describe(sb.get(k))}" for k in keys]
    if differ:
        lines += [f"**Settings differ: {', '.join(differ)}.**", ""]
    lines += [f"Rule: {rule(len(side_a), len(side_b))}", ""]
    thresholds = ", ".join(f"{m.label} {num(100 * m.relative)}%" for m in MEASURES)
    lines.append(f"Relative thresholds: {thresholds}; the held-out metric: Mann–Whitney U over the converged seeds "
                 f"of each side, 'differs' at p < {ALPHA}.")  # fmt: skip
    lines += ["", "| backend | mode | device | size | measure | A | B | B/A | verdict |",
              "|---|---|---|---|---|--:|--:|--:|---|"]  # fmt: skip
    rows_a = [row for r in side_a for row in r.rows]
    rows_b = [row for r in side_b for row in r.rows]
    order = list(dict.fromkeys(r.key for r in sort_rows([*rows_b, *rows_a])))
    metric = side_a[0].run.metric["label"]
    for key in order:
        a = [r for r in rows_a if r.key == key]
        b = [r for r in rows_b if r.key == key]
        if any(r.skipped for r in (*a, *b)) or not a or not b:
            lines.append(_line(key, "status", _state(a), _state(b), "", ""))
        for measure in MEASURES:
            lines += _measure_line(key, measure, a, b)
        lines += _metric_line(key, [r for r in a if not r.skipped], [r for r in b if not r.skipped], metric)
    lines += ["", "B/A > 1: B is slower, larger or less accurate."]
    return "\n".join(lines) + "\n"


def _measure_line(key: tuple[str, ...], measure: Measure, a: list[Row], b: list[Row]) -> list[str]:
    va = [v for v in (measure.value(r) for r in a) if v is not None]
    vb = [v for v in (measure.value(r) for r in b) if v is not None]
    if not va and not vb:
        return []
    ma, mb = stats.median(va), stats.median(vb)
    text_a = "" if ma is None else num(ma / measure.unit)
    text_b = "" if mb is None else num(mb / measure.unit)
    if not va or not vb:
        return [_line(key, measure.label, text_a, text_b, "", f"only in {'B' if not va else 'A'}")]
    within = [w for w in (measure.within(r) for r in (*a, *b)) if w is not None] if measure.within else []
    ratio = num(mb / ma) if ma else ""
    return [_line(key, measure.label, text_a, text_b, ratio, verdict(measure, va, vb, within))]


def default_out(side_a: Sequence[RunRows], side_b: Sequence[RunRows]) -> Path:
    name = lambda side: side[0].run.name + (f"+{len(side) - 1}" if len(side) > 1 else "")  # noqa: E731
    return RESULTS_DIR / f"compare-{name(side_b)}-vs-{name(side_a)}.md"


def write_compare(a: Sequence[str | Path], b: Sequence[str | Path], out: str | Path | None = None) -> tuple[str, Path]:
    """Compare run folders B against A; writes the markdown to `out` (default results/compare-B-vs-A.md,
    never inside a run folder) and returns (markdown, its path)."""
    side_a, side_b = [load(p) for p in a], [load(p) for p in b]
    path = check_output(Path(out) if out is not None else default_out(side_a, side_b))
    text = compare_markdown(side_a, side_b)
    path.parent.mkdir(parents=True, exist_ok=True)
    return text, atomic.write_text(path, text)
