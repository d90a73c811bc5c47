"""Helpers the report's tests share: copies of the committed samples (edited as lists of records), small runs
written from scratch, the report's command line, and markdown tables read back into cells."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from backends.task import SIN_TO_COS, TaskConfig
from benchmarks import records
from benchmarks.records import Block, Case, Finish, FirstStep, Loaded, Start, Training

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent
SAMPLE = DATA / "sample_records"  # schema 2, from the H200 reference run (make_sample.py)
SAMPLE_1 = DATA / "sample_run"  # schema 1: benchmark.json + run.json
REFERENCE = ROOT / "results" / "reference"
SIZE = "32x1x10"


def write_run(folder: Path, recs: Iterable[object]) -> Path:
    folder.mkdir(parents=True)
    writer = records.Writer(folder)
    for record in recs:
        writer.write(record)
    writer.close()
    return folder


@functools.cache
def _records(source: Path) -> tuple[object, ...]:
    return tuple(records.read(source).records)  # records are frozen: one read serves every copy


def copy_records(dst: Path, edit: Callable[[list], list] | None = None, source: Path = SAMPLE) -> Path:
    """A copy of a run's records (upgraded to the current schema), edited as a list of records."""
    recs = list(_records(source))
    return write_run(dst, edit(recs) if edit else recs)


def start(options: dict | None = None, task: dict | None = None, cases: list[Case] | None = None) -> Start:
    config = dataclasses.asdict(TaskConfig())
    return Start(records.SCHEMA, "2026-01-01T00:00:00", [], {"rounds": 5, "repeats": 1, **(options or {})},
                 task or SIN_TO_COS.describe(), config, cases or [])  # fmt: skip


def blocks(case: Case, step: float, repeats: int = 1, spread: float = 0.0, op: str = "train_step") -> list[Block]:
    """`repeats` blocks of 5 rounds around `step`; repeat r is scaled by 1 + spread * (r / (repeats - 1) - 0.5)."""
    out = []
    for r in range(repeats):
        scale = 1 + spread * (r / (repeats - 1) - 0.5) if repeats > 1 else 1.0
        out.append(Block(case, op, r, 1, [step * scale * f for f in (0.9, 1.0, 1.0, 1.0, 1.1)]))
    return out


def synthetic(folder: Path, cases: dict[tuple[str, str, str], tuple[float, float]], metrics: dict | None = None,
              task: dict | None = None, size: str = SIZE, repeats: int = 1, spread: float = 0.0,
              options: dict | None = None) -> Path:  # fmt: skip
    """A small run: each (backend, mode, device) -> (step seconds, first-step seconds); metrics per case."""
    out: list = [start({"repeats": repeats, **(options or {})}, task)]
    for (backend, mode, device), (step, first) in cases.items():
        case = Case(backend, mode, device, size)
        out += [Loaded(case, {"kernel": "k", "mode": mode}, 1121), FirstStep(case, first)]
        out += blocks(case, step, repeats, spread)
        for seed, metric in enumerate((metrics or {}).get((backend, mode, device), [])):
            out.append(Training(case, seed, [0.5, 0.1], metric, None, 1.0))
    out.append(Finish("2026-01-01T00:01:00", True, 0))
    return write_run(folder, out)


def table(md: str, heading: str = "## Results") -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the table under `heading`."""
    part = md.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in part.splitlines() if line.startswith("| ")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]] for line in lines]
    return split[0], split[1:]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m benchmarks.report ARGS`, run in this process (a new interpreter costs seconds): exit status,
    stdout and stderr."""
    from benchmarks.report.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # --help
            code = exit_.code if isinstance(exit_.code, int) else 0
    return subprocess.CompletedProcess(["benchmarks.report", *args], code, out.getvalue(), err.getvalue())


def cli_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The same in a new interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "benchmarks.report", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    for word in words:
        assert word in done.stderr, (word, done.stderr)
