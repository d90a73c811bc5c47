"""Upgrade a schema-1 run folder (pytest-benchmark's benchmark.json plus the harness's optional run.json)
to schema-2 records, in memory; the folder itself is left as it is.

The mapping, one schema-1 item to the records it becomes:

- run.json started/argv/options -> Start (options as stored; a run from before repeats gets repeats 1);
  Start.task is the seed's task (sin -> cos, held-out MSE): schema 1 knew no other; Start.config is the
  TaskConfig of the first train_step entry, else the defaults with the options' sizes.
- machine_info -> Machine; commit_info id/dirty -> Machine.commit/dirty. Machine.threads gets a
  "mismatch" list when a native pool ran with another thread count than the one requested.
- each benchmark's extra_info.backend: an old name (torch-rnn-graph, ...) is backend + mode through
  backends.OLD_NAMES; any other registered name is in its default mode (backends.modes(name)[0]); an
  unregistered name keeps mode "default". The size is hidden x batch x seq_len of the run.
- kind train_step / predict -> one Block per entry (its repeat; entries without one are repeat 0) with
  seconds = stats.data (pytest-benchmark keeps each round's time per call). An entry saved without data
  becomes the five summary statistics [min, q1, median, q3, max]: numpy's linear quantiles of those five
  give back exactly the median, quartiles and extremes; the number of rounds is lost, and the Finish
  note says so.
- train_step extra_info first_step_seconds (not null) -> FirstStep; info + params -> Loaded, with the
  info's old "mode" text replaced by the registry mode and "xla": true becoming compile "XLA".
- kind training_run -> one Training per seed: held_out_mse[i] -> metric (None when diverged), diverged[i]
  -> diverged_step = len(loss_curves[i]) - 1 (schema 1 did not record the step), loss_curves[i] ->
  losses (non-finite -> None), train_seconds[i] -> seconds, held_out.prediction -> predictions of the
  first seed (schema 1 kept seed 0's only). held_out t/target -> HeldOut (once per size).
  peak_rss_bytes / baseline_rss_bytes / gpu_peak_bytes / error -> Memory (none when all are absent).
- kind harness_overhead -> Overhead.
- run.json unavailable / failed ("backend@device": reason) -> Skipped; complete/finished/exitstatus ->
  Finish. Without run.json the run is taken as complete: pytest-benchmark writes its JSON only when its
  session ends; the Finish note says so.

Malformed input raises RecordError naming the file and the field, never a bare exception.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from benchmarks.records import (
    SCHEMA,
    Block,
    Case,
    Finish,
    FirstStep,
    HeldOut,
    Loaded,
    Machine,
    Memory,
    Overhead,
    RecordError,
    RunRecords,
    Skipped,
    Start,
    Training,
    size_of,
)

FROM_SCHEMA = 1
BENCH, META = "benchmark.json", "run.json"
OPS = ("train_step", "predict")
FAILED_WHERE = {"test_train_step": "train_step", "test_predict": "predict", "test_training_run": "training run"}


def upgrade(path: str | Path) -> RunRecords:
    """The records of a schema-1 run folder; RecordError naming file and field when it is malformed."""
    folder = Path(path)
    bench = _read(folder / BENCH, required=True)
    meta = _read(folder / META, required=False)
    if not isinstance(bench, dict):
        raise RecordError(f"{folder / BENCH}: must be a JSON object")
    if not isinstance(meta, dict):
        raise RecordError(f"{folder / META}: must be a JSON object")
    entries = bench.get("benchmarks")
    if not isinstance(entries, list):
        raise RecordError(f"{folder / BENCH}: field 'benchmarks' must be a list (not pytest-benchmark JSON?)")
    return _Upgrade(folder, bench, meta).run(entries)


def _read(file: Path, required: bool) -> Any:
    if not file.exists():
        if required:
            raise RecordError(f"{file.parent}: no records.jsonl or {file.name} here (not a run folder?)")
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RecordError(f"{file}: cannot read it ({str(err).splitlines()[0]})") from None


def case_names(name: str) -> tuple[str, str]:
    """(backend, mode) of a schema-1 backend name."""
    import backends  # imports no framework

    if name in backends.OLD_NAMES:
        return backends.OLD_NAMES[name]
    if name in backends.REGISTRY:
        return name, backends.modes(name)[0]
    return name, "default"


class _Upgrade:
    """One folder's upgrade: knows the file names for error messages and the run's size."""

    def __init__(self, folder: Path, bench: dict[str, Any], meta: dict[str, Any]) -> None:
        self.folder, self.bench, self.meta = folder, bench, meta
        self.notes: list[str] = []
        self.loaded_cases: set[Case] = set()  # one Loaded per case: schema 1 repeated the info on every entry

    # ---- typed reads: each names the file and field it reads ----

    def _where(self, file: str, field: str) -> str:
        return f"{self.folder / file}: {field}"

    def number(self, value: Any, where: str, none: bool = False, negative: bool = False) -> float | None:
        if value is None and none:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok:
            raise RecordError(f"{where}: must be a finite number, got {value!r:.40}")
        if value < 0 and not negative:
            raise RecordError(f"{where}: must not be negative, got {value!r:.40}")
        return float(value)

    def integer(self, value: Any, where: str, none: bool = False) -> int | None:
        if value is None and none:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where}: must be an integer, got {value!r:.40}")
        return value

    def listing(self, value: Any, where: str, none: bool = True) -> list[Any]:
        if value is None and none:
            return []
        if not isinstance(value, list):
            raise RecordError(f"{where}: must be a list, got {type(value).__name__}")
        return value

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise RecordError(f"{where}: must be an object, got {type(value).__name__}")
        return value

    # ---- the run ----

    def run(self, entries: list[Any]) -> RunRecords:
        options = self.options()
        config = self.config(entries, options)
        self.size = size_of(config["hidden_size"], config["batch_size"], config["seq_len"])
        body: list[Any] = []
        sizes_held: set[str] = set()
        for i, entry in enumerate(entries):
            body += self.entry(i, entry, sizes_held)
        body += self.skipped()
        records: list[Any] = [self.start(options, config)]
        machine = self.machine()
        if machine is not None:
            records.append(machine)
        records += body
        finish = self.finish()
        if finish is not None:
            records.append(finish)
        return RunRecords(self.folder, records, torn=False, migrated_from=FROM_SCHEMA)

    def options(self) -> dict[str, Any]:
        options = dict(self.mapping(self.meta.get("options"), self._where(META, "options")))
        if options:
            options.setdefault("repeats", 1)  # runs from before repeats timed one block per backend
        return options

    def config(self, entries: list[Any], options: dict[str, Any]) -> dict[str, Any]:
        from backends.task import TaskConfig

        for entry in entries:
            extra = entry.get("extra_info") if isinstance(entry, dict) else None
            if isinstance(extra, dict) and isinstance(extra.get("config"), dict):
                config = extra["config"]
                break
        else:
            fields = {f.name for f in dataclasses.fields(TaskConfig)}
            config = {k: v for k, v in options.items() if k in fields and k != "seed"}
        try:
            return dataclasses.asdict(TaskConfig(**config))
        except (TypeError, ValueError) as err:
            raise RecordError(f"{self.folder / BENCH}: task config: {err}") from None

    def start(self, options: dict[str, Any], config: dict[str, Any]) -> Start:
        from backends.task import SIN_TO_COS

        started = self.meta.get("started") or self.bench.get("datetime") or ""
        argv = self.listing(self.meta.get("argv"), self._where(META, "argv"))
        return Start(SCHEMA, str(started), [str(a) for a in argv], options, SIN_TO_COS.describe(), config)

    def machine(self) -> Machine | None:
        where = self._where(BENCH, "machine_info")
        info = self.mapping(self.bench.get("machine_info"), where)
        if not info:
            return None
        cpu = info.get("cpu_model") or (info.get("cpu") or {}).get("brand_raw") or info.get("processor") or "?"
        python = " ".join(str(p) for p in (info.get("python_version"), info.get("python_implementation")) if p)
        os_name = info.get("os") or " ".join(str(p) for p in (info.get("system"), info.get("release")) if p)
        frameworks = self.mapping(info.get("frameworks"), f"{where}.frameworks")
        threads = dict(self.mapping(info.get("threads"), f"{where}.threads"))
        mismatch = _pool_mismatch(threads)
        if mismatch and "mismatch" not in threads:
            threads["mismatch"] = mismatch
        commit = self.mapping(self.bench.get("commit_info"), self._where(BENCH, "commit_info"))
        cores = info.get("cores")
        return Machine(
            host=str(info.get("node") or "?"),
            cpu=str(cpu),
            cores=self.integer(cores, f"{where}.cores", none=True),
            os=str(os_name or "?"),
            python=python or "?",
            gpu=str(info["gpu"]) if info.get("gpu") else None,
            gpu_driver=str(info["gpu_driver"]) if info.get("gpu_driver") else None,
            frameworks={str(k): str(v) for k, v in frameworks.items()},
            threads=threads,
            commit=str(commit["id"]) if commit.get("id") else None,
            dirty=bool(commit["dirty"]) if "dirty" in commit else None,
        )

    def case(self, name: Any, device: Any, where: str) -> Case:
        if not isinstance(name, str) or not name:
            raise RecordError(f"{where}.backend: must be a backend name, got {name!r:.40}")
        if not isinstance(device, str) or not device:
            raise RecordError(f"{where}.device: must be a device name, got {device!r:.40}")
        backend, mode = case_names(name)
        return Case(backend, mode, device, self.size)

    def entry(self, i: int, entry: Any, sizes_held: set[str]) -> list[Any]:
        where = self._where(BENCH, f"benchmarks[{i}]")
        if not isinstance(entry, dict):
            raise RecordError(f"{where}: must be an object")
        if isinstance(entry.get("name"), str):
            where += f" ({entry['name']})"
        extra = self.mapping(entry.get("extra_info"), f"{where}.extra_info")
        kind = extra.get("kind")
        if kind not in (*OPS, "training_run", "harness_overhead"):
            return []  # pytest-benchmark entries the harness did not make carry nothing to upgrade
        stats = self.mapping(entry.get("stats"), f"{where}.stats")
        if kind == "harness_overhead":
            calls = self.integer(stats.get("iterations", 1), f"{where}.stats.iterations")
            return [Overhead(calls, self.seconds(stats, where))]
        case = self.case(extra.get("backend"), extra.get("device", "cpu"), f"{where}.extra_info")
        if kind in OPS:
            return self.block(kind, case, extra, stats, where)
        return self.training(case, extra, where, sizes_held)

    def seconds(self, stats: dict[str, Any], where: str) -> list[float]:
        data = stats.get("data")
        if data is not None:
            values = self.listing(data, f"{where}.stats.data", none=False)
            return [self.number(v, f"{where}.stats.data[{j}]") for j, v in enumerate(values)]
        names = ("min", "q1", "median", "q3", "max")
        if not all(n in stats for n in names):
            raise RecordError(f"{where}.stats: neither 'data' nor the summary statistics {', '.join(names)}")
        self.notes.append(f"{where}: summary statistics only")
        return [self.number(stats[n], f"{where}.stats.{n}") for n in names]

    def block(self, op: str, case: Case, extra: dict[str, Any], stats: dict[str, Any], where: str) -> list[Any]:
        out: list[Any] = []
        ex = f"{where}.extra_info"
        repeat = self.integer(extra.get("repeat", 0), f"{ex}.repeat", none=True) or 0
        calls = self.integer(stats.get("iterations", 1), f"{where}.stats.iterations")
        if op == "train_step":
            first = self.number(extra.get("first_step_seconds"), f"{ex}.first_step_seconds", none=True)
            loaded = self.loaded(case, extra, ex)
            out += [loaded] if loaded is not None else []
            out += [FirstStep(case, first)] if first is not None else []
        out.append(Block(case, op, repeat, calls, self.seconds(stats, where)))
        return out

    def loaded(self, case: Case, extra: dict[str, Any], where: str) -> Loaded | None:
        if extra.get("params") is None or case in self.loaded_cases:
            return None
        self.loaded_cases.add(case)
        params = self.integer(extra.get("params"), f"{where}.params")
        info = dict(self.mapping(extra.get("info"), f"{where}.info"))
        if info.pop("xla", False):
            info.setdefault("compile", "XLA")
        info["mode"] = case.mode  # the registry mode; schema 1's text ("jax.jit", "tf.function") said the same
        return Loaded(case, info, params)

    def training(self, case: Case, extra: dict[str, Any], where: str, sizes_held: set[str]) -> list[Any]:
        ex = f"{where}.extra_info"
        metrics = self.listing(extra.get("held_out_mse"), f"{ex}.held_out_mse")
        seeds = self.listing(extra.get("seeds"), f"{ex}.seeds") or list(range(len(metrics)))
        flags = self.listing(extra.get("diverged"), f"{ex}.diverged")
        curves = self.listing(extra.get("loss_curves"), f"{ex}.loss_curves")
        seconds = self.listing(extra.get("train_seconds"), f"{ex}.train_seconds")
        held = self.mapping(extra.get("held_out"), f"{ex}.held_out")
        out: list[Any] = []
        if extra.get("params") is not None and extra.get("info") is not None:
            loaded = self.loaded(case, extra, ex)
            out += [loaded] if loaded is not None else []
        prediction = None
        if held:
            t = self.listing(held.get("t"), f"{ex}.held_out.t", none=False)
            target = self.listing(held.get("target"), f"{ex}.held_out.target", none=False)
            if case.size not in sizes_held:
                sizes_held.add(case.size)
                t = [self.number(v, f"{ex}.held_out.t[{j}]", negative=True) for j, v in enumerate(t)]
                target = [self.number(v, f"{ex}.held_out.target[{j}]", negative=True) for j, v in enumerate(target)]
                out.append(HeldOut(case.size, t, target))
            if held.get("prediction") is not None:
                raw = self.listing(held["prediction"], f"{ex}.held_out.prediction")
                prediction = [_finite(v, f"{ex}.held_out.prediction[{j}]") for j, v in enumerate(raw)]
                prediction = None if None in prediction else prediction  # a non-finite prediction: diverged
        for i, seed in enumerate(seeds):
            seed = self.integer(seed, f"{ex}.seeds[{i}]")
            raw_curve = self.listing(curves[i] if i < len(curves) else None, f"{ex}.loss_curves[{i}]")
            losses = [_finite(v, f"{ex}.loss_curves[{i}][{j}]") for j, v in enumerate(raw_curve)]
            metric = self.number(metrics[i], f"{ex}.held_out_mse[{i}]", none=True) if i < len(metrics) else None
            flag = flags[i] if i < len(flags) else False
            if not isinstance(flag, bool):
                raise RecordError(f"{ex}.diverged[{i}]: must be true or false, got {flag!r:.40}")
            diverged = flag or metric is None  # no finite MSE is a diverged seed, as schema 1 counted it
            time = self.number(seconds[i], f"{ex}.train_seconds[{i}]", none=True) if i < len(seconds) else None
            out.append(
                Training(
                    case,
                    seed,
                    losses,
                    None if diverged else metric,
                    max(len(losses) - 1, 0) if diverged else None,
                    0.0 if time is None else time,
                    prediction if i == 0 else None,
                )
            )
        memory = self.memory(case, extra, ex)
        return out + ([memory] if memory is not None else [])

    def memory(self, case: Case, extra: dict[str, Any], where: str) -> Memory | None:
        names = ("peak_rss_bytes", "baseline_rss_bytes", "gpu_peak_bytes")
        values = {n: self.integer(extra.get(n), f"{where}.{n}", none=True) for n in names}
        for name, value in values.items():
            if value is not None and value < 0:
                raise RecordError(f"{where}.{name}: must not be negative, got {value}")
        error = extra.get("error")
        if all(v is None for v in values.values()) and not error:
            return None
        return Memory(case, values["peak_rss_bytes"], values["baseline_rss_bytes"], values["gpu_peak_bytes"],
                      str(error) if error else None)  # fmt: skip

    def skipped(self) -> list[Skipped]:
        out = []
        for status in ("unavailable", "failed"):
            where = self._where(META, status)
            for key, reason in self.mapping(self.meta.get(status), where).items():
                name, _, device = str(key).rpartition("@") if "@" in str(key) else (str(key), "", "cpu")
                text, place = str(reason), ""
                test, sep, rest = text.partition(": ")
                if sep and test in FAILED_WHERE:
                    place, text = FAILED_WHERE[test], rest
                out.append(Skipped(self.case(name, device, f"{where}[{key!r}]"), status, text, place))
        return out

    def finish(self) -> Finish | None:
        notes = []
        if self.notes:
            notes.append(f"step timings of {len(self.notes)} block(s) from summary statistics only")
        if not self.meta:
            notes.append("no run.json: taken as complete (pytest-benchmark writes its JSON at the end of a session)")
            return Finish(str(self.bench.get("datetime") or ""), True, None, "; ".join(notes))
        complete = self.meta.get("complete", True)
        if not isinstance(complete, bool):
            raise RecordError(f"{self._where(META, 'complete')}: must be true or false, got {complete!r:.40}")
        status = self.integer(self.meta.get("exitstatus"), self._where(META, "exitstatus"), none=True)
        finished = self.meta.get("finished")
        if finished is None and complete is False and status is None:
            return None  # killed before run.json was finished: no end was recorded
        return Finish(str(finished or ""), complete, status, "; ".join(notes))


def _finite(value: Any, where: str) -> float | None:
    """A loss or prediction: a number, None where it was not finite; RecordError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{where}: must be a number or null, got {value!r:.40}")
    return float(value) if math.isfinite(value) else None


def _pool_mismatch(threads: dict[str, Any]) -> list[str]:
    """Native pools whose thread count differs from the requested one, as 'openblas (blas): 16 threads'."""
    requested = threads.get("requested")
    if not isinstance(requested, int):
        return []
    out = []
    for pool in threads.get("native_pools") or []:
        if isinstance(pool, dict) and isinstance(pool.get("num_threads"), int) and pool["num_threads"] != requested:
            out.append(f"{pool.get('internal_api')} ({pool.get('user_api')}): {pool['num_threads']} threads")
    return out
