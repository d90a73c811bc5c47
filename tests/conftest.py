"""Test fixtures. Every registered backend is a parameter of any test that asks for `backend_name`,
and every backend x mode (on the CPU, where a mode runs there) of any test that asks for `case`.

RNNBENCH_BACKENDS=a,b restricts the suites to some backends; unknown names are an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import backends
from backends import BackendUnavailable, TaskConfig

# make test runs the files on every core (pytest-xdist). A run these tests start in a subprocess must not
# inherit the marks of an xdist worker: pytest-benchmark reads PYTEST_XDIST_WORKER and disables itself.
for _var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
    os.environ.pop(_var, None)
# TensorFlow loaded before PyTorch's compiler aborts the process (LLVM: "Option 'bitcode-mdindex-threshold'
# registered more than once", triton 3.9 beside TensorFlow 2.21); the other order works. A test process may
# meet both, in any order of files: load the compiler first.
try:
    import torch._dynamo  # noqa: F401
except ImportError:
    pass
# the floor's kernels compile in 3-20 s per model and process: the test processes share them on disk
# (a benchmark compiles cold, so its first step shows the compile; see backends/numba_rnn.py)
os.environ.setdefault("RNN_BENCH_NUMBA_CACHE", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))


def selected_backends() -> list[str]:
    raw = os.environ.get("RNNBENCH_BACKENDS", "")
    if not raw:
        return backends.names()
    chosen = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in backends.names()]
    if unknown:
        raise pytest.UsageError(f"RNNBENCH_BACKENDS: unknown {unknown}; known: {', '.join(backends.names())}")
    return chosen


def cpu_cases() -> list[tuple[str, str]]:
    """(backend, mode) for every selected backend and every mode that can run on the CPU."""
    return [
        (name, mode)
        for name in selected_backends()
        for mode in backends.modes(name)
        if "cpu" in backends.mode_devices(name, mode)
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", selected_backends())
    if "case" in metafunc.fixturenames:
        cases = cpu_cases()
        metafunc.parametrize("case", cases, ids=[f"{n}-{m}" for n, m in cases])


def make(
    name: str | tuple[str, str], config: TaskConfig | None = None, device: str = "cpu", **options: Any
) -> backends.Backend:
    """Load a backend (a name, or a (name, mode) case), skipping the test with the reason when its
    framework is unavailable."""
    name, mode = name if isinstance(name, tuple) else (name, None)
    try:
        return backends.load(name, config, device, mode=mode, **options)
    except BackendUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture
def make_backend():
    return make


@pytest.fixture(scope="session")
def run_python() -> Callable[[str], subprocess.CompletedProcess]:
    """Run Python code in a fresh interpreter (nothing this process imported is loaded there)."""

    def run(code: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-c", textwrap.dedent(code)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    return run
