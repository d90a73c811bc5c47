"""Runs as one tidy table: `frame(*run_dirs)` reads each run folder (any schema, through
`benchmarks.records.read`) and returns a pandas DataFrame with one row per measurement, every row
carrying its run and its case. Every table, CSV and plot of the report is a view of it.

Rows (`kind`):
- "block": one block of timed rounds of one op (train_step or predict) of one case in one repeat;
  `seconds` is the median per-call time of its rounds, `q1_s`/`q3_s`/`min_s` their quartiles and
  minimum, `round_seconds` the rounds themselves.
- "first_step": the first train_step on a fresh backend (tracing, compiling), `seconds`.
- "training": one seed's training run: `seed`, `metric` (held-out, the task's; NaN when diverged),
  `outcome` (learned, diverged, did-not-learn), `diverged_step`, `seconds` (wall time), `final_loss`,
  `losses` and `predictions` (lists).
- "memory": the case's peak memory (`peak_rss_bytes`, `baseline_rss_bytes`, `gpu_peak_bytes`; `reason`
  says why it was not measured).
- "skipped": a case or part of one not measured: `status` (unavailable, failed, over-budget, or "not
  reached": planned in the start record, never begun), `reason`, `where`.
- "overhead": the harness's own cost per timed call (no case), `seconds`.

Columns, in order, with their dtypes, are `COLUMNS`; `order` is the record's place in its run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import names, records
from benchmarks.records import (
    Block,
    Case,
    FirstStep,
    HeldOut,
    Loaded,
    Memory,
    Overhead,
    RecordError,
    RunRecords,
    Skipped,
    Training,
)

S, INT, F, B, OBJ = "string", "Int64", "float64", "boolean", "object"  # the dtypes: missing values are <NA> or NaN
# every row of a run: run (folder name), path (resolved: tells apart runs that share a name), sweep, complete,
# started, host, cpu, cores, gpu (model; <NA> without), commit, dirty, threads (requested), threads_mismatch (pools
# that ran another count), versions ('numpy=2.4.6; torch=2.13.0'), options ('seeds=10; ...'), task, metric_name
RUN_COLUMNS: dict[str, str] = {
    "run": S, "path": S, "sweep": B, "complete": B, "started": S, "host": S, "cpu": S, "cores": INT, "gpu": S,
    "commit": S, "dirty": B, "threads": INT, "threads_mismatch": S, "versions": S, "options": S, "task": S,
    "metric_name": S,
}  # fmt: skip
# every row of a case: backend, mode, device, size ('32x1x10') and its parts, model (the cell: rnn, lstm, gru); from
# the case's loaded record:
# params (as its framework counts them), framework, kernel (its code path), compile, startup_s (its worker's start)
CASE_COLUMNS: dict[str, str] = {
    "backend": S, "mode": S, "device": S, "size": S, "hidden": INT, "batch": INT, "seq_len": INT, "model": S, "node": S,
    "params": INT, "framework": S, "kernel": S, "compile": S, "startup_s": F,
}  # fmt: skip
ROW_COLUMNS: dict[str, str] = {  # what each kind of row fills: see the module docstring
    "kind": S, "order": INT, "op": S, "repeat": INT, "calls_per_round": INT, "rounds": INT, "seconds": F, "q1_s": F,
    "q3_s": F, "min_s": F, "round_seconds": OBJ, "seed": INT, "metric": F, "outcome": S, "diverged_step": INT,
    "final_loss": F, "losses": OBJ, "predictions": OBJ, "peak_rss_bytes": INT, "baseline_rss_bytes": INT,
    "gpu_peak_bytes": INT, "status": S, "reason": S, "where": S,
}  # fmt: skip
COLUMNS: dict[str, str] = {**RUN_COLUMNS, **CASE_COLUMNS, **ROW_COLUMNS}
CASE_KEY = ["path", "backend", "mode", "device", "size", "model", "node"]  # a case of one run


@dataclasses.dataclass
class Run:
    """What a run's tables say around the measurements: its records, start, machine, end and held-out data."""

    records: RunRecords

    @property
    def name(self) -> str:
        return self.records.name

    @property
    def path(self) -> Path:
        return self.records.path.resolve()

    @property
    def shown_path(self) -> str:
        """The folder as a reader would type it: relative to the working folder when inside it."""
        try:
            return str(self.path.relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(self.path)

    @property
    def start(self) -> records.Start:
        return self.records.start

    @property
    def machine(self) -> records.Machine | None:
        return self.records.machine

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.start.options)

    @property
    def task(self) -> dict[str, Any]:
        return dict(self.start.task)

    @property
    def sweep(self) -> bool:
        return bool(self.options.get("sweep"))

    @property
    def metric(self) -> dict[str, str]:
        """The task's metric {name, label, about}; a run that stored none gets a neutral one."""
        metric = self.task.get("metric")
        metric = metric if isinstance(metric, dict) else {}
        thresholds = self.task.get("thresholds")
        thresholds = thresholds if isinstance(thresholds, dict) else {}
        trivial = "the task's trivial predictor"
        if thresholds.get("trivial") is not None:
            trivial += f" ({thresholds.get('trivial_about') or 'declared by the task'}: {thresholds['trivial']})"
        return {
            "name": str(metric.get("name") or "metric"),
            "label": str(metric.get("label") or metric.get("name") or "metric"),
            "about": str(metric.get("about") or ""),
            "trivial": trivial,
        }

    @property
    def held_out(self) -> dict[str, HeldOut]:
        return {h.size: h for h in self.records.of(HeldOut)}

    @property
    def warnings(self) -> list[str]:
        """Lines a reader must see above the table: an incomplete run, repeated records, thread pools."""
        out, recs = [], self.records
        if recs.torn:
            out.append("the records file ends in a cut-off line: the run was killed while writing it")
        if recs.duplicates:
            shown = "; ".join(recs.duplicates[:3]) + (
                f"; and {len(recs.duplicates) - 3} more" if len(recs.duplicates) > 3 else ""
            )
            out.append(f"{len(recs.duplicates)} repeated record(s) left out, each counted once ({shown})")
        finish = recs.finish
        if finish is None:
            out.append(
                "this run is incomplete: it recorded no end (killed or still running); rows say what was never reached"
            )
        elif not finish.complete:
            note = f" ({finish.note})" if finish.note else ""
            out.append(f"this run is incomplete: it stopped before every measurement was made{note}")
        mismatch = _mismatch(recs)
        if mismatch:
            requested = self.machine.threads.get("requested") if self.machine else None
            out.append(f"thread pools not at the requested {requested} thread(s): {', '.join(mismatch)}")
        return out


def describe(value: Any) -> str:
    """A stored value (list, dict, scalar) as one line of text."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {describe(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(describe(v) for v in value)
    return str(value)


def _mismatch(recs: RunRecords) -> list[str]:
    """Pools not at the requested thread count, from any machine record (a pool may exist only before or after
    the frameworks load)."""
    out: list[str] = []
    for machine in recs.of(records.Machine):
        found = machine.threads.get("mismatch")
        found = found if isinstance(found, list) else [found] if found else []
        out += [text for text in map(describe, found) if text not in out]
    return out


def check(recs: RunRecords) -> None:
    """RecordError for values the types allow but a measurement cannot have: negative times or sizes."""
    for record, place in zip(recs.records, recs.where):
        label = getattr(getattr(record, "case", None), "label", "")
        where = f"{place} ({record.kind}{' ' + label if label else ''})"
        if isinstance(record, (Block, Overhead)):
            bad = next((v for v in record.seconds if v < 0), None)
            if bad is not None:
                raise RecordError(f"{where}.seconds: holds a negative time ({bad!r})")
            if record.calls_per_round < 1:
                raise RecordError(f"{where}.calls_per_round: must be at least 1, got {record.calls_per_round}")
        elif isinstance(record, (FirstStep, Training)) and record.seconds < 0:
            raise RecordError(f"{where}.seconds: must not be negative, got {record.seconds!r}")
        elif isinstance(record, Memory):
            for field in ("peak_rss_bytes", "baseline_rss_bytes", "gpu_peak_bytes"):
                value = getattr(record, field)
                if value is not None and value < 0:
                    raise RecordError(f"{where}.{field}: must not be negative, got {value}")
        elif isinstance(record, Loaded) and record.params < 0:
            raise RecordError(f"{where}.params: must not be negative, got {record.params}")
        if isinstance(getattr(record, "case", None), Case):
            try:
                names.size_parts(record.case.size)
            except ValueError:
                raise RecordError(
                    f"{where}.case.size: must be HIDDENxBATCHxSEQ_LEN, got {record.case.size!r:.40}"
                ) from None


def load(run_dir: str | Path) -> tuple[Run, pd.DataFrame]:
    """A run folder's metadata and its table; RecordError (one line, naming file, line and field) when unusable."""
    recs = records.read(run_dir)
    check(recs)
    run = Run(recs)
    return run, run_frame(run)


def frame(*run_dirs: str | Path) -> pd.DataFrame:
    """The measurements of every run folder given, one tidy table (see the module docstring and COLUMNS).
    A folder named twice is read once."""
    frames = [table for _, table in load_all(run_dirs)]
    return pd.concat(frames, ignore_index=True) if frames else empty()


def load_all(run_dirs: Iterable[str | Path]) -> list[tuple[Run, pd.DataFrame]]:
    """Each run folder once (by its resolved path), in the order given."""
    seen: dict[Path, tuple[Run, pd.DataFrame]] = {}
    for run_dir in run_dirs:
        key = Path(run_dir).resolve()
        if key not in seen:
            seen[key] = load(run_dir)
    return list(seen.values())


def empty() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in COLUMNS.items()})


def run_columns(run: Run) -> dict[str, Any]:
    """The run-level values every row of the run carries."""
    m, opts = run.machine, run.options
    versions = "; ".join(f"{k}={v}" for k, v in (m.frameworks if m else {}).items() if v != "*not-installed*")
    requested = m.threads.get("requested") if m else opts.get("threads")
    return {
        "run": run.name,
        "path": str(run.path),
        "sweep": run.sweep,
        "complete": run.records.complete,
        "started": run.start.started,
        "host": m.host if m else None,
        "cpu": m.cpu if m else None,
        "cores": m.cores if m else None,
        "gpu": m.gpu if m else None,
        "commit": m.commit if m else None,
        "dirty": m.dirty if m else None,
        "threads": requested if isinstance(requested, int) and not isinstance(requested, bool) else None,
        "threads_mismatch": ", ".join(_mismatch(run.records)) or None,
        "versions": versions or None,
        "options": "; ".join(f"{k}={describe(v)}" for k, v in opts.items()) or None,
        "task": str(run.task.get("name") or "") or None,
        "metric_name": run.metric["name"],
    }


def _case_columns(case: Case, loaded: Loaded | None) -> dict[str, Any]:
    hidden, batch, seq_len = names.size_parts(case.size)
    out = {"backend": case.backend, "mode": case.mode, "device": case.device, "size": case.size,
           "hidden": hidden, "batch": batch, "seq_len": seq_len, "model": case.model,
           "node": case.node}  # fmt: skip
    if loaded is not None:
        info = loaded.info
        text = {k: str(info[k]) if info.get(k) else None for k in ("framework", "kernel", "compile")}
        out.update(params=loaded.params, startup_s=loaded.startup_seconds, **text)
    return out


def _block(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"rounds": 0, "round_seconds": []}
    q1, median, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return {"seconds": float(median), "q1_s": float(q1), "q3_s": float(q3), "min_s": min(values), "rounds": len(values),
            "round_seconds": list(values)}  # fmt: skip


def _row(record: Any) -> dict[str, Any] | None:
    """The frame row of one record (None: the record is not a measurement)."""
    if isinstance(record, Block):
        return {"kind": "block", "op": record.op, "repeat": record.repeat, "calls_per_round": record.calls_per_round,
                **_block(record.seconds)}  # fmt: skip
    if isinstance(record, FirstStep):
        return {"kind": "first_step", "seconds": record.seconds}
    if isinstance(record, Training):
        last = record.losses[-1] if record.losses else None
        return {"kind": "training", "seed": record.seed, "metric": record.metric, "outcome": record.outcome,
                "diverged_step": record.diverged_step, "seconds": record.seconds, "final_loss": last,
                "losses": list(record.losses), "predictions": record.predictions}  # fmt: skip
    if isinstance(record, Memory):
        return {"kind": "memory", "peak_rss_bytes": record.peak_rss_bytes, "reason": record.error,
                "baseline_rss_bytes": record.baseline_rss_bytes, "gpu_peak_bytes": record.gpu_peak_bytes}  # fmt: skip
    if isinstance(record, Skipped):
        return {"kind": "skipped", "status": record.status, "reason": record.reason, "where": record.where}
    if isinstance(record, Overhead):
        return {"kind": "overhead", "calls_per_round": record.calls_per_round, **_block(record.seconds)}
    return None


def run_frame(run: Run) -> pd.DataFrame:
    """One run's table (see the module docstring)."""
    recs = run.records
    loaded: dict[Case, Loaded] = {}
    for record in recs.of(Loaded):
        loaded.setdefault(record.case, record)  # a backend loaded again after a failure: the first describes it
    rows: list[dict[str, Any]] = []
    for order, record in enumerate(recs.records):
        row = _row(record)
        if row is not None:
            case = getattr(record, "case", None)
            rows.append({"order": order, **row, **(_case_columns(case, loaded.get(case)) if case else {})})
    measured = {r.case for r in recs.records if isinstance(r, (Block, FirstStep, Training, Memory, Skipped))}
    anywhere = {dataclasses.replace(c, node="") for c in measured}  # a planned case names no node (--cluster)
    for case in dict.fromkeys([*loaded, *run.start.cases]):  # loaded or planned, then nothing: never reached
        if case not in measured and dataclasses.replace(case, node="") not in anywhere:
            why = "loaded, then the run stopped" if case in loaded else "the run stopped before this case"
            rows.append({"order": len(recs.records), "kind": "skipped", "status": "not reached", "reason": why,
                         **_case_columns(case, loaded.get(case))})  # fmt: skip
    table = pd.DataFrame(rows, columns=list(COLUMNS)) if rows else empty()
    for name, value in run_columns(run).items():
        table[name] = pd.Series([value] * len(table), dtype="object")
    return _typed(table)


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for name, dtype in COLUMNS.items():
        column = table[name]
        if dtype == "object":
            out[name] = column.astype(object)
        elif dtype == "float64":
            out[name] = pd.to_numeric(column, errors="raise").astype("float64")
        else:
            out[name] = column.astype(object).where(column.notna(), None).astype(dtype)
    return pd.DataFrame(out)


def finite(value: Any) -> Any:
    """None for a missing value (NaN, <NA>, None); the value otherwise."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
