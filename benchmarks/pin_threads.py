"""A pytest plugin (loaded with `-p`, see pyproject.toml) that pins threads before any conftest loads.

The conftests import numpy, and OpenBLAS reads its thread count once, when numpy loads; so
the count from --threads must be in the environment before then. Invalid values are left
for the conftest's option check to report.
"""

from __future__ import annotations

from typing import Any

from backends import threads


def pytest_load_initial_conftests(early_config: Any, parser: Any, args: list[str]) -> None:
    n = threads.from_args(args)
    if n is not None:
        threads.configure(n)
