"""Pytest set-up shared by the tests and the benchmarks: threads are pinned before any framework loads."""

from __future__ import annotations

import pytest

from backends import threads


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rnn-bench")
    group.addoption("--threads", default="1", help="threads for every framework (default 1)")


def pytest_configure(config: pytest.Config) -> None:
    raw = config.getoption("--threads")
    if not str(raw).isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"--threads must be a positive integer, got {raw!r}")
    threads.configure(int(raw))
