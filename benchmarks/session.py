"""What the root conftest and the benchmark fixtures share through pytest's stash."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmarks.options import BenchOptions

OPTIONS = pytest.StashKey[BenchOptions]()
RUN = pytest.StashKey["RunState"]()


@dataclasses.dataclass
class RunState:
    """The run folder of a benchmark session and what it learned along the way."""

    folder: Path
    started: str
    user_json: Path | None
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)  # backend@device -> first error
    published: Path | None = None
    report_error: str | None = None
    summary: list[str] = dataclasses.field(default_factory=list)  # lines for the terminal
