"""What the pytest shell keeps between its hooks and the benchmark tests (pytest's stash)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import options

OPTS = pytest.StashKey[options.Options]()
PLAN = pytest.StashKey[Any]()  # benchmarks.plan.Plan
SESSION = pytest.StashKey[Any]()  # benchmarks.session.Session
