"""Read a saved run folder and turn it into comparison rows. JSON only: no framework is imported."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import Any

REFERENCE = "torch-rnn"  # the speed-up column is relative to this backend on the same device
DEVICE_ORDER = ("cpu", "cuda")
# two-sided 95% Student t critical values by degrees of freedom (no scipy); beyond 30, the next lower entry
T95 = {
    **dict(enumerate([12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228], start=1)),
    **dict(enumerate([2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086], start=11)),
    **dict(enumerate([2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042], start=21)),
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


class RunError(ValueError):
    """A run folder that cannot be read: missing, without benchmark.json, or malformed."""


@dataclasses.dataclass
class Run:
    """One saved run: pytest-benchmark's JSON (`bench`) and the harness's run.json (`meta`, {} if absent)."""

    path: Path
    bench: dict[str, Any]
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        """The run folder's name."""
        return self.path.resolve().name  # results/latest is a symlink: name the run itself

    @property
    def machine(self) -> dict[str, Any]:
        """pytest-benchmark's machine_info, extended by the harness."""
        return self.bench.get("machine_info") or {}

    @property
    def cpu_name(self) -> str | None:
        """The CPU model: the harness's reading, else pytest-benchmark's own."""
        m = self.machine
        return m.get("cpu_model") or (m.get("cpu") or {}).get("brand_raw") or m.get("processor") or None

    @property
    def unavailable(self) -> dict[str, str]:
        """'backend@device' -> why it was not measured."""
        return {str(k): str(v) for k, v in (self.meta.get("unavailable") or {}).items()}

    @property
    def options(self) -> dict[str, Any]:
        """The run's options; a run from before an option existed gets what it did then."""
        options = dict(self.meta.get("options") or {})
        if options:
            options.setdefault("repeats", 1)  # runs from before repeats timed one block
        return options

    @property
    def failed(self) -> dict[str, str]:
        """'backend@device' -> the error a benchmark of it raised (a bug to fix, not a measurement)."""
        return {str(k): str(v) for k, v in (self.meta.get("failed") or {}).items()}

    def entries(self, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
        """Benchmarks of one extra_info kind keyed by (backend, device); the first repeat of each."""
        return {key: group[0] for key, group in self.repeats(kind).items()}

    def repeats(self, kind: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Benchmarks of one extra_info kind keyed by (backend, device): all repeats, in repeat order
        (a run from before repeats has one per key)."""
        out: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for entry in self.bench["benchmarks"]:
            extra = entry.get("extra_info")
            if isinstance(extra, dict) and extra.get("kind") == kind and isinstance(entry.get("stats"), dict):
                out.setdefault((str(extra.get("backend")), str(extra.get("device", "cpu"))), []).append(entry)
        for group in out.values():
            group.sort(key=lambda e: _int(e["extra_info"].get("repeat")) or 0)
        return out


@dataclasses.dataclass
class Row:
    """One backend on one device. Times in seconds, memory in bytes; None where not measured."""

    backend: str
    device: str
    status: str = "ok"  # ok | partly-diverged | diverged | unavailable | failed
    reason: str = ""  # why unavailable, or the error when failed
    failures: str = ""  # errors of some of its benchmarks while others measured
    notes: str = ""  # what else a reader must know: a run cut short, memory not measured
    kernel: str = ""
    framework: str = ""
    step_median: float | None = None
    step_iqr: float | None = None
    step_q1: float | None = None
    step_q3: float | None = None
    step_min: float | None = None
    step_rounds: int | None = None  # over all repeats
    step_repeat_medians: list[float] = dataclasses.field(default_factory=list)  # one per repeat
    first_step: float | None = None
    predict_median: float | None = None
    predict_iqr: float | None = None
    predict_repeat_medians: list[float] = dataclasses.field(default_factory=list)
    seeds: int | None = None  # seeds of the training run; None without one
    diverged: int | None = None
    mse_mean: float | None = None
    mse_std: float | None = None
    mse_ci_low: float | None = None
    mse_ci_high: float | None = None
    train_run_mean: float | None = None
    final_loss_mean: float | None = None
    params: int | None = None
    peak_rss_bytes: int | None = None
    baseline_rss_bytes: int | None = None
    gpu_peak_bytes: int | None = None
    speedup: float | None = None
    gpu_cpu: float | None = None

    @property
    def step_repeats(self) -> int | None:
        return len(self.step_repeat_medians) or None

    @property
    def step_spread(self) -> float | None:
        """Highest minus lowest repeat median: the machine's drift while the repeats ran; None for one repeat."""
        return _spread(self.step_repeat_medians)

    @property
    def predict_spread(self) -> float | None:
        return _spread(self.predict_repeat_medians)

    @property
    def step_noise(self) -> float | None:
        """What a change in the step median must exceed to be more than noise: the IQR or the spread."""
        return _largest(self.step_iqr, self.step_spread)

    @property
    def predict_noise(self) -> float | None:
        return _largest(self.predict_iqr, self.predict_spread)


def _spread(medians: list[float]) -> float | None:
    return max(medians) - min(medians) if len(medians) > 1 else None


def _largest(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def load_run(run_dir: str | Path) -> Run:
    """Read a run folder's benchmark.json (required) and run.json (optional); RunError if unusable."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder")
    bench = _read_json(path / "benchmark.json", required=True)
    if not isinstance(bench, dict) or not isinstance(bench.get("benchmarks"), list):
        raise RunError(f"{path / 'benchmark.json'}: not pytest-benchmark JSON (no 'benchmarks' list)")
    if not all(isinstance(b, dict) for b in bench["benchmarks"]):
        raise RunError(f"{path / 'benchmark.json'}: every entry of 'benchmarks' must be an object")
    meta = _read_json(path / "run.json", required=False)
    if not isinstance(meta, dict):
        raise RunError(f"{path / 'run.json'}: must be a JSON object")
    return Run(path, bench, meta)


def _read_json(file: Path, required: bool) -> Any:
    if not file.exists():
        if required:
            raise RunError(f"{file.parent}: no {file.name} here (not a run folder?)")
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunError(f"{file}: cannot read it ({str(err).splitlines()[0]})") from None


def newest_run(results_dir: str | Path) -> Path:
    """The newest run: results/latest, else index.json's latest, else the newest complete folder in runs/."""
    results = Path(results_dir)
    candidates = [results / "latest"]
    try:
        index = json.loads((results / "index.json").read_text(encoding="utf-8"))
        names = [index.get("latest")] + list(reversed(index.get("runs") or []))
        candidates += [results / "runs" / n for n in names if isinstance(n, str) and n]
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # no or broken index: fall back to scanning
    # stamp-host names sort by time; unfinished (.partial) runs are never picked, interrupted ones last
    folders = sorted((results / "runs").glob("*/benchmark.json")) if (results / "runs").is_dir() else []
    folders = [f.parent for f in folders if not f.parent.name.endswith(".partial")]
    folders.sort(key=lambda p: (not p.name.endswith("-incomplete"), p.name))
    candidates += reversed(folders)
    for candidate in candidates:
        if (candidate / "benchmark.json").is_file():
            return candidate.resolve()
    raise RunError(f"{results}: no run found (no latest, index.json or runs/*/benchmark.json)")


def backend_order(run: Run) -> list[str]:
    """Registry order, then the run's requested order, then anything else as it appears."""
    try:
        import backends  # imports no framework

        order = backends.names()
    except Exception:  # the report must work from JSON alone, even without the package
        order = []
    order += [str(b) for b in (run.meta.get("options") or {}).get("backends") or []]
    extras = [e.get("extra_info") for e in run.bench["benchmarks"]]
    order += [str(x.get("backend")) for x in extras if isinstance(x, dict) and x.get("backend")]
    order += [backend for backend, _ in _by_case({**run.unavailable, **run.failed})]
    return list(dict.fromkeys(order))


def _by_case(notes: dict[str, str]) -> dict[tuple[str, str], str]:
    """run.json's 'backend@device' keys as (backend, device); a bare name means the cpu."""
    return {(tuple(k.rsplit("@", 1)) if "@" in k else (k, "cpu")): v for k, v in notes.items()}


def _num(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def t95(df: int) -> float:
    """Two-sided 95% Student t critical value for `df` degrees of freedom (df >= 1)."""
    return T95[max(k for k in T95 if k <= df)] if df <= 120 else 1.960


def mean_std_ci(values: list[float]) -> tuple[float | None, float | None, float | None, float | None]:
    """Mean, sample std and the 95% t interval of the mean; None parts where n is too small."""
    if not values:
        return None, None, None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None, None
    std = statistics.stdev(values)
    half = t95(len(values) - 1) * std / math.sqrt(len(values))
    return mean, std, mean - half, mean + half


def _kernel(info: dict[str, Any]) -> str:
    parts = [str(info["kernel"])] if info.get("kernel") else []
    if info.get("mode"):
        parts.append(str(info["mode"]))
    if info.get("xla"):
        parts.append("XLA")
    if info.get("gpu"):  # the model, on the row itself: a run may compare rows from different machines
        parts.append(f"on {info['gpu']}")
    return "; ".join(parts)


def _fill_training(row: Row, entry: dict[str, Any]) -> None:
    extra = entry.get("extra_info") or {}
    mses = list(extra.get("held_out_mse") or [])
    flags = list(extra.get("diverged") or [])
    # a seed counts as diverged when flagged so, or when it left no finite MSE
    diverged = [bool(flags[i]) if i < len(flags) else False for i in range(len(mses))]
    diverged = [d or _num(m) is None for d, m in zip(diverged, mses)]
    good = [float(m) for m, d in zip(mses, diverged) if not d]
    row.seeds, row.diverged = len(mses), sum(diverged)
    row.mse_mean, row.mse_std, row.mse_ci_low, row.mse_ci_high = mean_std_ci(good)
    if row.mse_ci_low is not None:
        row.mse_ci_low = max(row.mse_ci_low, 0.0)  # an MSE cannot be negative: clip the t interval at 0
    if row.seeds and row.diverged == row.seeds:
        row.status = "diverged"
    elif row.diverged:
        row.status = "partly-diverged"
    row.final_loss_mean = _mean_of_kept(extra.get("final_loss"), diverged)
    # a diverged run stops early, so its time would pull the mean down
    row.train_run_mean = _mean_of_kept(extra.get("train_seconds"), diverged)
    row.params = row.params or _int(extra.get("params"))
    row.peak_rss_bytes = _int(extra.get("peak_rss_bytes"))
    row.baseline_rss_bytes = _int(extra.get("baseline_rss_bytes"))
    row.gpu_peak_bytes = _int(extra.get("gpu_peak_bytes"))
    if extra.get("error"):
        _note(row, f"peak mem not measured: {extra['error']}")
    if not row.kernel and isinstance(extra.get("info"), dict):
        row.kernel, row.framework = _kernel(extra["info"]), str(extra["info"].get("framework") or "")


def _stat_list(group: list[dict[str, Any]], stat: str) -> list[float]:
    """One pytest-benchmark statistic of every repeat, where present."""
    values = [_num(entry["stats"].get(stat)) for entry in group]
    return [v for v in values if v is not None]


def _over_repeats(group: list[dict[str, Any]]) -> tuple[float | None, ...]:
    """Median, IQR, Q1 and Q3 of a step over its repeats: the median of each repeat's figure, so one
    block timed at a bad moment moves it least."""
    return tuple(
        statistics.median(values) if (values := _stat_list(group, stat)) else None
        for stat in ("median", "iqr", "q1", "q3")
    )


def _mean_of_kept(values: Any, dropped: list[bool]) -> float | None:
    """Mean of the finite values whose seed is not dropped; None when none is left."""
    kept = [_num(v) for v, d in zip(values or [], dropped) if not d]
    kept = [v for v in kept if v is not None]
    return statistics.fmean(kept) if kept else None


def _note(row: Row, text: str) -> None:
    row.notes = f"{row.notes}; {text}" if row.notes else text


def _cut_short(row: Row, run: Run) -> None:
    """Note a measurement with fewer rounds or seeds than the run asked for, or none at all,
    when the run stopped part-way."""
    options = run.options
    rounds, seeds, repeats = options.get("rounds"), options.get("seeds"), options.get("repeats")
    if isinstance(rounds, int) and isinstance(repeats, int):
        rounds *= repeats
    if isinstance(rounds, int) and row.step_rounds is not None and row.step_rounds < rounds:
        _note(row, f"step timed over {row.step_rounds} of {rounds} rounds")
    if isinstance(seeds, int) and row.seeds is not None and row.seeds < seeds:
        _note(row, f"accuracy over {row.seeds} of {seeds} seeds")
    if run.meta.get("complete") is False and row.status not in ("unavailable", "failed"):
        missing = [what for what, value in (("step", row.step_median), ("accuracy", row.seeds)) if value is None]
        if missing:
            _note(row, f"{' and '.join(missing)} not measured before the run stopped")


def md_cell(text: str) -> str:
    """Text fit for one markdown table cell: a pipe or newline inside a reason would break the table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _int(value: Any) -> int | None:
    number = _num(value)
    return int(number) if number is not None else None


def comparison_rows(run: Run) -> list[Row]:
    """One row per backend x device: registry order, cpu before cuda, unavailable ones included."""
    steps, predicts, trainings = run.repeats("train_step"), run.repeats("predict"), run.entries("training_run")
    keys = set(steps) | set(predicts) | set(trainings)
    keys.discard(("noop", "cpu"))  # the harness-overhead probe is not a backend
    unavailable, failed = _by_case(run.unavailable), _by_case(run.failed)
    keys |= set(unavailable) | set(failed)
    order = backend_order(run)

    def sort_key(key: tuple[str, str]) -> tuple[int, int, str]:
        device_rank = DEVICE_ORDER.index(key[1]) if key[1] in DEVICE_ORDER else len(DEVICE_ORDER)
        return order.index(key[0]) if key[0] in order else len(order), device_rank, key[1]

    rows = []
    for key in sorted(keys, key=sort_key):
        row = Row(*key)
        if key in steps:
            row.step_median, row.step_iqr, row.step_q1, row.step_q3 = _over_repeats(steps[key])
            row.step_repeat_medians = _stat_list(steps[key], "median")
            row.step_min = min(_stat_list(steps[key], "min"), default=None)
            row.step_rounds = int(sum(_stat_list(steps[key], "rounds"))) or None
            extra = steps[key][0].get("extra_info") or {}
            row.first_step, row.params = _num(extra.get("first_step_seconds")), _int(extra.get("params"))
            info = extra.get("info") if isinstance(extra.get("info"), dict) else {}
            row.kernel, row.framework = _kernel(info), str(info.get("framework") or "")
        if key in predicts:
            row.predict_median, row.predict_iqr, _, _ = _over_repeats(predicts[key])
            row.predict_repeat_medians = _stat_list(predicts[key], "median")
        if key in trainings:
            _fill_training(row, trainings[key])
        measured = key in steps or key in predicts or key in trainings
        if key in failed:
            if measured:
                row.failures = failed[key]
            else:
                row.status, row.reason = "failed", failed[key]
        elif key in unavailable and not measured:
            row.status, row.reason = "unavailable", unavailable[key]
        _cut_short(row, run)
        rows.append(row)
    reference = {r.device: r.step_median for r in rows if r.backend == REFERENCE and r.step_median}
    cpu = {r.backend: r.step_median for r in rows if r.device == "cpu" and r.step_median}
    for row in rows:
        if row.step_median:
            row.speedup = reference[row.device] / row.step_median if row.device in reference else None
            row.gpu_cpu = row.step_median / cpu[row.backend] if row.device != "cpu" and row.backend in cpu else None
    return rows


def harness_overhead(run: Run) -> float | None:
    """Median seconds of the no-op step timed through the harness, or None if not measured."""
    entries = list(run.entries("harness_overhead").values())
    return _num(entries[0]["stats"].get("median")) if entries else None
