"""A pytest plugin (loaded with `-p`, see pyproject.toml) that pins threads before numpy can load, and
installs the run's signal handling (benchmarks/signals.py) as early as pytest allows.

OpenBLAS reads its thread count once, when numpy loads, and other installed pytest plugins may
import numpy before any hook of ours runs (seen on the GPU machine: 16 BLAS threads while 1 was
asked for). `-p` plugins are imported before the installed ones, so the count is put into the
environment at import time, from the command line. The harness also applies it at run time
(threadpoolctl) and records any pool that still differs. Invalid values are left for the option check.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

from backends import threads
from benchmarks import signals

signals.install()  # the earliest moment of a pytest run: an interrupt from here on ends it by one rule


def _pin(args: list[str]) -> None:
    n = threads.from_args(args)
    if n is not None:
        threads.configure(n)


_pin(shlex.split(os.environ.get("PYTEST_ADDOPTS", "")) + sys.argv[1:])


def pytest_load_initial_conftests(early_config: Any, parser: Any, args: list[str]) -> None:
    _pin(args)
