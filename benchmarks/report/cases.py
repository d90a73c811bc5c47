"""The frame folded to one row per case of a run (backend, mode, device, size, model), with the one statistic for
step time everywhere: the median over repeats of each repeat's (block's) median, the lowest and highest
repeat median beside it and their difference (the spread) as the run's noise. Accuracy is summarised over
the learned seeds; comparisons are made between rows of the same run. Every table, CSV and plot reads this.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import names
from benchmarks.report import frame
from benchmarks.report.frame import CASE_COLUMNS, CASE_KEY, RUN_COLUMNS, Run, finite

REFERENCE = ("torch-rnn", "eager")  # the speed-up column divides its step median by this row's (same device)
ORACLE = ("numpy", "eager", "cpu")  # the accuracy test compares each row with this case
ALPHA = 0.05  # the accuracy test's level
MIN_SEEDS = 3  # learned seeds each side below which the accuracy test is not made
SKIPPED = ("unavailable", "failed", "over-budget", "not reached")
PREFIX = {"train_step": "step", "predict": "predict"}  # an op's columns: step_median_s, predict_median_s, ...
TIMING = ("median_s", "low_s", "high_s", "spread_s", "iqr_s", "repeats", "rounds", "calls_per_round", "min_s")


def _registry() -> Any:
    import backends  # imports no framework

    return backends


def default_mode(backend: str) -> str | None:
    """The backend's default (first) registry mode; None for a name the registry does not know."""
    try:
        return _registry().modes(backend)[0]
    except ValueError:
        return None


def floor(device: str = "cpu") -> tuple[str, str] | None:
    """The no-framework floor's backend and mode on `device` (numba on the CPU, the Triton kernel on CUDA), or
    None when no backend is registered as the floor there."""
    registry = _registry()
    for name in registry.floor_backends():
        mode = default_mode(name)
        if mode is not None and device in registry.mode_devices(name, mode):
            return name, mode
    return None


def timings(table: pd.DataFrame) -> pd.DataFrame:
    """Per case and op: the statistic and its noise from the blocks (one per repeat)."""
    blocks = table[(table["kind"] == "block") & (table["rounds"] > 0)].sort_values(["repeat", "order"])
    if blocks.empty:
        return pd.DataFrame(columns=[*CASE_KEY, "op", *TIMING, "repeat_medians"]).set_index(CASE_KEY)
    blocks = blocks.assign(iqr=blocks["q3_s"] - blocks["q1_s"])
    folded = blocks.groupby([*CASE_KEY, "op"], sort=False).agg(
        median_s=("seconds", "median"),
        low_s=("seconds", "min"),
        high_s=("seconds", "max"),
        iqr_s=("iqr", "median"),
        repeats=("seconds", "size"),
        rounds=("rounds", "sum"),
        calls_per_round=("calls_per_round", "max"),
        min_s=("min_s", "min"),
        repeat_medians=("seconds", list),
    )
    folded["spread_s"] = (folded["high_s"] - folded["low_s"]).where(folded["repeats"] > 1)
    return folded.reset_index().set_index(CASE_KEY)


def _accuracy(trainings: pd.DataFrame) -> pd.Series:
    outcome = trainings["outcome"]
    learned = trainings.loc[outcome == "learned", "metric"].dropna().tolist()
    kept = trainings[outcome != "diverged"]
    q = np.percentile(learned, [25, 50, 75]) if learned else [math.nan] * 3
    return pd.Series({
        "seeds": len(trainings),
        "learned": int((outcome == "learned").sum()),
        "diverged": int((outcome == "diverged").sum()),
        "did_not_learn": int((outcome == "did-not-learn").sum()),
        "metric_q1": q[0], "metric_median": q[1], "metric_q3": q[2],
        "learned_metrics": learned,
        "train_run_s": kept["seconds"].median() if len(kept) else math.nan,
        "final_loss": kept["final_loss"].median() if len(kept) else math.nan,
        "diverged_seeds": [(int(s), finite(d)) for s, d, o in zip(trainings["seed"], trainings["diverged_step"],
                                                                  outcome) if o == "diverged"],
    })  # fmt: skip


def cases(table: pd.DataFrame) -> pd.DataFrame:
    """One row per case of a run, sorted, with every statistic and comparison the report shows."""
    rows = table[table["backend"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=[*RUN_COLUMNS, *CASE_COLUMNS, "status"])
    grouped = rows.groupby(CASE_KEY, sort=False)
    out = grouped[[c for c in [*RUN_COLUMNS, *CASE_COLUMNS] if c not in CASE_KEY]].first()
    folded = timings(table)
    for op, prefix in PREFIX.items():
        part = folded[folded["op"] == op][[*TIMING, "repeat_medians"]]
        out = out.join(part.add_prefix(f"{prefix}_"))
    firsts = rows[rows["kind"] == "first_step"].sort_values("order").groupby(CASE_KEY, sort=False)["seconds"].first()
    out["first_step_s"] = firsts
    trainings = rows[rows["kind"] == "training"]
    if not trainings.empty:
        out = out.join(trainings.groupby(CASE_KEY, sort=False)[["seed", "metric", "outcome", "diverged_step", "seconds",
                                                               "final_loss"]].apply(_accuracy))  # fmt: skip
    memory = rows[rows["kind"] == "memory"].groupby(CASE_KEY, sort=False).last()
    out = out.join(memory[["peak_rss_bytes", "baseline_rss_bytes", "gpu_peak_bytes"]])
    out["memory_error"] = memory["reason"]
    skips: dict[tuple[str, ...], list[tuple[str, str, str]]] = {}
    skipped_rows = rows[rows["kind"] == "skipped"].sort_values("order")
    for *key, status, reason, where in skipped_rows[[*CASE_KEY, "status", "reason", "where"]].itertuples(index=False):
        skips.setdefault(tuple(key), []).append((status, finite(reason) or "", finite(where) or ""))
    out["skips"] = [skips.get(key, []) for key in out.index]
    out = _columns(out).reset_index()
    _status(out)
    _within_run(out)
    return sort(out)


def _columns(out: pd.DataFrame) -> pd.DataFrame:
    """Every column the case table documents, present even where the run measured nothing of it."""
    numbers = [f"{p}_{t}" for p in PREFIX.values() for t in TIMING] + ["first_step_s", "metric_q1", "metric_median",
               "metric_q3", "train_run_s", "final_loss"]  # fmt: skip
    counts = ["seeds", "learned", "diverged", "did_not_learn", "peak_rss_bytes", "baseline_rss_bytes", "gpu_peak_bytes"]
    for name in numbers:
        out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64") if name in out else math.nan
    for name in counts:
        out[name] = out[name].astype("Int64") if name in out else pd.Series(pd.NA, index=out.index, dtype="Int64")
    for prefix in PREFIX.values():
        out[f"{prefix}_repeats"] = out[f"{prefix}_repeats"].astype("Int64")
        out[f"{prefix}_rounds"] = out[f"{prefix}_rounds"].astype("Int64")
        out[f"{prefix}_calls_per_round"] = out[f"{prefix}_calls_per_round"].astype("Int64")
    for name in ("step_repeat_medians", "predict_repeat_medians", "learned_metrics", "diverged_seeds", "skips"):
        values = out[name] if name in out else pd.Series(None, index=out.index, dtype=object)
        out[name] = [v if isinstance(v, list) else [] for v in values]
    for name in ("seeds", "learned", "diverged", "did_not_learn"):
        out[name] = out[name].fillna(0)  # no seed trained: counts of zero
    return out


def _status(out: pd.DataFrame) -> None:
    """status (measured, or why not), reason, and the notes a row carries."""
    statuses, reasons, notes = [], [], []
    for row in out.to_dict("records"):
        skips: list[tuple[str, str, str]] = row["skips"]
        measured = any(finite(row[k]) is not None for k in ("step_median_s", "predict_median_s", "first_step_s"))
        measured = measured or row["seeds"] > 0
        status, reason, mine = "measured", "", []
        for skip_status, skip_reason, where in skips:
            place = f" ({where})" if where and where != "sweep" else ""
            if measured:
                mine.append(f"{skip_status}{place}: {skip_reason}")
            elif not reason:  # the first says why; the others only where they happened
                status, reason = skip_status, f"{skip_reason}{place}"
        more = list(dict.fromkeys(w or r for _, r, w in skips[1:] if (w or r) and w != "sweep")) if not measured else []
        if more:
            mine.append(f"also {skips[0][0]}: {'; '.join(more)}")
        if row["diverged_seeds"]:
            steps = ", ".join(f"seed {s} at step {d}" if d is not None else f"seed {s} (no finite metric)"
                              for s, d in row["diverged_seeds"])  # fmt: skip
            mine.append(f"diverged: {steps}")
        if measured:
            mine += _cut_short(row)
        if finite(row["memory_error"]):
            mine.append(f"peak memory not measured: {row['memory_error']}")
        statuses.append(status)
        reasons.append(reason)
        notes.append(mine)
    out["status"], out["reason"], out["notes"] = statuses, reasons, notes


def _options(row: dict[str, Any]) -> dict[str, str]:
    return dict(part.split("=", 1) for part in (finite(row["options"]) or "").split("; ") if "=" in part)


def _cut_short(row: dict[str, Any]) -> list[str]:
    """Measurements with fewer repeats, rounds or seeds than the run asked for, and what an incomplete run never
    reached. A sweep's rounds fit a time budget by design: not noted."""
    options, out = _options(row), []
    repeats, rounds, seeds = (int(options[k]) if options.get(k, "").isdigit() else None for k in ("repeats", "rounds",
                                                                                                  "seeds"))  # fmt: skip
    timed = finite(row["step_rounds"])
    if not row["sweep"] and timed is not None and repeats and rounds and timed < repeats * rounds:
        out.append(f"step timed over {timed} of {repeats * rounds} rounds")
    if row["seeds"] and seeds and row["seeds"] < seeds:
        out.append(f"accuracy over {row['seeds']} of {seeds} seeds")
    if not row["complete"]:
        parts = [("step timing", finite(row["step_median_s"]))]
        if options.get("accuracy", "True" if not row["sweep"] else "False") == "True":
            parts.append(("accuracy", row["seeds"] or None))
        if options.get("memory", "True" if not row["sweep"] else "False") == "True":
            parts.append(("memory", finite(row["peak_rss_bytes"]) if not finite(row["memory_error"]) else True))
        missing = [name for name, value in parts if value is None]
        if missing:
            out.append(f"never reached before the run stopped: {', '.join(missing)}")
    return out


def _lookup(out: pd.DataFrame, key: list[str], column: str, **fixed: str) -> pd.Series:
    """For each row, `column` of the measured row of the same run that matches it on `key` and has `fixed`."""
    chosen = out[(out["status"] == "measured")]
    for name, value in fixed.items():
        chosen = chosen[chosen[name] == value]
    found = chosen.drop_duplicates(key).set_index(key)[column]
    index = pd.MultiIndex.from_frame(out[key]) if len(key) > 1 else pd.Index(out[key[0]])
    return pd.Series(found.reindex(index).to_numpy(dtype=float), index=out.index)


def _within_run(out: pd.DataFrame) -> None:
    """Speed-up, × floor, GPU/CPU, break-even, the oracle test and the rank: each against rows of the same run."""
    step = out["step_median_s"].where(out["step_median_s"] > 0)
    reference = _lookup(
        out, ["path", "device", "size", "model"], "step_median_s", backend=REFERENCE[0], mode=REFERENCE[1]
    )
    out["speedup"] = reference / step
    out["floor_ratio"] = math.nan
    for device in out["device"].dropna().unique():  # each device against its own floor
        bottom = floor(device)
        if bottom is not None:
            base = _lookup(out, ["path", "device", "size", "model"], "step_median_s", backend=bottom[0], mode=bottom[1])
            mine = out["device"] == device
            out.loc[mine, "floor_ratio"] = (step / base.where(base > 0))[mine]
    for prefix in PREFIX.values():
        cpu = _lookup(out, ["path", "backend", "mode", "size", "model"], f"{prefix}_median_s", device="cpu")
        ratio = out[f"{prefix}_median_s"] / cpu.where(cpu > 0)
        out[f"{prefix}_gpu_cpu"] = ratio.where(out["device"] != "cpu")
    out["default_mode"] = [default_mode(b) for b in out["backend"]]
    merged = out.merge(out[out["status"] == "measured"], how="left", left_on=["path", "backend", "default_mode",
                       "device", "size", "model"], right_on=["path", "backend", "mode", "device", "size", "model"],
                       suffixes=("", "_base"))  # fmt: skip
    gain = merged["step_median_s_base"] - merged["step_median_s"]
    extra = merged["first_step_s"] - merged["first_step_s_base"]
    even = (extra / gain).clip(lower=0).where(gain > 0, math.inf)
    usable = (out["mode"] != out["default_mode"]) & gain.notna() & extra.notna() & out["step_median_s"].notna()
    out["break_even"] = even.where(usable).to_numpy()
    out.drop(columns="default_mode", inplace=True)
    _oracle(out)
    _rank(out)


def _oracle(out: pd.DataFrame) -> None:
    """Mann–Whitney p of each row's learned metrics against the oracle case's (same run, size and model)."""
    backend, mode, device = ORACLE
    is_oracle = (out["backend"] == backend) & (out["mode"] == mode) & (out["device"] == device)
    oracles = {(r["path"], r["size"], r["model"]): r["learned_metrics"] for r in out[is_oracle].to_dict("records")}
    p = []
    for row, oracle in zip(out.to_dict("records"), is_oracle):
        theirs = oracles.get((row["path"], row["size"], row["model"]), [])
        mine = row["learned_metrics"]
        p.append(mann_whitney_p(mine, theirs) if not oracle and min(len(mine), len(theirs)) >= MIN_SEEDS else math.nan)
    out["is_oracle"] = is_oracle
    out["oracle_p"] = p


def mann_whitney_p(x: list[float], y: list[float]) -> float:
    """Two-sided Mann–Whitney U test (scipy: exact for small samples without ties, else the normal approximation
    with tie and continuity corrections)."""
    from scipy import stats

    if len(set(x) | set(y)) == 1:  # every value equal: no evidence of any difference
        return 1.0
    return float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)


def _rank(out: pd.DataFrame) -> None:
    """Rank by step time within a run, device, size and model: 1 + the rows certainly faster (whose highest repeat
    median lies below this row's lowest). Rows whose ranges overlap share a rank: a tie within the run's noise."""
    ranks = pd.Series(pd.NA, index=out.index, dtype="Int64")
    timed = out[out["step_median_s"].notna()]
    for _, group in timed.groupby(["path", "device", "size", "model"], sort=False):
        highs = group["step_high_s"].to_numpy()
        for index, low in zip(group.index, group["step_low_s"]):
            ranks[index] = 1 + int((highs < low).sum())
    out["rank"] = ranks
    counts = ranks.groupby([out["path"], out["device"], out["size"], out["model"], ranks]).transform("size")
    out["tied"] = (counts > 1).fillna(False).astype(bool)


def sort(out: pd.DataFrame) -> pd.DataFrame:
    """Devices in table order, sizes as first seen (a sweep's by work), then by step median (rows without one last)."""
    if out.empty:
        return out
    registry = _registry().names()
    sizes, models = list(dict.fromkeys(out["size"])), list(dict.fromkeys(out["model"]))
    if out["sweep"].fillna(False).all():
        sizes.sort(key=lambda s: (names.work(s), names.size_parts(s)))
    keys = pd.DataFrame({
        "device": [names.device_rank(d) for d in out["device"]],
        "device_name": out["device"],
        "size": [sizes.index(s) for s in out["size"]],
        "model": [models.index(m) for m in out["model"]],
        "step": out["step_median_s"].fillna(math.inf),
        "backend": [registry.index(b) if b in registry else len(registry) for b in out["backend"]],
        "name": out["backend"], "mode": out["mode"], "run": out["path"],
    })  # fmt: skip
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return out.loc[order].reset_index(drop=True)


def skipped(row: dict[str, Any]) -> bool:
    """A row without numbers: unavailable, failed, over budget or never reached."""
    return row["status"] in SKIPPED


@dataclasses.dataclass
class View:
    """One run as the report sees it: its metadata, its frame, and the case table folded from it."""

    run: Run
    frame: pd.DataFrame
    table: pd.DataFrame

    @functools.cached_property
    def rows(self) -> list[dict[str, Any]]:
        """The case table's rows as dicts (what the columns format)."""
        return self.table.to_dict("records")

    @property
    def overhead(self) -> float | None:
        """The harness's cost per timed call: the median of its overhead blocks' medians."""
        values = self.frame.loc[self.frame["kind"] == "overhead", "seconds"].dropna()
        return float(values.median()) if len(values) else None


def view(run: Run, table: pd.DataFrame) -> View:
    return View(run, table, cases(table))


def load(run_dir: str | Path) -> View:
    """Read a run folder and fold it; RecordError (one line, naming file, line and field) when unusable."""
    return view(*frame.load(run_dir))
