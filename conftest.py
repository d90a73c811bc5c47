"""Pytest set-up shared by the tests and the benchmarks.

Options are validated and threads pinned in pytest_configure, before any framework is
imported. A benchmark session writes into its own run folder under results/ and, when it
ends, publishes it and generates the comparison tables and plots from the saved JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from backends import threads
from backends.errors import one_line
from benchmarks import atomic, machine, runs
from benchmarks import options as bench_options
from benchmarks.session import OPTIONS, RUN, RunState


def pytest_addoption(parser: pytest.Parser) -> None:
    bench_options.add_options(parser)


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads --benchmark-json
def pytest_configure(config: pytest.Config) -> None:
    opts = bench_options.parse(config)
    threads.configure(opts.threads)  # safe to repeat: pytest-benchmark compare imports this file again
    config.stash[OPTIONS] = opts
    if _measures_nothing(config):
        return
    folder = runs.new_run(opts.results_dir)
    user_json = config.getoption("benchmark_json", None)
    if user_json is None:
        config.option.benchmark_json = folder / "benchmark.json"
    state = RunState(folder, dt.datetime.now().isoformat(timespec="seconds"), user_json)
    config.stash[RUN] = state
    _write_run_json(config, state, finished=None)


def _measures_nothing(config: pytest.Config) -> bool:
    return bool(
        config.getoption("help", False)
        or config.getoption("collectonly", False)
        or config.getoption("benchmark_skip", False)
        or config.getoption("benchmark_disable", False)
        or hasattr(config, "workerinput")
    )


def _write_run_json(config: pytest.Config, state: RunState, finished: str | None, **extra: Any) -> None:
    opts = config.stash[OPTIONS]
    run = {
        "started": state.started,
        "finished": finished,
        "argv": sys.argv,
        "options": {
            "backends": list(opts.backends),
            "device": opts.device_option,
            "devices": list(opts.devices),
            "seeds": opts.seeds,
            "train_steps": opts.config.train_steps,
            "threads": opts.threads,
            "hidden_size": opts.config.hidden_size,
            "seq_len": opts.config.seq_len,
            "batch_size": opts.config.batch_size,
            "rounds": opts.rounds,
            "repeats": opts.repeats,
            "warmup_rounds": opts.warmup_rounds,
        },
        "unavailable": state.unavailable,
        "failed": state.failed,
        **extra,
    }
    atomic.write_text(state.folder / "run.json", json.dumps(run, indent=2) + "\n")


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info.update(machine.machine_info())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Runs after pytest-benchmark saved its JSON: finish the run folder and write the report."""
    state = session.config.stash.get(RUN, None)
    if state is None or not state.folder.exists():
        return
    if state.user_json is not None and Path(state.user_json).exists():
        shutil.copyfile(state.user_json, state.folder / "benchmark.json")
    if not (state.folder / "benchmark.json").exists():
        shutil.rmtree(state.folder)  # nothing was benchmarked: leave no empty run behind
        return
    # -x / --maxfail stop the run early with TESTS_FAILED: rows after the stop were never measured
    stopped = bool(session.shouldfail or session.shouldstop)
    complete = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not stopped
    finished = dt.datetime.now().isoformat(timespec="seconds")
    _write_run_json(session.config, state, finished, complete=complete, exitstatus=int(exitstatus))
    final = runs.finish_run(state.folder, complete)
    state.published = final
    try:
        from benchmarks import report

        run = report.load_run(final)
        rows = report.comparison_rows(run)
        report.write_outputs(run, rows)
        state.summary = [*report.summary_lines(rows), report.overhead_line(run, rows)]
    except Exception as err:  # the measurements are saved; a report bug must not lose them
        state.report_error = one_line(err)


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's tables: the last thing on screen
def pytest_terminal_summary(terminalreporter: Any) -> None:
    state = terminalreporter.config.stash.get(RUN, None)
    if state is None or state.published is None:
        return
    tr = terminalreporter
    tr.section("rnn-bench comparison")
    for line in state.summary:
        tr.write_line(line)
    tr.write_line(f"run folder: {state.published}")
    if state.report_error:
        tr.write_line(f"report failed ({state.report_error}); regenerate with: python -m benchmarks.report")
    else:
        for name in ("comparison.md", "comparison.csv", "predictions.png", "loss_curves.png", "step_times.png"):
            if (state.published / name).exists():
                tr.write_line(f"  {state.published / name}")
