"""Runs B against runs A, per case: a change is flagged only beyond the noise, and judged twice.

Each side is one or more runs (a run named twice on a side counts once). With at least two runs on each
side, the noise of a measure is the run-to-run spread (highest − lowest of the runs' values) on either side;
with one run on a side, the spread between the repeat medians inside each run stands in for it (step and
predict; first step and memory have one value per run), and a relative threshold must be exceeded as well.

A shared machine's speed drifts from day to day by more than most real changes, so each time is judged twice:
in absolute time, and against the rest of the run: B's values divided by how the machine moved (the yardstick:
the no-framework floor's B/A on the same device and size where both sides measured it, else the median B/A over
every case both sides measured there). A uniformly faster or slower machine then reads as one line, and a case
that moved against the rest is flagged. The held-out metric is compared over learned seeds (Mann–Whitney U).
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import atomic
from benchmarks.records import RecordError
from benchmarks.report.cases import ALPHA, MIN_SEEDS, View, floor, load, mann_whitney_p, skipped, sort
from benchmarks.report.columns import MIB, Row, md_cell, num, p_text
from benchmarks.report.frame import describe, finite
from benchmarks.report.write import RESULTS_DIR, check_output

NOT_SETTINGS = ("backends", "modes", "device", "devices", "results_dir", "sizes", "preset")  # what, not how


@dataclasses.dataclass(frozen=True)
class Measure:
    """One compared figure: its case-table column, the column of its noise inside one run (None: one value per
    run), its display unit, the relative change it must exceed, and whether the machine's speed moves it."""

    label: str
    column: str
    within: str | None
    unit: float
    relative: float
    timed: bool


MEASURES = (
    Measure("step median (ms)", "step_median_s", "step_spread_s", 1e-3, 0.10, True),
    Measure("predict median (ms)", "predict_median_s", "predict_spread_s", 1e-3, 0.10, True),
    Measure("first step (ms)", "first_step_s", None, 1e-3, 0.25, True),
    Measure("peak RSS (MiB)", "peak_rss_bytes", None, MIB, 0.10, False),
    Measure("GPU peak (MiB)", "gpu_peak_bytes", None, MIB, 0.10, False),
)
Key = tuple[str, str, str, str, str]  # backend, mode, device, size, model


def _key(row: Row) -> Key:
    return row["backend"], row["mode"], row["device"], row["size"], row["model"]


def _settings(view: View) -> dict[str, object]:
    try:  # the options table knows which options change what is measured
        from benchmarks.options import BY_NAME

        allowed = lambda k: getattr(BY_NAME.get(k), "setting", True)  # noqa: E731
    except Exception:  # the report works from the records alone
        allowed = lambda k: True  # noqa: E731
    return {k: v for k, v in view.run.options.items() if k not in NOT_SETTINGS and allowed(k)}


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


def changed(measure: Measure, a: list[float], b: list[float], within: list[float]) -> bool:
    """Whether B moved from A beyond the noise and the measure's relative threshold."""
    va, vb = statistics.median(a), statistics.median(b)
    noise = max(max(a) - min(a), max(b) - min(b)) if min(len(a), len(b)) >= 2 else max(within, default=0.0)
    diff = abs(vb - va)
    return diff > noise and diff > measure.relative * abs(va)


def verdict(measure: Measure, a: list[float], b: list[float], within: list[float]) -> str:
    """'changed: B ×1.52' or 'within noise' for the per-run values of each side."""
    if not changed(measure, a, b, within):
        return "within noise"
    va, vb = statistics.median(a), statistics.median(b)
    return f"**changed: B ×{num(vb / va)}**" if va else "**changed**"


@dataclasses.dataclass
class Side:
    """The runs of one side (each once), their rows by case."""

    views: list[View]
    repeated: list[str]  # runs named more than once, counted once

    @functools.cached_property
    def rows(self) -> dict[Key, list[Row]]:
        out: dict[Key, list[Row]] = {}
        for view in self.views:
            for row in view.rows:
                out.setdefault(_key(row), []).append(row)
        return out

    def values(self, key: Key, column: str) -> list[float]:
        return [v for r in self.rows.get(key, []) if not skipped(r) and (v := finite(r[column])) is not None]


def side(run_dirs: Sequence[str | Path]) -> Side:
    seen: dict[Path, View] = {}
    repeated = []
    for run_dir in run_dirs:
        path = Path(run_dir).resolve()
        if path in seen:
            repeated.append(seen[path].run.name)
            continue
        seen[path] = load(run_dir)
    return Side(list(seen.values()), list(dict.fromkeys(repeated)))


@dataclasses.dataclass(frozen=True)
class Yardstick:
    """How the machine moved for one measure on one device and size: B/A of the floor where both sides measured it
    (`floor` is its key), and the median B/A over the cases both sides measured; `ratio` is the one judged by."""

    floor_ratio: float | None
    median_ratio: float
    cases: int
    floor: Key | None

    @property
    def ratio(self) -> float:
        return self.floor_ratio if self.floor_ratio is not None else self.median_ratio

    def text(self) -> str:
        median = f"the median ratio over the {self.cases} cases both sides measured ×{num(self.median_ratio)}"
        if self.floor is None:
            return f"×{num(self.median_ratio)}: {median} (no floor on both sides: judged against that instead)"
        return f"×{num(self.ratio)}: the floor ({' '.join(self.floor[:2])}) ×{num(self.ratio)}; {median}"


def yardsticks(a: Side, b: Side, keys: list[Key]) -> dict[tuple[str, ...], Yardstick]:
    """(measure column, device, size, model) -> the machine's move, for every timed measure."""
    out = {}
    for measure in (m for m in MEASURES if m.timed):
        groups: dict[tuple[str, ...], list[float]] = {}
        for key in keys:
            va, vb = a.values(key, measure.column), b.values(key, measure.column)
            if va and vb and statistics.median(va) > 0:
                groups.setdefault(key[2:], []).append(statistics.median(vb) / statistics.median(va))
        for (device, size, model), ratios in groups.items():
            bottom = floor(device)  # each device against its own floor
            key, found = ((*bottom, device, size, model) if bottom else None), None
            va, vb = (a.values(key, measure.column), b.values(key, measure.column)) if key else ([], [])
            if va and vb and statistics.median(va) > 0:
                found = statistics.median(vb) / statistics.median(va)
            out[(measure.column, device, size, model)] = Yardstick(found, statistics.median(ratios), len(ratios),
                                                                   key if found is not None else None)  # fmt: skip
    return out


def _line(key: Key, label: str, a: str, b: str, ratio: str, flag: str, relative: str = "", against: str = "") -> str:
    shown = (*key[:3], _size(key))
    return "| " + " | ".join(md_cell(c) for c in (*shown, label, a, b, ratio, flag, relative, against)) + " |"


def _size(key: Key) -> str:
    """The size, and the model where it is not the vanilla RNN."""
    return key[3] if key[4] == "rnn" else f"{key[3]} {key[4]}"


def _state(rows: list[Row]) -> str:
    if not rows:
        return "not run"
    return ", ".join(dict.fromkeys(f"{r['status']}: {r['reason']}" if skipped(r) else "measured" for r in rows))


def _describe(name: str, view: View) -> str:
    m = view.run.machine
    where = f"{m.host}, {m.cpu}" + (f", {m.gpu}" if m.gpu else "") if m else "machine not recorded"
    kind = f", a size sweep of {len({r['size'] for r in view.rows})} size(s)" if view.run.sweep else ""
    return f"- {name}: {view.run.name} ({view.run.shown_path}) on {where}{kind}"


def _measure_lines(key: Key, measure: Measure, a: Side, b: Side, sticks: dict[tuple[str, ...], Yardstick],
                   flagged: list[str]) -> list[str]:  # fmt: skip
    va, vb = a.values(key, measure.column), b.values(key, measure.column)
    if not va and not vb:
        return []
    text_a = "" if not va else num(statistics.median(va) / measure.unit)
    text_b = "" if not vb else num(statistics.median(vb) / measure.unit)
    if not va or not vb:
        return [_line(key, measure.label, text_a, text_b, "", f"only in {'B' if not va else 'A'}")]
    rows = [r for r in (*a.rows.get(key, []), *b.rows.get(key, [])) if not skipped(r)]
    within = [w for r in rows if (w := finite(r[measure.within])) is not None] if measure.within else []
    ma = statistics.median(va)
    ratio = num(statistics.median(vb) / ma) if ma else ""
    stick = sticks.get((measure.column, *key[2:])) if measure.timed else None
    if stick is None or not stick.ratio:
        return [_line(key, measure.label, text_a, text_b, ratio, verdict(measure, va, vb, within))]
    if stick.floor == key:
        relative, against = "1.00", "the yardstick"
    else:
        scaled = [v / stick.ratio for v in vb]
        relative = num(statistics.median(scaled) / ma) if ma else ""
        moved = changed(measure, va, scaled, within)
        against = f"**moved: ×{relative} against the rest**" if moved else "with the rest"
        if moved:
            flagged.append(f"{' '.join(key[:3])} {_size(key)} {measure.label.split(' (')[0]} ×{relative}")
    return [_line(key, measure.label, text_a, text_b, ratio, verdict(measure, va, vb, within), relative, against)]


def _metric_line(key: Key, a: Side, b: Side, label: str) -> list[str]:
    seeds_a = [v for r in a.rows.get(key, []) for v in r["learned_metrics"]]
    seeds_b = [v for r in b.rows.get(key, []) for v in r["learned_metrics"]]
    if not seeds_a and not seeds_b:
        return []
    ma = statistics.median(seeds_a) if seeds_a else None
    mb = statistics.median(seeds_b) if seeds_b else None
    if min(len(seeds_a), len(seeds_b)) < MIN_SEEDS:
        flag = f"— (fewer than {MIN_SEEDS} learned seeds)"
    else:
        p = mann_whitney_p(seeds_b, seeds_a)
        flag = f"**differs (p={p_text(p)})**" if p < ALPHA else f"within noise (p={p_text(p)})"
    ratio = num(mb / ma) if ma and mb is not None else ""
    return [_line(key, f"{label} median (learned seeds)", num(ma), num(mb), ratio, flag)]


def compare_markdown(a: Side, b: Side) -> str:
    """The comparison of B against A as markdown: the runs, the machine's move, the rule, one line per case and
    measure."""
    names = lambda s: ", ".join(v.run.name for v in s.views)  # noqa: E731
    lines = [f"# Compare: {names(b)} (B) against {names(a)} (A)", ""]
    lines += [_describe("A", v) for v in a.views] + [_describe("B", v) for v in b.views] + [""]
    for name, s in (("A", a), ("B", b)):
        if s.repeated:
            lines += [f"Side {name} named {', '.join(s.repeated)} more than once: each run counted once.", ""]
    machines = {(v.run.machine.host, v.run.machine.cpu, v.run.machine.gpu) if v.run.machine else None
                for v in (*a.views, *b.views)}  # fmt: skip
    if len(machines) > 1:
        lines += ["**The runs come from different machines: ratios compare machines as well as code.**", ""]
    sa, sb = _settings(a.views[0]), _settings(b.views[0])
    differ = [f"{k} {describe(sa.get(k))} → {describe(sb.get(k))}" for k in dict.fromkeys([*sa, *sb])
              if sa.get(k) != sb.get(k)]  # fmt: skip
    if differ:
        lines += [f"**Settings differ: {', '.join(differ)}.**", ""]
    sizes_a = {k[3] for k in a.rows}
    sizes_b = {k[3] for k in b.rows}
    common = sizes_a & sizes_b
    if not common:
        raise RecordError(
            f"compare: no size in common (A: {', '.join(sorted(sizes_a))}; B: {', '.join(sorted(sizes_b))})"
        )
    if sizes_a != sizes_b:
        left = sorted((sizes_a | sizes_b) - common)
        lines += [f"Compared at the size(s) both sides measured ({', '.join(sorted(common))}); left out: "
                  f"{', '.join(left)}.", ""]  # fmt: skip
    rows = sort(_table(a, b)).to_dict("records")
    keys = [k for k in dict.fromkeys(_key(r) for r in rows) if k[3] in common]
    sticks = yardsticks(a, b, keys)
    table = ["| backend | mode | device | size | measure | A | B | B/A | in absolute time | B/A ÷ machine | "
             "against the rest |", "|---|---|---|---|---|--:|--:|--:|---|--:|---|"]  # fmt: skip
    label, flagged = a.views[0].run.metric["label"], []
    ra, rb = a.rows, b.rows
    for key in keys:
        in_a, in_b = ra.get(key, []), rb.get(key, [])
        if any(skipped(r) for r in (*in_a, *in_b)) or not in_a or not in_b:
            table.append(_line(key, "status", _state(in_a), _state(in_b), "", ""))
        if not any(not skipped(r) for r in in_a) or not any(not skipped(r) for r in in_b):
            continue  # measured on one side only: its status line says so, there is nothing to compare
        for measure in MEASURES:
            table += _measure_lines(key, measure, a, b, sticks, flagged)
        table += _metric_line(key, a, b, label)
    lines += _machine_lines(sticks)
    lines += [f"**Moved against the rest of the run: {'; '.join(flagged) if flagged else 'none'}.**", ""]
    lines += [f"Rule: {rule(len(a.views), len(b.views))}", ""]
    thresholds = ", ".join(f"{m.label} {num(100 * m.relative)}%" for m in MEASURES)
    lines += [f"Relative thresholds: {thresholds}; the held-out metric: Mann–Whitney U over the learned seeds "
              f"of each side, 'differs' at p < {ALPHA}.", ""]  # fmt: skip
    lines += [
        *table,
        "",
        "B/A > 1: B is slower, larger or less accurate. B/A ÷ machine: B/A over the machine's "
        "move (above); a case is flagged against the rest when that exceeds the noise and the threshold.",
    ]
    return "\n".join(lines) + "\n"


def _table(a: Side, b: Side) -> Any:
    import pandas as pd

    return pd.concat([v.table for v in (*b.views, *a.views)], ignore_index=True)


def _machine_lines(sticks: dict[tuple[str, ...], Yardstick]) -> list[str]:
    """How the machine moved as a whole, per device and size: the line that reads a uniformly faster machine."""
    if not sticks:
        return []
    lines = ["How the machine moved (B/A of the yardstick; every time is judged against it as well):", ""]
    for measure in (m for m in MEASURES if m.timed):
        for (column, device, size, model), stick in sticks.items():
            if column == measure.column:
                size = size if model == "rnn" else f"{size} {model}"
                lines.append(f"- {measure.label.split(' (')[0]} @{device} {size}: {stick.text()}")
    return [*lines, ""]


def default_out(a: Side, b: Side) -> Path:
    name = lambda s: s.views[0].run.name + (f"+{len(s.views) - 1}" if len(s.views) > 1 else "")  # noqa: E731
    return RESULTS_DIR / f"compare-{name(b)}-vs-{name(a)}.md"


def write_compare(a: Sequence[str | Path], b: Sequence[str | Path], out: str | Path | None = None) -> tuple[str, Path]:
    """Compare run folders B against A; writes the markdown to `out` (default results/compare-B-vs-A.md,
    never inside a run folder) and returns (markdown, its path)."""
    side_a, side_b = side(a), side(b)
    path = check_output(Path(out) if out is not None else default_out(side_a, side_b))
    text = compare_markdown(side_a, side_b)
    path.parent.mkdir(parents=True, exist_ok=True)
    return text, atomic.write_text(path, text)
