"""What a run produces: small typed records, one JSON object per line in the run's `records.jsonl`.

The harness appends each record the moment its measurement is taken (flushed and fsynced), so a
run killed at any moment keeps everything it finished. The report reads records only. Every run
writes `SCHEMA` into its `Start` record. `read` is the one loader: a folder written in an older schema
(records.jsonl of schema 2, or pytest-benchmark's JSON plus run.json before records existed) goes
through the upgrade chain of `benchmarks.migrate` (plain JSON objects, step by step), then every record
is built and type-checked here, errors naming the file, line and field.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar

from benchmarks import migrate

# 1: benchmark.json + run.json (before records); 2: records.jsonl; 3: planned cases, worker start-up, outcomes
SCHEMA = 3
FILE = "records.jsonl"


class RecordError(ValueError):
    """A records file (or a value in it) that cannot be read; the message names the line and field."""


@dataclasses.dataclass(frozen=True)
class Case:
    """What is measured: one backend in one mode on one device, at one size (hidden x batch x seq_len)."""

    backend: str
    mode: str
    device: str
    size: str  # "32x1x10"
    model: str = "rnn"  # the cell (backends/models.py); runs before schema 3 are rnn
    node: str = ""  # the cluster node it ran on ("" = the machine that ran the run; --cluster)

    @property
    def label(self) -> str:
        model = "" if self.model == "rnn" else f" {self.model}"
        return f"{self.backend} {self.mode} @{self.device} {self.size}{model}"


def size_of(hidden: int, batch: int, seq_len: int) -> str:
    """The size label of a case."""
    return f"{hidden}x{batch}x{seq_len}"


@dataclasses.dataclass(frozen=True)
class Start:
    """The first record of a run: when, how it was called, its options, its task."""

    kind: ClassVar[str] = "start"
    schema: int
    started: str
    argv: list[str]
    options: dict[str, Any]  # option name -> value, as `benchmarks.options` parsed them
    task: dict[str, Any]  # Task.describe(): name, metric {name, label, about}, labels
    config: dict[str, Any]  # the TaskConfig's fields
    cases: list[Case] = dataclasses.field(default_factory=list)  # every case the plan holds (all sizes), in order


@dataclasses.dataclass(frozen=True)
class Machine:
    """Where the run ran."""

    kind: ClassVar[str] = "machine"
    host: str
    cpu: str
    cores: int | None
    os: str
    python: str
    gpu: str | None
    gpu_driver: str | None
    frameworks: dict[str, str]  # name -> version or "*not-installed*"
    threads: dict[str, Any]  # requested, per framework, native pools, and any mismatch
    commit: str | None = None
    dirty: bool | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # variables that change how frameworks run
    node: str = ""  # the cluster node described ("" = the machine that ran the run)


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A backend was made for a case: how it runs and its parameter count."""

    kind: ClassVar[str] = "loaded"
    case: Case
    info: dict[str, Any]  # backends.base.Info as a dict
    params: int
    startup_seconds: float | None = None  # the worker's start: new interpreter, framework import, backend made


@dataclasses.dataclass(frozen=True)
class FirstStep:
    """The first train_step on a fresh backend (tracing, compiling), kept out of the step statistics."""

    kind: ClassVar[str] = "first_step"
    case: Case
    seconds: float


@dataclasses.dataclass(frozen=True)
class Block:
    """One block of timed rounds of one operation; `seconds` holds each round's time per call."""

    kind: ClassVar[str] = "block"
    case: Case
    op: str  # "train_step" or "predict"
    repeat: int  # blocks are taken in turn across cases: repeat r of every case, then r + 1
    calls_per_round: int  # calls timed together in one round (several for fast rows: less timer overhead)
    seconds: list[float]


@dataclasses.dataclass(frozen=True)
class Overhead:
    """The harness's own cost per timed call: a step that does nothing, timed through the same path."""

    kind: ClassVar[str] = "overhead"
    calls_per_round: int
    seconds: list[float]
    node: str = ""  # the cluster node it ran on ("" = the machine that ran the run)


@dataclasses.dataclass(frozen=True)
class Training:
    """One training run of one seed, then the task's held-out metric."""

    kind: ClassVar[str] = "training"
    case: Case
    seed: int
    losses: list[float | None]  # per step, None where not finite
    metric: float | None  # the task's held-out metric; None when diverged
    diverged_step: int | None  # where the run diverged, None if it did not
    seconds: float  # wall time of the training steps
    predictions: list[float] | None = None  # held-out predictions of stream 0, for the plots
    outcome: str = ""  # "learned", "diverged" or "did-not-learn" (backends.training.outcome_of); "" before schema 3


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """The held-out stream 0 of the task: points and targets, for plots (once per run and size)."""

    kind: ClassVar[str] = "held_out"
    size: str
    t: list[float]
    target: list[float]


@dataclasses.dataclass(frozen=True)
class Memory:
    """Peak memory of one case, from a child process that loaded only that backend."""

    kind: ClassVar[str] = "memory"
    case: Case
    peak_rss_bytes: int | None
    baseline_rss_bytes: int | None
    gpu_peak_bytes: int | None
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A case that was not (fully) measured: its framework is unavailable, or a measurement failed."""

    kind: ClassVar[str] = "skipped"
    case: Case
    status: str  # "unavailable", "failed" or "over-budget"
    reason: str
    where: str = ""  # which measurement, e.g. "train_step block, repeat 2"


@dataclasses.dataclass(frozen=True)
class Finish:
    """The last record of a run that ended (a killed run has none: it is incomplete)."""

    kind: ClassVar[str] = "finish"
    finished: str
    complete: bool  # every planned measurement was attempted
    exit_status: int | None = None
    note: str = ""


RECORD_TYPES: tuple[type, ...] = (Start, Machine, Loaded, FirstStep, Block, Overhead, Training, HeldOut, Memory)
RECORD_TYPES += (Skipped, Finish)
BY_KIND: dict[str, type] = {cls.kind: cls for cls in RECORD_TYPES}
Record = Any  # one of RECORD_TYPES


def to_json(record: Record) -> dict[str, Any]:
    """A record as a JSON object, with its kind."""
    return {"kind": record.kind, **dataclasses.asdict(record)}


def from_json(obj: Any, where: str = "record") -> Record:
    """A record from its JSON object; RecordError naming the field when a value has the wrong type."""
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in BY_KIND:
        raise RecordError(f"{where}: unknown kind {kind!r}; known: {', '.join(BY_KIND)}")
    return _build(BY_KIND[kind], {k: v for k, v in obj.items() if k != "kind"}, f"{where} ({kind})")


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _build(cls: type, obj: dict[str, Any], where: str) -> Any:
    hints, fields = _fields(cls)
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    values = {}
    for name, field in fields.items():
        if name not in obj:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise RecordError(f"{where}: missing field {name!r}")
            continue
        values[name] = _check(obj[name], hints[name], f"{where}.{name}")
    return cls(**values)


def _check(value: Any, hint: Any, where: str) -> Any:
    """`value` if it fits the type hint (a Case is built from its object); RecordError otherwise."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check(value, arg, where)
            except RecordError as err:
                errors.append(str(err))
        raise RecordError(errors[0])
    if hint is Case:
        if not isinstance(value, dict):
            raise RecordError(f"{where}: must be an object with backend, mode, device, size")
        return _build(Case, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where}: must be a list, got {type(value).__name__}")
        numbers = _numbers(value, args[0])  # the long lists (rounds, losses): checked without a name per item
        return numbers if numbers is not None else [_check(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where}: must be an object, got {type(value).__name__}")
        return value
    if hint is Any:
        return value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok:
            raise RecordError(f"{where}: must be a finite number, got {value!r:.40}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where}: must be an integer, got {value!r:.40}")
        return value
    if hint in (str, bool) and not isinstance(value, hint):
        raise RecordError(f"{where}: must be a {hint.__name__}, got {value!r:.40}")
    return value


def _numbers(values: list[Any], hint: Any) -> list[float | None] | None:
    """`values` as floats when `hint` is float (or float | None) and every value fits; None otherwise."""
    nullable = set(typing.get_args(hint)) == {float, type(None)}
    if hint is not float and not nullable:
        return None
    out: list[float | None] = []
    for v in values:
        if v is None and nullable:
            out.append(None)
        elif type(v) in (int, float) and math.isfinite(v):
            out.append(float(v))
        else:
            return None
    return out


class WriteError(OSError):
    """The records file cannot be written any more; the run must stop (what is recorded stays)."""


class Writer:
    """Appends records to a run's records file, each flushed and fsynced before `write` returns."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / FILE
        try:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        except OSError as err:
            raise WriteError(f"cannot write {self.path} ({err.strerror or err})") from None

    def write(self, record: Record) -> None:
        """Append one record; WriteError naming the file when it (or its folder) was made read-only or went
        away: the open handle would still write, but the user has said the run must not (root included)."""
        line = json.dumps(to_json(record), allow_nan=False, separators=(",", ":"))
        try:
            mode = os.stat(self.path).st_mode
            if not mode & 0o200 or not os.stat(self.path.parent).st_mode & 0o200:
                raise PermissionError(13, "made read-only")
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as err:
            raise WriteError(f"cannot write {self.path} ({err.strerror or err}); the run stops here") from None

    def close(self) -> None:
        self._file.close()


@dataclasses.dataclass
class RunRecords:
    """Everything a run folder holds, read back (in the newest schema)."""

    path: Path
    records: list[Record]
    torn: bool = False  # the last line was cut off (the process was killed while writing it)
    migrated_from: int | None = None  # the schema the folder was written in, when it was upgraded
    where: list[str] = dataclasses.field(default_factory=list)  # each record's place: "records.jsonl, line 7"
    duplicates: list[str] = dataclasses.field(default_factory=list)  # records left out as repeats, and where

    def of(self, cls: type) -> list[Any]:
        """The records of one type, in the order they were written."""
        return [r for r in self.records if isinstance(r, cls)]

    @property
    def start(self) -> Start:
        starts = self.of(Start)
        if not starts:
            raise RecordError(f"{self.path}: no start record")
        return starts[0]

    @property
    def machine(self) -> Machine | None:
        """The last machine record: a run writes one at its start and one, with the threads in force, at its end."""
        machines = self.of(Machine)
        return machines[-1] if machines else None

    @property
    def finish(self) -> Finish | None:
        finishes = self.of(Finish)
        return finishes[-1] if finishes else None

    @property
    def complete(self) -> bool:
        """The run ended and attempted every planned measurement."""
        return self.finish is not None and self.finish.complete

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def cases(self) -> list[Case]:
        """Every case the run mentions, in the order first seen."""
        seen: dict[Case, None] = {}
        for r in self.records:
            case = getattr(r, "case", None)
            if isinstance(case, Case):
                seen.setdefault(case)
        return list(seen)


def read(folder: str | os.PathLike[str]) -> RunRecords:
    """Read a run folder in the newest schema: records.jsonl, or an older layout through the upgrade chain;
    RecordError naming the file, the line and the field when something cannot be read."""
    path = Path(folder)
    if not path.is_dir():
        raise RecordError(f"{path}: no such run folder")
    file = path / FILE
    torn = False
    try:
        if file.is_symlink() and not file.exists():
            raise RecordError(f"{file}: a symbolic link that leads to no file (dangling, or a loop)")
        if file.exists():
            objects, where, torn = _lines(file)
            schema = _schema(objects, where, file)
        else:
            objects, schema = migrate.schema_1_to_2(path), 1
            where = [f"{path / migrate.BENCH} (upgraded), record {i}" for i in range(1, len(objects) + 1)]
        if schema > SCHEMA:
            raise RecordError(f"{file}: schema {schema}, written by a newer version; this version reads up to {SCHEMA}")
        objects = migrate.upgrade(objects, max(schema, 2))
    except (migrate.UpgradeError, OSError) as err:
        raise RecordError(" ".join(str(err).split())) from None
    records = [from_json(obj, w) for obj, w in zip(objects, where)]
    run = RunRecords(path, records, torn, schema if schema < SCHEMA else None, where)
    _drop_repeats(run, [json.dumps(obj, sort_keys=True) for obj in objects])
    _outcomes(run)
    return run


def _outcomes(run: RunRecords) -> None:
    """Every training record has an outcome: one of migrate.OUTCOMES (one written without gets it by the rule)."""
    task = run.start.task
    declared = task.get("thresholds") if isinstance(task.get("thresholds"), dict) else {}
    trivial = declared.get("trivial", migrate.TRIVIAL_METRIC.get(str(task.get("name"))))
    trivial = trivial if isinstance(trivial, (int, float)) and not isinstance(trivial, bool) else None
    for i, (record, place) in enumerate(zip(run.records, run.where)):
        if not isinstance(record, Training):
            continue
        if record.outcome == "":
            outcome = migrate.outcome_of(record.metric, record.diverged_step, trivial)
            run.records[i] = dataclasses.replace(record, outcome=outcome)
        elif record.outcome not in migrate.OUTCOMES:
            allowed = ", ".join(migrate.OUTCOMES)
            raise RecordError(f"{place} (training).outcome: {record.outcome!r:.40} is not one of {allowed}")


def _lines(file: Path) -> tuple[list[Any], list[str], bool]:
    """The JSON objects of a records file with each one's place; whether its last line was cut off."""
    try:
        lines = file.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(f"{file}: cannot read it ({str(err).splitlines()[0]})") from None
    objects, where, torn = [], [], False
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            if number - 1 == last:  # killed mid-write: the line in flight is lost, nothing else
                torn = True
                continue
            raise RecordError(f"{file}, line {number}: not JSON") from None
        objects.append(obj)
        where.append(f"{file}, line {number}")
    return objects, where, torn


def _schema(objects: list[Any], where: list[str], file: Path) -> int:
    """The schema its start record names (records files begin at schema 2)."""
    for obj, place in zip(objects, where):
        if isinstance(obj, dict) and obj.get("kind") == "start":
            schema = obj.get("schema")
            if isinstance(schema, bool) or not isinstance(schema, int) or schema < 2:
                raise RecordError(f"{place} (start).schema: must be an integer from 2, got {schema!r:.40}")
            return schema
    raise RecordError(f"{file}: no start record")


def _key(record: Record) -> tuple[Any, ...] | None:
    """What a measurement is of: two records with one key are the same measurement taken twice."""
    if isinstance(record, Block):
        return ("block", record.case, record.op, record.repeat)
    if isinstance(record, Training):
        return ("training", record.case, record.seed)
    if isinstance(record, Start):
        return ("start",)
    return None


def _drop_repeats(run: RunRecords, texts: list[str]) -> None:
    """Keep the first of records repeated whole (the same `texts`) or of one measurement taken twice, and say so
    in `run.duplicates`; a second, different start record is an error (two runs in one file). A run writes its
    machine record at its start and again at its end, and a backend loaded again writes another loaded record:
    those repeat by design."""
    seen: dict[str, str] = {}
    keys: dict[tuple[Any, ...], str] = {}
    kept, places = [], []
    for record, place, text in zip(run.records, run.where, texts):
        if isinstance(record, (Machine, Loaded)):
            kept.append(record)
            places.append(place)
            continue
        key = _key(record)
        if text in seen:
            run.duplicates.append(f"{place} repeats {seen[text]}")
            continue
        if key is not None and key in keys:
            if key == ("start",):
                raise RecordError(f"{place}: a second, different start record (the first: {keys[key]}): two runs?")
            run.duplicates.append(f"{place}: the same {record.kind} as {keys[key]}, with other values")
            continue
        seen[text] = place
        if key is not None:
            keys[key] = place
        kept.append(record)
        places.append(place)
    run.records, run.where = kept, places
