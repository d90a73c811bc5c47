"""The harness's command-line options, validated once into `BenchOptions`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

import backends
from backends.task import TaskConfig

DEVICE_CHOICES = ("auto", "cpu", "cuda", "all")


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """What one benchmark run measures."""

    backends: tuple[str, ...]  # in registry order
    devices: tuple[str, ...]  # "cpu" and/or "cuda"
    device_option: str  # as given: auto, cpu, cuda or all
    seeds: int  # training runs per backend for accuracy (seeds 0 .. seeds-1)
    threads: int  # every framework's intra- and inter-op threads
    rounds: int  # timed rounds per step benchmark and repeat
    repeats: int  # timing blocks per step benchmark, taken in turn across backends
    warmup_rounds: int  # untimed rounds before them
    memory: bool  # measure peak memory in a child process per backend
    results_dir: Path  # where run folders go
    config: TaskConfig  # the task, seed field unused (seeds above)


# option, default, help; every value is validated in parse() below
OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--backends", "all", "comma-separated backend names, or 'all'"),
    ("--device", "auto", "cpu, cuda, all, or auto = cpu plus cuda where a GPU exists"),
    ("--seeds", "5", "training runs (seeds) per backend for accuracy"),
    ("--train-steps", "300", "training windows per accuracy run"),
    ("--threads", "1", "threads for every framework and native thread pool"),
    ("--hidden-size", "32", "RNN hidden units"),
    ("--seq-len", "10", "time steps per window"),
    ("--batch-size", "1", "streams per window"),
    ("--rounds", "300", "timed rounds per step benchmark, in each repeat"),
    ("--repeats", "3", "blocks of rounds per step benchmark, taken in turn across backends"),
    ("--warmup-rounds", "20", "untimed rounds before them"),
    ("--results-dir", "results", "folder for run folders"),
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("rnn-bench", "rnn-bench harness")
    for flag, default, text in OPTIONS:
        group.addoption(flag, default=default, help=f"{text} (default {default})")
    group.addoption("--no-memory", action="store_true", help="skip the per-backend peak-memory child processes")


def _positive_int(config: pytest.Config, option: str, minimum: int = 1) -> int:
    raw = str(config.getoption(option))
    if not raw.strip().isdigit() or int(raw) < minimum:
        raise pytest.UsageError(f"{option} must be an integer >= {minimum}, got {raw!r}")
    return int(raw)


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible, without importing any framework."""
    return os.path.exists("/proc/driver/nvidia/gpus") or os.path.exists("/dev/nvidia0")


def parse_backends(raw: str) -> tuple[str, ...]:
    known = backends.names()
    if raw.strip() == "all":
        return tuple(known)
    chosen = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise pytest.UsageError(f"--backends: unknown {', '.join(unknown) or repr(raw)}; known: {', '.join(known)}")
    return tuple(n for n in known if n in chosen)


def parse_devices(raw: str) -> tuple[str, ...]:
    if raw not in DEVICE_CHOICES:
        raise pytest.UsageError(f"--device must be one of {', '.join(DEVICE_CHOICES)}, got {raw!r}")
    if raw == "auto":
        return ("cpu", "cuda") if gpu_present() else ("cpu",)
    return ("cpu", "cuda") if raw == "all" else (raw,)


def parse_results_dir(raw: str) -> Path:
    if not raw.strip():
        raise pytest.UsageError("--results-dir must name a folder, got ''")
    path = Path(raw)
    if path.exists() and not path.is_dir():
        raise pytest.UsageError(f"--results-dir must be a folder, but {raw!r} is a file")
    return path


def parse(config: pytest.Config) -> BenchOptions:
    """Validate every option; a bad one raises pytest.UsageError naming it, its value and what is allowed."""
    threads = _positive_int(config, "--threads")
    task = TaskConfig(
        hidden_size=_positive_int(config, "--hidden-size"),
        seq_len=_positive_int(config, "--seq-len"),
        batch_size=_positive_int(config, "--batch-size"),
        train_steps=_positive_int(config, "--train-steps"),
    )
    return BenchOptions(
        backends=parse_backends(str(config.getoption("--backends"))),
        devices=parse_devices(str(config.getoption("--device"))),
        device_option=str(config.getoption("--device")),
        seeds=_positive_int(config, "--seeds"),
        threads=threads,
        rounds=_positive_int(config, "--rounds"),
        repeats=_positive_int(config, "--repeats"),
        warmup_rounds=_positive_int(config, "--warmup-rounds", minimum=0),
        memory=not config.getoption("--no-memory"),
        results_dir=parse_results_dir(str(config.getoption("--results-dir"))),
        config=task,
    )
