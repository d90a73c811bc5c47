"""What the pytest shell keeps between its hooks and the benchmark tests (pytest's stash)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import IO

import pytest

from benchmarks import options, records
from benchmarks.harness import Harness
from benchmarks.plan import Plan

OPTS = pytest.StashKey[options.Options]()
PLAN = pytest.StashKey[Plan]()
SESSION = pytest.StashKey["Session"]()


@dataclasses.dataclass
class Session:
    """A benchmark session's run folder, harness and outcome."""

    folder: Path
    alive: IO[str]
    writer: records.Writer
    harness: Harness
    caches: Path | None
    published: bool = False
    summary: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
