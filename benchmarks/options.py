"""The one table of options. pytest's flags, the sweep's command line, validation, what a run records,
the report's options line and compare's "settings differ" all read `OPTIONS`: adding an option is one
entry here. Task sizes take their defaults and bounds from `TaskConfig`.
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

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


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


OPTIONS: tuple[Option, ...] = (
    Option("backends", str, "all", "comma-separated backend names, or all", parse=parse_backends),
    Option("modes", str, "all", "modes to run: all, default, or comma-separated mode names", parse=parse_modes),
    Option("device", str, "auto", "cpu, cuda, all, or auto = cpu plus cuda where a GPU exists", parse=parse_device),
    Option("seeds", int, 10, "training runs (seeds) per case for accuracy", 1, 1000),
    _task("train_steps", int, "training windows per accuracy run"),
    _task("hidden_size", int, "RNN hidden units"),
    _task("seq_len", int, "time steps per window"),
    _task("batch_size", int, "streams per window"),
    Option("lr", float, _TASK_DEFAULTS["lr"], "Adam learning rate", 1e-12, 1e3, task=True),
    Option("threads", int, 1, "threads for every framework and native thread pool", 1, 256),
    Option("rounds", int, 100, "timed rounds per step block", 1, 1_000_000),
    Option("repeats", int, 5, "step blocks per case, taken in turn across cases", 1, 1000),
    Option("warmup_rounds", int, 10, "untimed rounds before each block", 0, 1_000_000),
    Option("min_round_us", float, 200.0, "a round times several calls until it lasts about this long", 0, 1e6),
    Option("memory", bool, True, "measure peak memory in a child process per case (--no-memory: skip)"),
    Option("fresh_caches", bool, True, "fresh compile caches (inductor, XLA) for the run (--no-fresh-caches)"),
    Option("results_dir", str, "results", "folder for run folders", setting=False, parse=parse_results_dir),
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


def parse(raw: Mapping[str, Any]) -> Options:
    """Validate every option given (by name, as strings or values); defaults for the rest.
    A bad value raises OptionError naming the option, the value and what is allowed."""
    unknown = sorted(set(raw) - set(BY_NAME))
    if unknown:
        raise OptionError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    values = {}
    for option in OPTIONS:
        value = raw.get(option.name, option.default)
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


def defaults() -> Options:
    return parse({})


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible, without importing any framework."""
    return os.path.exists("/proc/driver/nvidia/gpus") or os.path.exists("/dev/nvidia0")


def add_to_parser(add: Callable[..., Any]) -> None:
    """Declare every option through `add(flag, **kwargs)` (pytest's addoption or argparse's add_argument);
    values stay strings (None when not given) and are validated by `parse`."""
    for option in OPTIONS:
        text = f"{option.help} (default {option.default})"
        if option.kind is bool:
            add(option.flag, action="store_const", const="yes", default=None, dest=option.name, help=text)
            add("--no-" + option.flag[2:], action="store_const", const="no", dest=option.name, help="")
        else:
            add(option.flag, default=None, dest=option.name, help=text)


def from_namespace(namespace: Any) -> dict[str, Any]:
    """The options given on a command line (argparse namespace or pytest config.option), by name."""
    return {o.name: getattr(namespace, o.name) for o in OPTIONS if getattr(namespace, o.name, None) is not None}
