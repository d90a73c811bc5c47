"""The upgrade chain for run folders written in older schemas, on plain JSON objects (no record types: the
reader, `benchmarks.records.read`, builds and checks the records after the last step, so this module
imports nothing of the project and the reader imports nothing above itself).

    schema 1 (benchmark.json + run.json)  --schema_1_to_2-->  schema 2 records  --schema_2_to_3-->  schema 3

`upgrade(objects, schema)` applies the steps from `schema` on; a step keeps every record in place (one
object in, one out, same order), so an error found later still names the record's line. Names from before
modes existed (torch-rnn-graph, ...) are known here only.

Schema 1 -> 2, one schema-1 item to the records it becomes:

- run.json started/argv/options -> start (options as stored; a run from before repeats gets repeats 1);
  start.task is the seed's task as schema 1 knew it (sin -> cos, held-out MSE); start.config is the
  TaskConfig of the first train_step entry, else the defaults of then with the options' sizes.
- machine_info -> machine; commit_info id/dirty -> machine.commit/dirty; machine.threads gets a "mismatch"
  list when a native pool ran with another thread count than the one requested.
- each benchmark's extra_info.backend -> backend + mode through SCHEMA_1_NAMES (an unknown name keeps mode
  "default"); the size is hidden x batch x seq_len of the run.
- kind train_step / predict -> one block per entry (its repeat; none: repeat 0) with seconds = stats.data
  (each round's time per call). An entry saved without data becomes the five summary statistics [min, q1,
  median, q3, max]: numpy's linear quantiles of those five give back exactly the median, quartiles and
  extremes; the number of rounds is lost, and the finish note says so.
- train_step extra_info first_step_seconds (not null) -> first_step; info + params -> loaded (once per
  case), the info's old "mode" text replaced by the mode and "xla": true becoming compile "XLA".
- kind training_run -> one training per seed: held_out_mse[i] -> metric (null when diverged), diverged[i]
  -> diverged_step = len(loss_curves[i]) - 1 (schema 1 did not record the step), loss_curves[i] -> losses
  (non-finite -> null), train_seconds[i] -> seconds, held_out.prediction -> predictions of the first seed
  (schema 1 kept seed 0's only); held_out t/target -> held_out (once per size); peak_rss_bytes /
  baseline_rss_bytes / gpu_peak_bytes / error -> memory (none when all are absent).
- kind harness_overhead -> overhead.
- run.json unavailable / failed ("backend@device": reason) -> skipped; complete/finished/exitstatus ->
  finish. Without run.json the run is taken as complete (pytest-benchmark writes its JSON only when its
  session ends); the finish note says so.

Schema 2 -> 3: start.cases lists the cases the records mention, in the order first seen (schema 2 did not
record the plan); each training gets its outcome (`outcome_of`); loaded gets startup_seconds null.

Malformed input raises UpgradeError naming the file and the field, never a bare exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

BENCH, META = "benchmark.json", "run.json"
OPS = ("train_step", "predict")  # schema 1's kinds of timed entries
FAILED_WHERE = {"test_train_step": "train_step", "test_predict": "predict", "test_training_run": "training run"}

# Every backend name schema-1 runs used, as backend + mode (schema 1 had no modes: a plain name is its default).
SCHEMA_1_NAMES: dict[str, tuple[str, str]] = {
    "numpy": ("numpy", "eager"),
    "torch-rnn": ("torch-rnn", "eager"),
    "torch-cell": ("torch-cell", "eager"),
    "jax-scan": ("jax-scan", "jit"),
    "keras-simplernn": ("keras-simplernn", "function"),
    "tflearn": ("tflearn", "session"),
    "torch-rnn-graph": ("torch-rnn", "cuda-graph"),
    "torch-cell-graph": ("torch-cell", "cuda-graph"),
    "keras-simplernn-xla": ("keras-simplernn", "xla"),
}
# The only task schema 1 knew, as its runs would have described it.
SCHEMA_1_TASK: Obj = {
    "name": "sin-to-cos",
    "metric": {
        "name": "held_out_mse",
        "label": "held-out MSE",
        "about": "MSE of the predictions on the held-out windows",
    },
    "input_label": "sin(t)",
    "target_label": "cos(t)",
    "axis_label": "t",
}
SCHEMA_1_CONFIG: Obj = {"seq_len": 10, "input_size": 1, "hidden_size": 32, "batch_size": 1, "lr": 0.02,
                        "adam_eps": 1e-08, "train_steps": 300, "seed": 0, "eval_windows": 10}  # fmt: skip

# The metric a task's trivial predictor scores (lower is better): a seed no better than that learned nothing.
# For sin -> cos, predicting 0 everywhere scores the mean of cos², 0.5. Schema 3 runs record outcomes themselves.
TRIVIAL_METRIC: dict[str, float] = {"sin-to-cos": 0.5}
OUTCOMES = ("learned", "diverged", "did-not-learn")


class UpgradeError(ValueError):
    """An old run folder that cannot be upgraded; the message names the file and field."""


# ---- the chain ----


def case_names(name: str) -> tuple[str, str]:
    """(backend, mode) of a schema-1 backend name."""
    return SCHEMA_1_NAMES.get(name, (name, "default"))


def outcome_of(metric: Any, diverged_step: Any, trivial: float | None) -> str:
    """A seed's outcome: diverged (no finite metric, or a step where it diverged), did-not-learn (its metric
    is no better than the task's trivial predictor's), else learned. With no trivial figure known, a seed
    that did not diverge counts as learned (what schema 2 called converged)."""
    finite = isinstance(metric, (int, float)) and not isinstance(metric, bool) and math.isfinite(metric)
    if diverged_step is not None or not finite:
        return "diverged"
    if trivial is not None and metric >= trivial:
        return "did-not-learn"
    return "learned"


def schema_2_to_3(objects: list[Obj]) -> list[Obj]:
    """Start.cases from the cases the records mention; each training's outcome; loaded.startup_seconds null."""
    cases: list[Obj] = []
    for obj in objects:
        case = obj.get("case") if isinstance(obj, dict) else None
        if _is_case(case) and case not in cases:
            cases.append(dict(case))
    start = next((o for o in objects if isinstance(o, dict) and o.get("kind") == "start"), None)
    task = start.get("task") if start is not None else None
    name = task.get("name") if isinstance(task, dict) else None
    trivial = TRIVIAL_METRIC.get(name) if isinstance(name, str) else None
    out: list[Obj] = []
    for obj in objects:
        if not isinstance(obj, dict):
            out.append(obj)  # the reader says what is wrong with it, and where
            continue
        kind = obj.get("kind")
        if kind == "start":
            obj = {**obj, "schema": 3, "cases": cases}
        elif kind == "training":
            obj = {**obj, "outcome": outcome_of(obj.get("metric"), obj.get("diverged_step"), trivial)}
        elif kind == "loaded":
            obj = {**obj, "startup_seconds": None}
        out.append(obj)
    return out


def _is_case(value: Any) -> bool:
    keys = ("backend", "mode", "device", "size")
    return isinstance(value, dict) and set(value) == set(keys) and all(isinstance(value[k], str) for k in keys)


STEPS: dict[int, Callable[[list[Obj]], list[Obj]]] = {2: schema_2_to_3}  # schema -> the step to the next
NEWEST = max(STEPS) + 1


def upgrade(objects: list[Obj], schema: int) -> list[Obj]:
    """Records of `schema` (2 or later) as records of the newest schema, step by step."""
    for step in range(schema, NEWEST):
        objects = STEPS[step](objects)
    return objects


# ---- schema 1 -> 2: a folder's benchmark.json and run.json -> records ----


def schema_1_to_2(path: str | Path) -> list[Obj]:
    """The schema-2 records of a schema-1 run folder; UpgradeError naming file and field when it is malformed."""
    folder = Path(path)
    bench = _read(folder / BENCH, required=True)
    meta = _read(folder / META, required=False)
    if not isinstance(bench, dict):
        raise UpgradeError(f"{folder / BENCH}: must be a JSON object")
    if not isinstance(meta, dict):
        raise UpgradeError(f"{folder / META}: must be a JSON object")
    entries = bench.get("benchmarks")
    if not isinstance(entries, list):
        raise UpgradeError(f"{folder / BENCH}: field 'benchmarks' must be a list (not pytest-benchmark JSON?)")
    return _Schema1(folder, bench, meta).run(entries)


def _read(file: Path, required: bool) -> Any:
    if not file.exists():
        if required:
            raise UpgradeError(f"{file.parent}: no records.jsonl or {file.name} here (not a run folder?)")
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UpgradeError(f"{file}: cannot read it ({str(err).splitlines()[0]})") from None


def _case(backend: str, mode: str, device: str, size: str) -> Obj:
    return {"backend": backend, "mode": mode, "device": device, "size": size}


class _Schema1:
    """One folder's upgrade: knows the file names for error messages and the run's size."""

    def __init__(self, folder: Path, bench: Obj, meta: Obj) -> None:
        self.folder, self.bench, self.meta = folder, bench, meta
        self.notes: list[str] = []
        self.loaded_cases: list[Obj] = []  # one loaded per case: schema 1 repeated the info on every entry

    # ---- typed reads: each names the file and field it reads ----

    def _where(self, file: str, field: str) -> str:
        return f"{self.folder / file}: {field}"

    def number(self, value: Any, where: str, none: bool = False, negative: bool = False) -> float | None:
        if value is None and none:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok:
            raise UpgradeError(f"{where}: must be a finite number, got {value!r:.40}")
        if value < 0 and not negative:
            raise UpgradeError(f"{where}: must not be negative, got {value!r:.40}")
        return float(value)

    def integer(self, value: Any, where: str, none: bool = False) -> int | None:
        if value is None and none:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise UpgradeError(f"{where}: must be an integer, got {value!r:.40}")
        return value

    def listing(self, value: Any, where: str, none: bool = True) -> list[Any]:
        if value is None and none:
            return []
        if not isinstance(value, list):
            raise UpgradeError(f"{where}: must be a list, got {type(value).__name__}")
        return value

    def mapping(self, value: Any, where: str) -> Obj:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise UpgradeError(f"{where}: must be an object, got {type(value).__name__}")
        return value

    # ---- the run ----

    def run(self, entries: list[Any]) -> list[Obj]:
        options = self.options()
        config = self.config(entries, options)
        self.size = f"{config['hidden_size']}x{config['batch_size']}x{config['seq_len']}"
        body: list[Obj] = []
        sizes_held: set[str] = set()
        for i, entry in enumerate(entries):
            body += self.entry(i, entry, sizes_held)
        body += self.skipped()
        records: list[Obj] = [self.start(options, config)]
        machine = self.machine()
        records += [machine] if machine is not None else []
        records += body
        finish = self.finish()
        return records + ([finish] if finish is not None else [])

    def options(self) -> Obj:
        options = dict(self.mapping(self.meta.get("options"), self._where(META, "options")))
        if options:
            options.setdefault("repeats", 1)  # runs from before repeats timed one block per backend
        return options

    def config(self, entries: list[Any], options: Obj) -> Obj:
        for entry in entries:
            extra = entry.get("extra_info") if isinstance(entry, dict) else None
            if isinstance(extra, dict) and isinstance(extra.get("config"), dict):
                given, where = extra["config"], "extra_info.config"
                break
        else:
            given, where = {k: v for k, v in options.items() if k in SCHEMA_1_CONFIG and k != "seed"}, "options"
        config = {**SCHEMA_1_CONFIG, **given}
        for name in ("seq_len", "input_size", "hidden_size", "batch_size", "train_steps", "seed", "eval_windows"):
            value = self.integer(config[name], f"{self.folder / BENCH}: task config ({where}).{name}")
            if name != "seed" and value < 1:
                raise UpgradeError(f"{self.folder / BENCH}: task config ({where}).{name}: must be at least 1")
        for name in ("lr", "adam_eps"):
            self.number(config[name], f"{self.folder / BENCH}: task config ({where}).{name}")
        return config

    def start(self, options: Obj, config: Obj) -> Obj:
        started = self.meta.get("started") or self.bench.get("datetime") or ""
        argv = self.listing(self.meta.get("argv"), self._where(META, "argv"))
        return {"kind": "start", "schema": 2, "started": str(started), "argv": [str(a) for a in argv],
                "options": options, "task": dict(SCHEMA_1_TASK), "config": config}  # fmt: skip

    def machine(self) -> Obj | None:
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
        return {
            "kind": "machine",
            "host": str(info.get("node") or "?"),
            "cpu": str(cpu),
            "cores": self.integer(info.get("cores"), f"{where}.cores", none=True),
            "os": str(os_name or "?"),
            "python": python or "?",
            "gpu": str(info["gpu"]) if info.get("gpu") else None,
            "gpu_driver": str(info["gpu_driver"]) if info.get("gpu_driver") else None,
            "frameworks": {str(k): str(v) for k, v in frameworks.items()},
            "threads": threads,
            "commit": str(commit["id"]) if commit.get("id") else None,
            "dirty": bool(commit["dirty"]) if "dirty" in commit else None,
        }

    def case(self, name: Any, device: Any, where: str) -> Obj:
        if not isinstance(name, str) or not name:
            raise UpgradeError(f"{where}.backend: must be a backend name, got {name!r:.40}")
        if not isinstance(device, str) or not device:
            raise UpgradeError(f"{where}.device: must be a device name, got {device!r:.40}")
        backend, mode = case_names(name)
        return _case(backend, mode, device, self.size)

    def entry(self, i: int, entry: Any, sizes_held: set[str]) -> list[Obj]:
        where = self._where(BENCH, f"benchmarks[{i}]")
        if not isinstance(entry, dict):
            raise UpgradeError(f"{where}: must be an object")
        if isinstance(entry.get("name"), str):
            where += f" ({entry['name']})"
        extra = self.mapping(entry.get("extra_info"), f"{where}.extra_info")
        kind = extra.get("kind")
        if kind not in (*OPS, "training_run", "harness_overhead"):
            return []  # pytest-benchmark entries the harness did not make carry nothing to upgrade
        stats = self.mapping(entry.get("stats"), f"{where}.stats")
        if kind == "harness_overhead":
            calls = self.integer(stats.get("iterations", 1), f"{where}.stats.iterations")
            return [{"kind": "overhead", "calls_per_round": calls, "seconds": self.seconds(stats, where)}]
        case = self.case(extra.get("backend"), extra.get("device", "cpu"), f"{where}.extra_info")
        if kind in OPS:
            return self.block(kind, case, extra, stats, where)
        return self.training(case, extra, where, sizes_held)

    def seconds(self, stats: Obj, where: str) -> list[float]:
        data = stats.get("data")
        if data is not None:
            values = self.listing(data, f"{where}.stats.data", none=False)
            return [self.number(v, f"{where}.stats.data[{j}]") for j, v in enumerate(values)]  # type: ignore[misc]
        names = ("min", "q1", "median", "q3", "max")
        if not all(n in stats for n in names):
            raise UpgradeError(f"{where}.stats: neither 'data' nor the summary statistics {', '.join(names)}")
        self.notes.append(f"{where}: summary statistics only")
        return [self.number(stats[n], f"{where}.stats.{n}") for n in names]  # type: ignore[misc]

    def block(self, op: str, case: Obj, extra: Obj, stats: Obj, where: str) -> list[Obj]:
        out: list[Obj] = []
        ex = f"{where}.extra_info"
        repeat = self.integer(extra.get("repeat", 0), f"{ex}.repeat", none=True) or 0
        calls = self.integer(stats.get("iterations", 1), f"{where}.stats.iterations")
        if op == "train_step":
            first = self.number(extra.get("first_step_seconds"), f"{ex}.first_step_seconds", none=True)
            loaded = self.loaded(case, extra, ex)
            out += [loaded] if loaded is not None else []
            out += [{"kind": "first_step", "case": case, "seconds": first}] if first is not None else []
        seconds = self.seconds(stats, where)
        return out + [{"kind": "block", "case": case, "op": op, "repeat": repeat, "calls_per_round": calls,
                       "seconds": seconds}]  # fmt: skip

    def loaded(self, case: Obj, extra: Obj, where: str) -> Obj | None:
        if extra.get("params") is None or case in self.loaded_cases:
            return None
        self.loaded_cases.append(case)
        params = self.integer(extra.get("params"), f"{where}.params")
        info = dict(self.mapping(extra.get("info"), f"{where}.info"))
        if info.pop("xla", False):
            info.setdefault("compile", "XLA")
        info["mode"] = case["mode"]  # the mode; schema 1's text ("jax.jit", "tf.function") said the same
        return {"kind": "loaded", "case": case, "info": info, "params": params}

    def training(self, case: Obj, extra: Obj, where: str, sizes_held: set[str]) -> list[Obj]:
        ex = f"{where}.extra_info"
        metrics = self.listing(extra.get("held_out_mse"), f"{ex}.held_out_mse")
        seeds = self.listing(extra.get("seeds"), f"{ex}.seeds") or list(range(len(metrics)))
        flags = self.listing(extra.get("diverged"), f"{ex}.diverged")
        curves = self.listing(extra.get("loss_curves"), f"{ex}.loss_curves")
        seconds = self.listing(extra.get("train_seconds"), f"{ex}.train_seconds")
        held = self.mapping(extra.get("held_out"), f"{ex}.held_out")
        out: list[Obj] = []
        if extra.get("params") is not None and extra.get("info") is not None:
            loaded = self.loaded(case, extra, ex)
            out += [loaded] if loaded is not None else []
        prediction = None
        if held:
            t = self.listing(held.get("t"), f"{ex}.held_out.t", none=False)
            target = self.listing(held.get("target"), f"{ex}.held_out.target", none=False)
            if case["size"] not in sizes_held:
                sizes_held.add(case["size"])
                t = [self.number(v, f"{ex}.held_out.t[{j}]", negative=True) for j, v in enumerate(t)]
                target = [self.number(v, f"{ex}.held_out.target[{j}]", negative=True) for j, v in enumerate(target)]
                out.append({"kind": "held_out", "size": case["size"], "t": t, "target": target})
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
                raise UpgradeError(f"{ex}.diverged[{i}]: must be true or false, got {flag!r:.40}")
            diverged = flag or metric is None  # no finite MSE is a diverged seed, as schema 1 counted it
            time = self.number(seconds[i], f"{ex}.train_seconds[{i}]", none=True) if i < len(seconds) else None
            out.append({
                "kind": "training", "case": case, "seed": seed, "losses": losses,
                "metric": None if diverged else metric,
                "diverged_step": max(len(losses) - 1, 0) if diverged else None,
                "seconds": 0.0 if time is None else time,
                "predictions": prediction if i == 0 else None,
            })  # fmt: skip
        memory = self.memory(case, extra, ex)
        return out + ([memory] if memory is not None else [])

    def memory(self, case: Obj, extra: Obj, where: str) -> Obj | None:
        names = ("peak_rss_bytes", "baseline_rss_bytes", "gpu_peak_bytes")
        values = {n: self.integer(extra.get(n), f"{where}.{n}", none=True) for n in names}
        for name, value in values.items():
            if value is not None and value < 0:
                raise UpgradeError(f"{where}.{name}: must not be negative, got {value}")
        error = extra.get("error")
        if all(v is None for v in values.values()) and not error:
            return None
        return {"kind": "memory", "case": case, **values, "error": str(error) if error else None}

    def skipped(self) -> list[Obj]:
        out = []
        for status in ("unavailable", "failed"):
            where = self._where(META, status)
            for key, reason in self.mapping(self.meta.get(status), where).items():
                name, _, device = str(key).rpartition("@") if "@" in str(key) else (str(key), "", "cpu")
                text, place = str(reason), ""
                test, sep, rest = text.partition(": ")
                if sep and test in FAILED_WHERE:
                    place, text = FAILED_WHERE[test], rest
                case = self.case(name, device, f"{where}[{key!r}]")
                out.append({"kind": "skipped", "case": case, "status": status, "reason": text, "where": place})
        return out

    def finish(self) -> Obj | None:
        notes = []
        if self.notes:
            notes.append(f"step timings of {len(self.notes)} block(s) from summary statistics only")
        if not self.meta:
            notes.append("no run.json: taken as complete (pytest-benchmark writes its JSON at the end of a session)")
            finished = str(self.bench.get("datetime") or "")
            return {"kind": "finish", "finished": finished, "complete": True, "exit_status": None,
                    "note": "; ".join(notes)}  # fmt: skip
        complete = self.meta.get("complete", True)
        if not isinstance(complete, bool):
            raise UpgradeError(f"{self._where(META, 'complete')}: must be true or false, got {complete!r:.40}")
        status = self.integer(self.meta.get("exitstatus"), self._where(META, "exitstatus"), none=True)
        finished = self.meta.get("finished")
        if finished is None and complete is False and status is None:
            return None  # killed before run.json was finished: no end was recorded
        return {"kind": "finish", "finished": str(finished or ""), "complete": complete, "exit_status": status,
                "note": "; ".join(notes)}  # fmt: skip


def _finite(value: Any, where: str) -> float | None:
    """A loss or prediction: a number, None where it was not finite; UpgradeError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UpgradeError(f"{where}: must be a number or null, got {value!r:.40}")
    return float(value) if math.isfinite(value) else None


def _pool_mismatch(threads: Obj) -> list[str]:
    """Native pools whose thread count differs from the requested one, as 'openblas (blas): 16 threads'."""
    requested = threads.get("requested")
    if not isinstance(requested, int):
        return []
    out = []
    for pool in threads.get("native_pools") or []:
        if isinstance(pool, dict) and isinstance(pool.get("num_threads"), int) and pool["num_threads"] != requested:
            out.append(f"{pool.get('internal_api')} ({pool.get('user_api')}): {pool['num_threads']} threads")
    return out
