"""The one table of options. pytest's flags, the sweep's command line, validation, what a run records,
the report's options line and compare's "settings differ" all read `OPTIONS`: adding an option is one
entry here, saying which commands take it ("bench": `make bench`, "sweep": `make sweep`) and, where the
sweep wants another default, that default. Task sizes take their defaults and bounds from `TaskConfig`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import backends
from backends.task import LIMITS, TaskConfig

DEVICE_CHOICES = ("auto", "cpu", "cuda", "all")
COMMANDS = ("bench", "sweep")
SAME = object()  # an Option's sweep_default when the sweep takes the common default
_TASK_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TaskConfig)}


class OptionError(ValueError):
    """A bad option value; the message names the option, the value and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Option:
    """One option: its flag is --name with dashes; `task` options become TaskConfig fields."""

    name: str
    kind: type  # int, float, str or bool (a bool is a flag)
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    task: bool = False  # a TaskConfig field: default and bounds from there
    setting: bool = True  # changes what is measured: compare calls out a difference
    parse: Callable[[str], Any] | None = None  # for lists and names; validates and returns the value
    commands: tuple[str, ...] = COMMANDS  # which commands take it
    sweep_default: Any = SAME  # the sweep's default where it differs

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def default_for(self, command: str) -> Any:
        return self.default if command != "sweep" or self.sweep_default is SAME else self.sweep_default


def _task(name: str, kind: type, help_text: str, low: float | None = 1) -> Option:
    return Option(name, kind, _TASK_DEFAULTS[name], help_text, low, LIMITS.get(name), task=True)


def parse_backends(raw: str) -> tuple[str, ...]:
    known = backends.names()
    if raw.strip() == "all":
        return tuple(known)
    chosen = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise OptionError(f"--backends: unknown {', '.join(unknown) or repr(raw)}; known: {', '.join(known)}, or all")
    return tuple(n for n in known if n in chosen)


def parse_modes(raw: str) -> tuple[str, ...]:
    """'all', 'default' (each backend's first mode), or mode names (a backend without them is left out)."""
    every = sorted({m for name in backends.names() for m in backends.modes(name)})
    chosen = tuple(n.strip() for n in raw.split(",") if n.strip())
    if chosen in (("all",), ("default",)):
        return chosen
    unknown = [m for m in chosen if m not in every]
    if unknown or not chosen:
        raise OptionError(
            f"--modes: unknown {', '.join(unknown) or repr(raw)}; known: all, default, {', '.join(every)}"
        )
    return chosen


def parse_models(raw: str) -> tuple[str, ...]:
    """'all' or comma-separated model names (backends/models.py), in their declared order."""
    from backends.models import MODELS

    if raw.strip() == "all":
        return tuple(MODELS)
    chosen = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in MODELS]
    if unknown or not chosen:
        raise OptionError(f"--models: unknown {', '.join(unknown) or repr(raw)}; known: {', '.join(MODELS)}, or all")
    return tuple(n for n in MODELS if n in chosen)


def parse_device(raw: str) -> str:
    if raw not in DEVICE_CHOICES:
        raise OptionError(f"--device must be one of {', '.join(DEVICE_CHOICES)}, got {raw!r}")
    return raw


def parse_results_dir(raw: str) -> Path:
    """A folder the run can write into: refused here, before anything is measured, when it cannot."""
    if not raw.strip():
        raise OptionError("--results-dir must name a folder, got ''")
    path = Path(raw)
    probe = path
    while not probe.exists():  # the nearest existing ancestor decides whether it can be made
        probe = probe.parent
    if not probe.is_dir():
        raise OptionError(f"--results-dir {raw!r}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK) or str(probe.resolve()).startswith(("/proc", "/sys")):
        raise OptionError(f"--results-dir {raw!r}: {probe} is not writable")
    return path


def parse_cpu_affinity(raw: str) -> tuple[int, ...]:
    """'none' (no pinning) or comma-separated core numbers this process may run on. An empty list is refused:
    `--cpu-affinity=$CORES` with CORES unset must not silently pin nothing."""
    if raw == "none":
        return ()
    allowed = sorted(os.sched_getaffinity(0))
    try:
        cores = tuple(sorted({int(c) for c in raw.split(",")}))
    except ValueError:
        cores = ()
    if not cores or any(c not in allowed for c in cores):
        here = ",".join(map(str, allowed))
        raise OptionError(f"--cpu-affinity must be none or comma-separated cores of this machine ({here}), got {raw!r}")
    return cores


def _sizes(raw: str) -> tuple[tuple[int, int, int], ...]:
    from benchmarks.sweep import parse_sizes

    return parse_sizes(raw) if raw else ()


def _preset(raw: str) -> str:
    from benchmarks.sweep import parse_preset

    return parse_preset(raw)


def _cluster(raw: str) -> str:
    from benchmarks.harness.cluster import parse_address  # imports no Ray: that waits for a run on a cluster

    return parse_address(raw)


def _spread(raw: str) -> str:
    from benchmarks.harness.cluster import parse_spread

    return parse_spread(raw)


SWEEP = ("sweep",)
OPTIONS: tuple[Option, ...] = (
    Option("backends", str, "all", "comma-separated backend names, or all", parse=parse_backends),
    Option("modes", str, "all", "modes to run: all, default, or comma-separated mode names", parse=parse_modes),
    Option("models", str, "rnn", "cells to train: rnn, lstm, gru (comma-separated), or all", parse=parse_models),
    Option("device", str, "auto", "cpu, cuda, all, or auto = cpu plus cuda where a GPU exists", parse=parse_device),
    Option("seeds", int, 10, "training runs (seeds) per case for accuracy", 1, 1000, sweep_default=1),
    Option("accuracy", bool, True, "train each case (--seeds x --train-steps) and score it", sweep_default=False),
    _task("train_steps", int, "training windows per accuracy run"),
    _task("hidden_size", int, "RNN hidden units"),
    _task("seq_len", int, "time steps per window"),
    _task("batch_size", int, "streams per window"),
    Option("lr", float, _TASK_DEFAULTS["lr"], "Adam learning rate", 1e-12, 1e3, task=True),
    Option("threads", int, 1, "threads for every framework and native thread pool", 1, 256),
    Option("rounds", int, 100, "timed rounds per step block", 1, 1_000_000),
    Option("repeats", int, 5, "step blocks per case, taken in turn across cases", 1, 1000, sweep_default=2),
    Option("warmup_rounds", int, 10, "untimed rounds before each block", 0, 1_000_000),
    Option("min_round_us", float, 200.0, "a round times several calls until it lasts about this long", 0, 1e6),
    Option("memory", bool, True, "record each case's worker's peak memory (--no-memory: skip)", sweep_default=False),
    Option("fresh_caches", bool, True, "fresh compile caches (inductor, XLA) for the run (--no-fresh-caches)"),
    Option("worker_timeout", float, 300.0, "seconds a case's worker may take to answer (4x for a first step)", 1, 1e6),
    Option(
        "cpu_affinity",
        str,
        "none",
        "cores the workers run on, e.g. 1 or 0,1 (default: no pinning)",
        parse=parse_cpu_affinity,
    ),
    Option("results_dir", str, "results", "folder for run folders", setting=False, parse=parse_results_dir),
    Option("cluster", str, "", "Ray cluster for the case workers: HOST:PORT or auto", setting=False, parse=_cluster),
    Option(
        "spread",
        str,
        "split",
        "on a cluster: split the cases across nodes, or every node all",
        setting=False,
        parse=_spread,
    ),
    # the sweep's own: sizes and budgets (see benchmarks/sweep.py)
    Option(
        "sizes",
        str,
        "",
        "sizes, comma-separated HIDDENxBATCHxSEQ_LEN (instead of --preset)",
        parse=_sizes,
        commands=SWEEP,
    ),
    Option("preset", str, "default", "named set of sizes: seed, torch7-rnn, default", parse=_preset, commands=SWEEP),
    Option("point_budget_s", float, 1.0, "seconds of timed rounds per case and size", 1e-3, 3600, commands=SWEEP),
    Option(
        "max_call_s", float, 1.0, "skip a case at sizes where one train_step takes longer", 1e-6, 3600, commands=SWEEP
    ),
    Option("max_memory_mb", float, 4096.0, "skip points whose estimated memory is larger", 1e-3, 1e9, commands=SWEEP),
    Option(
        "setup_budget_s", float, 30.0, "per case: seconds of loading and first calls, all sizes", 0, 1e6, commands=SWEEP
    ),
    Option(
        "budget_s", float, 480.0, "seconds for the whole sweep; points left then are skipped", 1, 1e7, commands=SWEEP
    ),
)
BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


def _number(option: Option, raw: Any) -> Any:
    if isinstance(raw, bool):
        raise OptionError(f"{option.flag} must be a number, got {raw!r}")
    try:
        value = option.kind(raw)  # int() accepts exactly what int() accepts: "²" is refused, "1_000" is not
    except (TypeError, ValueError, OverflowError):
        kind = "an integer" if option.kind is int else "a number"
        raise OptionError(f"{option.flag} must be {kind}, got {raw!r:.40}") from None
    if option.kind is float and not math.isfinite(value):
        raise OptionError(f"{option.flag} must be a finite number, got {raw!r:.40}")
    low, high = option.low, option.high
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "" if low is None else f"{low:g}"
        raise OptionError(f"{option.flag} must be in [{lo}, {'' if high is None else f'{high:g}'}], got {raw!r:.40}")
    return value


def _bool(option: Option, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise OptionError(f"{option.flag} must be yes or no, got {raw!r:.40}")


class Options:
    """Validated option values, read as attributes (`opts.seeds`); `config` is the TaskConfig."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(f"no option {name!r}") from None

    @property
    def config(self) -> TaskConfig:
        try:
            return TaskConfig(**{o.name: self._values[o.name] for o in OPTIONS if o.task})
        except ValueError as err:
            raise OptionError(str(err)) from None

    @property
    def devices(self) -> tuple[str, ...]:
        device = self._values["device"]
        if device == "auto":
            return ("cpu", "cuda") if gpu_present() else ("cpu",)
        return ("cpu", "cuda") if device == "all" else (device,)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able values, for the run's records."""
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in self._values.items()
        }

    def replace(self, **changes: Any) -> Options:
        return Options({**self._values, **changes})


def taken_by(command: str) -> tuple[Option, ...]:
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {', '.join(COMMANDS)}, got {command!r}")
    return tuple(o for o in OPTIONS if command in o.commands)


def parse(raw: Mapping[str, Any], command: str = "bench") -> Options:
    """Validate every option given (by name, as strings or values); defaults for the rest.
    A bad value raises OptionError naming the option, the value and what is allowed."""
    taken = taken_by(command)
    names = [o.name for o in taken]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise OptionError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(names)}")
    if command == "sweep" and raw.get("sizes") is not None and raw.get("preset") is not None:
        raise OptionError("give --sizes or --preset, not both")
    values: dict[str, Any] = {"command": command}
    for option in taken:
        value = raw.get(option.name, option.default_for(command))
        if option.parse is not None:
            value = option.parse(str(value))
        elif option.kind is bool:
            value = _bool(option, value)
        elif option.kind in (int, float):
            value = _number(option, value)
        values[option.name] = value
    opts = Options(values)
    opts.config  # noqa: B018 - TaskConfig's own checks, with the field named
    return opts


def defaults(command: str = "bench") -> Options:
    return parse({}, command)


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible, without importing any framework."""
    return os.path.exists("/proc/driver/nvidia/gpus") or os.path.exists("/dev/nvidia0")


def add_to_parser(add: Callable[..., Any], command: str = "bench") -> None:
    """Declare the command's options through `add(flag, **kwargs)` (pytest's addoption or argparse's
    add_argument); values stay strings (None when not given) and are validated by `parse`."""
    for option in taken_by(command):
        default = option.default_for(command)
        shown = ("yes" if default else "no") if option.kind is bool else default if default != "" else "none"
        text = f"{option.help} (default {shown})"
        if option.kind is bool:
            add(option.flag, action="store_const", const="yes", default=None, dest=option.name, help=text)
            add("--no-" + option.flag[2:], action="store_const", const="no", dest=option.name, help="")
        else:
            add(option.flag, default=None, dest=option.name, help=text)


def from_namespace(namespace: Any, command: str = "bench") -> dict[str, Any]:
    """The options given on a command line (argparse namespace or pytest config.option), by name."""
    return {
        o.name: getattr(namespace, o.name) for o in taken_by(command) if getattr(namespace, o.name, None) is not None
    }
