"""A run's records turned into rows: one per case (backend, mode, device, size), cases that were not
measured included, with the figures the columns show and the comparisons between rows of the same run."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

from benchmarks import records
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
from benchmarks.report import stats

REFERENCE = ("torch-rnn", "eager")  # the speed-up column divides its step median by this row's (same device)
ORACLE_BACKEND = "numpy"  # the accuracy test compares each row with this backend's cpu row
DEVICE_ORDER = ("cpu", "cuda")
ALPHA = 0.05  # the accuracy test's level
MIN_SEEDS = 3  # converged seeds each side below which the accuracy test is not made
SKIPPED = ("unavailable", "failed", "over-budget", "not reached")


def _registry() -> Any:
    import backends  # imports no framework

    return backends


def default_mode(backend: str) -> str | None:
    """The backend's default (first) registry mode; None for a name the registry does not know."""
    try:
        return _registry().modes(backend)[0]
    except ValueError:
        return None


def floor_case(device: str, size: str) -> tuple[str, str, str, str] | None:
    """The no-framework floor's case key on a device, or None when no backend is registered as the floor."""
    floors = _registry().floor_backends()
    return (floors[0], default_mode(floors[0]) or "", device, size) if floors else None


@dataclasses.dataclass(frozen=True)
class Timing:
    """Blocks of one operation of one case, one per repeat: times per call of each round."""

    repeat_medians: tuple[float, ...]
    repeat_q1s: tuple[float, ...]
    repeat_q3s: tuple[float, ...]
    min: float
    rounds: int  # over all repeats
    calls_per_round: int  # the largest of the blocks

    @classmethod
    def of(cls, blocks: list[Block]) -> Timing | None:
        blocks = [b for b in sorted(blocks, key=lambda b: b.repeat) if b.seconds]
        if not blocks:
            return None
        quarts = [q for q in (stats.quartiles(b.seconds) for b in blocks) if q is not None]
        return cls(
            tuple(q[1] for q in quarts),
            tuple(q[0] for q in quarts),
            tuple(q[2] for q in quarts),
            min(min(b.seconds) for b in blocks),
            sum(len(b.seconds) for b in blocks),
            max(b.calls_per_round for b in blocks),
        )

    @property
    def median(self) -> float:
        """The median over repeats of each repeat's median: one block timed at a bad moment moves it least."""
        return float(stats.median(self.repeat_medians))

    @property
    def iqr(self) -> float:
        """The median over repeats of each repeat's interquartile range: the noise within a block."""
        return float(stats.median([q3 - q1 for q1, q3 in zip(self.repeat_q1s, self.repeat_q3s)]))

    @property
    def interval(self) -> tuple[float, float]:
        """What the plots draw around the median: the lowest–highest repeat median, or Q1–Q3 of one repeat."""
        if self.repeats > 1:
            return self.low, self.high
        return self.repeat_q1s[0], self.repeat_q3s[0]

    @property
    def low(self) -> float:
        return min(self.repeat_medians)

    @property
    def high(self) -> float:
        return max(self.repeat_medians)

    @property
    def repeats(self) -> int:
        return len(self.repeat_medians)

    @property
    def spread(self) -> float | None:
        """Highest minus lowest repeat median (the machine's drift during the run); None for one repeat."""
        return self.high - self.low if self.repeats > 1 else None


@dataclasses.dataclass
class RunInfo:
    """What the rows of one run share: its records, name, machine and task; `label` names it in merged tables."""

    records: RunRecords
    label: str = ""  # set by merge: the host (and the run's name where hosts repeat)

    @property
    def name(self) -> str:
        return self.records.name

    @property
    def path(self) -> Path:
        return self.records.path

    @property
    def machine(self) -> records.Machine | None:
        """The last machine record: the harness records it again once the frameworks set their threads."""
        machines = self.records.of(records.Machine)
        return machines[-1] if machines else None

    @property
    def start(self) -> records.Start:
        return self.records.start

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.start.options)

    @property
    def task(self) -> dict[str, Any]:
        return dict(self.start.task)

    @property
    def metric(self) -> dict[str, str]:
        """The task's metric {name, label, about}; a run that stored none gets a neutral one."""
        metric = self.task.get("metric")
        metric = metric if isinstance(metric, dict) else {}
        return {
            "name": str(metric.get("name") or "metric"),
            "label": str(metric.get("label") or metric.get("name") or "metric"),
            "about": str(metric.get("about") or ""),
        }


@dataclasses.dataclass
class Row:
    """One case of one run. Times in seconds, memory in bytes; None where not measured."""

    case: Case
    run: RunInfo
    status: str = "ok"  # ok | partly-diverged | diverged | unavailable | failed | over-budget | not reached
    reason: str = ""  # why a case without numbers has none
    notes: list[str] = dataclasses.field(default_factory=list)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    params: int | None = None
    first_step: float | None = None
    step: Timing | None = None
    predict: Timing | None = None
    trainings: list[Training] = dataclasses.field(default_factory=list)
    memory: Memory | None = None
    # comparisons with other rows of the same run
    speedup: float | None = None  # REFERENCE's step median / this row's (same device and size)
    floor_ratio: float | None = None  # this row's step median / the floor's
    gpu_cpu: float | None = None  # this row's step median / the same backend and mode on the cpu
    break_even: float | None = None  # steps until a faster mode repays its slower first step; inf: never
    oracle_p: float | None = None  # Mann–Whitney p of the metric against the oracle's cpu row
    is_oracle: bool = False

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.case.backend, self.case.mode, self.case.device, self.case.size

    @property
    def skipped(self) -> bool:
        """A row without numbers: unavailable, failed, over budget or never reached."""
        return self.status in SKIPPED

    @property
    def machine(self) -> str:
        """In a merged table: the run's label and the CPU model (cpu rows) or GPU model (other rows)."""
        if not self.run.label:
            return ""
        m = self.run.machine
        model = (
            (short_cpu(m.cpu) if self.case.device == "cpu" else short_gpu(m.gpu or self.info.get("gpu"))) if m else ""
        )
        return f"{self.run.label} · {model}" if model else self.run.label

    @property
    def converged(self) -> list[float]:
        """The metric of every seed that did not diverge."""
        return [t.metric for t in self.trainings if t.metric is not None and t.diverged_step is None]

    @property
    def seeds(self) -> int:
        return len(self.trainings)

    @property
    def metric(self) -> tuple[float, float, float] | None:
        """(Q1, median, Q3) of the metric over converged seeds."""
        return stats.quartiles(self.converged)

    @property
    def diverged(self) -> list[Training]:
        return [t for t in self.trainings if t.metric is None or t.diverged_step is not None]

    @property
    def train_seconds(self) -> float | None:
        """Median wall time of a training run over seeds that did not diverge (a diverged run stops early)."""
        return stats.median([t.seconds for t in self.trainings if t not in self.diverged])

    @property
    def final_loss(self) -> float | None:
        """Median over converged seeds of the last step's loss."""
        last = [t.losses[-1] for t in self.trainings if t not in self.diverged and t.losses]
        return stats.median([v for v in last if v is not None])

    @property
    def oracle(self) -> str:
        """'same (p=0.41)', 'differs (p=0.003)', 'oracle', or '—' when the test could not be made."""
        if self.is_oracle:
            return "oracle"
        if self.oracle_p is None:
            return "—"
        verdict = "differs" if self.oracle_p < ALPHA else "same"
        return f"{verdict} (p={_p(self.oracle_p)})"

    @property
    def kernel(self) -> str:
        """The code path: the backend's kernel; its compiler; the GPU model on a GPU row."""
        parts = [self.info.get("kernel"), self.info.get("compile")]
        parts.append(self.info.get("gpu") if self.case.device != "cpu" else None)
        return "; ".join(str(p) for p in parts if p)


def short_cpu(name: str | None) -> str:
    """'Intel(R) Xeon(R) Processor @ 2.10GHz' -> 'Intel Xeon'."""
    text = re.sub(r"\((R|TM|tm)\)|\bCPU\b|\bProcessor\b|@.*$|\d+-Core", " ", str(name or ""))
    return " ".join(text.split())


def short_gpu(name: str | None) -> str:
    """'NVIDIA H200' -> 'H200'."""
    return " ".join(re.sub(r"\b(NVIDIA|Tesla|GeForce)\b", " ", str(name or "")).split())


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


@dataclasses.dataclass
class RunRows:
    """A run's rows and what the report says around them."""

    run: RunInfo
    rows: list[Row]
    overhead: float | None  # median seconds per timed call of a step that does nothing
    held_out: dict[str, HeldOut]  # by size

    @property
    def warnings(self) -> list[str]:
        return run_warnings(self.run)


def run_warnings(run: RunInfo) -> list[str]:
    """Lines a reader must see above the table: an incomplete run, thread pools not as requested."""
    out = []
    recs = run.records
    if recs.torn:
        out.append("the records file ends in a cut-off line: the run was killed while writing it")
    finish = recs.finish
    if finish is None:
        out.append(
            "this run is incomplete: it recorded no end (killed or still running); rows say what was never reached"
        )
    elif not finish.complete:
        note = f" ({finish.note})" if finish.note else ""
        out.append(f"this run is incomplete: it stopped before every measurement was made{note}")
    mismatch: list[str] = []  # from any machine record: a pool may exist only before or after frameworks load
    for machine in recs.of(records.Machine):
        found = machine.threads.get("mismatch")
        found = found if isinstance(found, list) else [found] if found else []
        mismatch += [text for text in map(describe, found) if text not in mismatch]
    if mismatch:
        requested = run.machine.threads.get("requested") if run.machine else None
        out.append(f"thread pools not at the requested {requested} thread(s): {', '.join(mismatch)}")
    return out


def describe(value: Any) -> str:
    """A stored value (list, dict, scalar) as one line of text."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {describe(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(describe(v) for v in value)
    return str(value)


def check(recs: RunRecords) -> None:
    """RecordError for values the types allow but a measurement cannot have: negative times or sizes."""
    for number, record in enumerate(recs.records, start=1):
        label = getattr(getattr(record, "case", None), "label", "")
        where = f"{recs.path}: record {number} ({record.kind}{' ' + label if label else ''})"
        if isinstance(record, (Block, Overhead)):
            bad = next((v for v in record.seconds if v < 0), None)
            if bad is not None:
                raise RecordError(f"{where}: seconds holds a negative time ({bad!r})")
            if record.calls_per_round < 1:
                raise RecordError(f"{where}: calls_per_round must be at least 1, got {record.calls_per_round}")
        elif isinstance(record, (FirstStep, Training)) and record.seconds < 0:
            raise RecordError(f"{where}: seconds must not be negative, got {record.seconds!r}")
        elif isinstance(record, Memory):
            for field in ("peak_rss_bytes", "baseline_rss_bytes", "gpu_peak_bytes"):
                value = getattr(record, field)
                if value is not None and value < 0:
                    raise RecordError(f"{where}: {field} must not be negative, got {value}")
        elif isinstance(record, Loaded) and record.params < 0:
            raise RecordError(f"{where}: params must not be negative, got {record.params}")


def build(recs: RunRecords, label: str = "") -> RunRows:
    """The rows of one run, sorted, with every comparison between its rows filled in."""
    check(recs)
    run = RunInfo(recs, label)
    run.start  # noqa: B018 - a run without a start record is a RecordError here, not deeper down
    by_case: dict[Case, Row] = {case: Row(case, run) for case in recs.cases()}
    blocks: dict[tuple[Case, str], list[Block]] = {}
    skipped: dict[Case, list[Skipped]] = {}
    for record in recs.records:
        row = by_case.get(getattr(record, "case", None))  # type: ignore[arg-type]
        if isinstance(record, Loaded):
            row.info, row.params = dict(record.info), record.params
        elif isinstance(record, FirstStep) and row.first_step is None:
            row.first_step = record.seconds  # a backend loaded again after a failed repeat: the first one counts
        elif isinstance(record, Block):
            blocks.setdefault((record.case, record.op), []).append(record)
        elif isinstance(record, Training):
            row.trainings.append(record)
        elif isinstance(record, Memory):
            row.memory = record
        elif isinstance(record, Skipped):
            skipped.setdefault(record.case, []).append(record)
    for case, row in by_case.items():
        row.step = Timing.of(blocks.get((case, "train_step"), []))
        row.predict = Timing.of(blocks.get((case, "predict"), []))
        _status(row, skipped.get(case, []))
    rows = list(by_case.values()) + _never_reached(run, set(by_case))
    if not recs.complete:
        for row in rows:
            _unreached_parts(row)
    compare_within_run(rows)
    overheads = [stats.median(o.seconds) for o in recs.of(Overhead) if o.seconds]
    held = {h.size: h for h in recs.of(HeldOut)}
    return RunRows(run, sort_rows(rows), stats.median(overheads) if overheads else None, held)


def _status(row: Row, skips: list[Skipped]) -> None:
    measured = row.step or row.predict or row.trainings or row.first_step is not None
    for skip in skips:
        where = f" ({skip.where})" if skip.where else ""
        if measured:
            row.notes.append(f"{skip.status}{where}: {skip.reason}")
        elif not row.reason:  # the first failure says why; the others only where they happened
            row.status, row.reason = skip.status, f"{skip.reason}{where}"
    more = list(dict.fromkeys(s.where or s.reason for s in skips[1:])) if not measured else []
    if more:
        row.notes.append(f"also {skips[0].status}: {'; '.join(more)}")
    if measured:
        diverged = row.diverged
        if diverged:
            row.status = "diverged" if len(diverged) == row.seeds else "partly-diverged"
            steps = ", ".join(f"seed {t.seed} at step {t.diverged_step}" for t in diverged)
            row.notes.append(f"diverged: {steps}")
        _cut_short(row)
    if row.memory is not None and row.memory.error:
        row.notes.append(f"peak memory not measured: {row.memory.error}")


def _cut_short(row: Row) -> None:
    """Note measurements with fewer repeats, rounds or seeds than the run asked for."""
    options = row.run.options
    repeats, rounds, seeds = (options.get(k) for k in ("repeats", "rounds", "seeds"))
    if row.step and isinstance(repeats, int) and isinstance(rounds, int) and row.step.rounds < repeats * rounds:
        row.notes.append(f"step timed over {row.step.rounds} of {repeats * rounds} rounds")
    if row.trainings and isinstance(seeds, int) and row.seeds < seeds:
        row.notes.append(f"accuracy over {row.seeds} of {seeds} seeds")


def _unreached_parts(row: Row) -> None:
    if row.skipped and row.status != "not reached":
        return
    options = row.run.options
    missing = [("step timing", row.step), ("accuracy", row.trainings)]
    if options.get("memory", True) is not False and options.get("no_memory") is not True:
        missing.append(("memory", row.memory))
    parts = [name for name, value in missing if not value]
    if parts and row.status != "not reached":
        row.notes.append(f"never reached before the run stopped: {', '.join(parts)}")


def _never_reached(run: RunInfo, seen: set[Case]) -> list[Row]:
    """Rows for cases an incomplete run planned (its options' backends x modes x devices) but never began."""
    if run.records.complete:
        return []
    options, registry = run.options, _registry()
    names, device = options.get("backends"), options.get("device")
    gpu = run.machine is not None and run.machine.gpu is not None
    devices = options.get("devices") or (  # as benchmarks.options reads --device
        [device] if device in registry.DEVICES else ["cpu", "cuda"] if device == "all" or gpu else ["cpu"]
    )
    if not isinstance(names, list) or not isinstance(devices, list):
        return []
    config = run.start.config
    try:
        size = records.size_of(config["hidden_size"], config["batch_size"], config["seq_len"])
    except (KeyError, TypeError):
        return []
    chosen = options.get("modes") or ["default"]
    out = []
    for name in names:
        try:
            backend, fixed = registry.OLD_NAMES.get(name, (name, None))
            modes = registry.modes(backend)
        except (ValueError, TypeError):
            continue
        wanted = [fixed] if fixed else modes[:1] if chosen == ["default"] else modes if chosen == ["all"] else chosen
        for mode in (m for m in modes if m in wanted):
            for device in devices:
                allowed = registry.mode_devices(backend, mode)
                case = Case(backend, mode, str(device), size)
                if case not in seen and (allowed is None or device in allowed):
                    seen.add(case)
                    out.append(Row(case, run, status="not reached", reason="the run stopped before this case"))
    return out


def compare_within_run(rows: list[Row]) -> None:
    """Speed-up, × floor, GPU/CPU, break-even and the oracle test: each against a row of the same run."""
    by_key = {(id(r.run), *r.key): r for r in rows}

    def find(row: Row, backend: str, mode: str | None, device: str) -> Row | None:
        other = by_key.get((id(row.run), backend, mode, device, row.case.size))
        return other if other is not None and not other.skipped else None

    oracle_mode = default_mode(ORACLE_BACKEND)
    for row in rows:
        row.is_oracle = (row.case.backend, row.case.mode, row.case.device) == (ORACLE_BACKEND, oracle_mode, "cpu")
        oracle = find(row, ORACLE_BACKEND, oracle_mode, "cpu")
        if oracle is not None and not row.is_oracle and min(len(row.converged), len(oracle.converged)) >= MIN_SEEDS:
            row.oracle_p = stats.mann_whitney(row.converged, oracle.converged)[1]
        if row.step is None:
            continue
        step = row.step.median
        reference = find(row, *REFERENCE, row.case.device)
        if reference is not None and reference.step and step > 0:
            row.speedup = reference.step.median / step
        floor = floor_case(row.case.device, row.case.size)
        floor_row = find(row, *floor[:3]) if floor else None
        if floor_row is not None and floor_row.step and floor_row.step.median > 0:
            row.floor_ratio = step / floor_row.step.median
        cpu = find(row, row.case.backend, row.case.mode, "cpu")
        if row.case.device != "cpu" and cpu is not None and cpu.step and cpu.step.median > 0:
            row.gpu_cpu = step / cpu.step.median
        default = default_mode(row.case.backend)
        base = find(row, row.case.backend, default, row.case.device) if default != row.case.mode else None
        if base is not None and base.step and base.first_step is not None and row.first_step is not None:
            gain = base.step.median - step
            row.break_even = max((row.first_step - base.first_step) / gain, 0.0) if gain > 0 else math.inf


def sort_rows(rows: list[Row]) -> list[Row]:
    """Devices in DEVICE_ORDER, sizes as first seen, then by step median (rows without one last)."""
    sizes = list(dict.fromkeys(r.case.size for r in rows))
    names = _registry().names()

    def key(row: Row) -> tuple[Any, ...]:
        device = row.case.device
        rank = DEVICE_ORDER.index(device) if device in DEVICE_ORDER else len(DEVICE_ORDER)
        backend = names.index(row.case.backend) if row.case.backend in names else len(names)
        step = row.step.median if row.step else math.inf
        return rank, device, sizes.index(row.case.size), step, backend, row.case.backend, row.case.mode, row.machine

    return sorted(rows, key=key)
