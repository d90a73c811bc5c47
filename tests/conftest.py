"""Test fixtures. Every registered backend is a parameter of any test that asks for `backend_name`.

RNNBENCH_BACKENDS=a,b restricts the suites to some backends; unknown names are an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

import backends
from backends import BackendUnavailable, TaskConfig


def selected_backends() -> list[str]:
    raw = os.environ.get("RNNBENCH_BACKENDS", "")
    if not raw:
        return backends.names()
    chosen = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in backends.names()]
    if unknown:
        raise pytest.UsageError(f"RNNBENCH_BACKENDS: unknown {unknown}; known: {', '.join(backends.names())}")
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", selected_backends())


def make(name: str, config: TaskConfig | None = None, device: str = "cpu", **options: Any) -> backends.Backend:
    """Load a backend, skipping the test with the reason when its framework is unavailable."""
    try:
        return backends.load(name, config, device, **options)
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
