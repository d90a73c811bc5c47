"""Peak memory of one backend, measured in a child process that loads nothing else.

Run as `python -m benchmarks.harness.memory CASE_JSON CONFIG_JSON`; prints one JSON line.
A figure taken in the harness's own process would include every other framework loaded
there, so each backend gets a fresh interpreter: baseline RSS after importing numpy and the
registry, peak RSS after loading the backend and training a few windows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from typing import Any

from benchmarks.records import Case

STEPS = 20
FIELDS = ("peak_rss_bytes", "baseline_rss_bytes", "gpu_peak_bytes")  # what a measurement reports


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """This process's peak RSS. Not getrusage's ru_maxrss: that one survives fork+exec, so a child
    would report at least its parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(case: Case, config_fields: dict[str, Any]) -> dict[str, Any]:
    """Load the backend here and report its memory (meant to run in a child process)."""
    import backends
    from backends.task import TaskConfig, window

    baseline = _rss_bytes()
    config = TaskConfig(**config_fields)
    backend = backends.load(case.backend, config, case.device, mode=case.mode)
    for k in range(STEPS):
        backend.train_step(*window(config, k))
    backend.predict(window(config, STEPS)[0])
    return {
        "peak_rss_bytes": _peak_rss_bytes(),
        "baseline_rss_bytes": baseline,
        "gpu_peak_bytes": backend.device_peak_bytes(),
    }


def measure_in_child(case: Case, config_fields: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """Run `measure` in a fresh interpreter with this process's environment (thread settings included).
    Never raises: a child that fails, hangs or prints nonsense gives empty figures and an "error"."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.harness.memory",
        json.dumps(dataclasses.asdict(case)),
        json.dumps(config_fields),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return _failed(f"the memory child took over {timeout:g} s")
    if proc.returncode != 0:
        return _failed((proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1])
    try:
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        return {key: got[key] for key in FIELDS}
    except (IndexError, ValueError, KeyError, TypeError):
        return _failed(f"unreadable memory child output: {proc.stdout.strip()[-200:]!r}")


def _failed(error: str) -> dict[str, Any]:
    return {**dict.fromkeys(FIELDS), "error": " ".join(error.split())[:300]}


if __name__ == "__main__":
    print(json.dumps(measure(Case(**json.loads(sys.argv[1])), json.loads(sys.argv[2]))))
