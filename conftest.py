"""The pytest shell around the harness, shared by the tests and the benchmarks.

pytest_configure validates the options (one table: benchmarks/options.py) and makes the plan
before any framework is imported. A benchmark session then opens a run folder, runs the plan's
work through benchmarks/bench_suite.py (one test per unit, in plan order), and at the end labels
the folder, renders its report from the records, and publishes it when it is worth publishing.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from backends import threads
from backends.errors import one_line
from benchmarks import options, records, runs
from benchmarks.harness import Harness, machine
from benchmarks.plan import make_plan
from benchmarks.session import OPTS, PLAN, SESSION, Session


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rnn-bench", "rnn-bench harness (validated by benchmarks/options.py)")
    options.add_to_parser(group.addoption)


def _measures_nothing(config: pytest.Config) -> bool:
    return bool(
        config.getoption("help", False)
        or config.getoption("collectonly", False)
        or config.getoption("benchmark_skip", False)
        or config.getoption("benchmark_disable", False)
        or hasattr(config, "workerinput")
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads --benchmark-json
def pytest_configure(config: pytest.Config) -> None:
    try:
        opts = options.parse(options.from_namespace(config.option))
    except options.OptionError as err:
        raise pytest.UsageError(str(err)) from None
    threads.configure(opts.threads)  # safe to repeat: pytest-benchmark compare imports this file again
    config.stash[OPTS] = opts
    if _measures_nothing(config):
        return
    try:
        config.stash[PLAN] = make_plan(opts)
    except options.OptionError as err:
        raise pytest.UsageError(str(err)) from None
    _check_benchmark_json(config)
    results_dir = Path(opts.results_dir)
    try:
        for folder in runs.recover(results_dir, _render):
            print(f"rnn-bench: {folder} was left by a run that was killed; labelled incomplete", file=sys.stderr)
        folder, alive = runs.new_run(results_dir)
    except OSError as err:
        raise pytest.UsageError(f"--results-dir {opts.results_dir!r}: cannot create a run folder ({err})") from None
    caches = _fresh_caches() if opts.fresh_caches else None
    if config.getoption("benchmark_json", None) is None:
        config.option.benchmark_json = _json_target(folder / "benchmark.json")
    writer = records.Writer(folder)
    harness = Harness(opts, config.stash[PLAN], writer, progress=lambda line: _progress(config, line))
    harness.start(sys.argv)
    config.stash[SESSION] = Session(folder, alive, writer, harness, caches)
    # a plain kill (SIGTERM, `timeout`) ends the session as Ctrl-C does: the run folder is labelled
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _check_benchmark_json(config: pytest.Config) -> None:
    """Refuse an unusable --benchmark-json now, not after the run (pytest-benchmark 5.3 takes a path)."""
    target = config.getoption("benchmark_json", None)
    if isinstance(target, (str, Path)):
        parent = Path(target).resolve().parent
        if not parent.is_dir():
            raise pytest.UsageError(f"--benchmark-json {target}: folder {parent} does not exist")


def _json_target(path: Path) -> Any:
    """What pytest-benchmark expects in benchmark_json: a path from 5.3 on, an open binary file before."""
    from importlib.metadata import version

    major, minor = (int(p) for p in version("pytest-benchmark").split(".")[:2])
    return path if (major, minor) >= (5, 3) else open(path, "wb")  # noqa: SIM115 - pytest-benchmark closes it


def _fresh_caches() -> Path:
    """Empty compile caches for this run, so a compiled mode's first step is a cold compile."""
    import os

    root = Path(tempfile.mkdtemp(prefix="rnn-bench-caches-"))
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / "inductor")
    os.environ["TRITON_CACHE_DIR"] = str(root / "triton")
    return root


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "work" in metafunc.fixturenames:
        plan = metafunc.config.stash.get(PLAN, None)
        work = plan.work if plan is not None else ()
        metafunc.parametrize("work", work, ids=[w.id for w in work])


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info.update(dataclasses.asdict(machine.record()))


def _progress(config: pytest.Config, line: str) -> None:
    """Print a line now, even while pytest captures output."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        print(line)
    elif capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
    else:
        reporter.write_line(line)


def _render(folder: Path) -> list[str]:
    from benchmarks.report import render

    return render(folder)[1]


@pytest.hookimpl(wrapper=True, tryfirst=True)  # around pytest-benchmark's wrapper, which saves its JSON
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    """Finish the run after pytest-benchmark's save, whether or not that save worked: our records never
    depend on it. Our table is printed last."""
    _drop_unfinished_benchmarks(session.config)
    try:
        return (yield)
    finally:
        _finish_run(session, exitstatus)
        _print_summary(session.config)


def _drop_unfinished_benchmarks(config: pytest.Config) -> None:
    """A benchmark interrupted by Ctrl-C holds no rounds, and pytest-benchmark (5.2 and 5.3) then fails
    its own save with "min() arg is an empty sequence"; leave such entries out of its JSON."""
    bench_session = getattr(config, "_benchmarksession", None)
    if bench_session is not None and isinstance(getattr(bench_session, "benchmarks", None), list):
        bench_session.benchmarks[:] = [b for b in bench_session.benchmarks if getattr(b, "stats", None)]


def _finish_run(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(SESSION, None)
    if state is None:
        return
    # -x / --maxfail stop the run early with TESTS_FAILED: the work after the stop was never done
    stopped = bool(session.shouldfail or session.shouldstop)
    complete = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not stopped
    state.harness.finish(complete, int(exitstatus))
    state.writer.close()
    if state.caches is not None:
        shutil.rmtree(state.caches, ignore_errors=True)
    final = runs.finish_run(state.folder, complete)
    state.alive.close()
    state.folder = final
    try:  # a kill from here on leaves a folder without tables, never latest; the next command renders it
        state.summary = _render(final)
    except Exception as err:  # the records are saved; a report bug must not lose them
        state.problems.append(f"report failed ({one_line(err)})")
    if state.problems:
        state.problems.append(f"regenerate the report with: python -m benchmarks.report {final}")
        return
    if not complete:
        state.problems.append("the run did not finish: not published as latest")
    elif not state.harness.measured_cases:
        state.problems.append("no case was measured: not published as latest")
    else:
        try:
            runs.publish(final)
            state.published = True
        except OSError as err:
            state.problems.append(f"cannot publish the run as latest ({err})")


def _print_summary(config: pytest.Config) -> None:
    state = config.stash.get(SESSION, None)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if state is None or tr is None:
        return
    tr.section("rnn-bench comparison")
    for line in state.summary:
        tr.write_line(line)
    tr.write_line(f"run folder: {state.folder}" + (" (published as latest)" if state.published else ""))
    for problem in state.problems:
        tr.write_line(problem, yellow=True)
