"""The pytest shell around the harness, shared by the tests and the benchmarks.

pytest_configure validates the options (one table: benchmarks/options.py) and makes the plan before any
framework is imported. A benchmark session then opens a run folder (benchmarks/session.py), runs the
plan's work through benchmarks/bench_suite.py (one test per unit, in plan order; each case in a worker
process of its own), and at the end labels the folder, renders its report from the records, and
publishes it when it is worth publishing.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from backends import threads
from backends.errors import one_line
from benchmarks import options, signals
from benchmarks.harness import machine
from benchmarks.plan import make_plan
from benchmarks.stash import OPTS, PLAN, SESSION


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
        _check_benchmark_json(config)
    except options.OptionError as err:
        raise pytest.UsageError(str(err)) from None
    from benchmarks.session import open_session

    try:
        state = open_session(opts, config.stash[PLAN], progress=lambda line: _progress(config, line))
    except KeyboardInterrupt as err:
        pytest.exit(f"rnn-bench: interrupted by {err} before the run started", returncode=130)
    except options.OptionError as err:  # e.g. --cluster: no cluster answers there
        raise pytest.UsageError(str(err)) from None
    except OSError as err:
        raise pytest.UsageError(
            f"--results-dir {opts.results_dir!r}: cannot create a run folder ({one_line(err)})"
        ) from None
    config.stash[SESSION] = state
    if config.getoption("benchmark_json", None) is None:
        config.option.benchmark_json = _json_target(state.folder / "benchmark.json")


def _check_benchmark_json(config: pytest.Config) -> None:
    """Refuse an unusable --benchmark-json now, before the run folder is made (pytest-benchmark 5.3 takes a
    path, 5.2 an open file: an open file was checked by argparse already)."""
    target = config.getoption("benchmark_json", None)
    if isinstance(target, (str, Path)):
        path = Path(target)
        parent = path.resolve().parent
        if path.is_dir():
            raise options.OptionError(f"--benchmark-json {target}: is a folder; give a file name")
        if not parent.is_dir():
            raise options.OptionError(f"--benchmark-json {target}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise options.OptionError(f"--benchmark-json {target}: not writable")


def _json_target(path: Path) -> Any:
    """What pytest-benchmark expects in benchmark_json: a path from 5.3 on, an open binary file before."""
    from importlib.metadata import version

    major, minor = (int(p) for p in version("pytest-benchmark").split(".")[:2])
    return path if (major, minor) >= (5, 3) else open(path, "wb")  # noqa: SIM115 - pytest-benchmark closes it


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


@pytest.hookimpl(wrapper=True, tryfirst=True)  # around pytest-benchmark's wrapper, which saves its JSON
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    """End the run after pytest-benchmark's save, whether or not that save worked: our records never
    depend on it. Our table is printed last."""
    _drop_unfinished_benchmarks(session.config)
    try:
        with signals.deferred():
            return (yield)
    finally:
        _end_run(session, exitstatus)
        _print_summary(session.config)
        if session.config.stash.get(SESSION, None) is not None:
            signals.settle()
        if signals.received():  # an interrupted run never exits 0, whatever pytest made of the interrupt
            session.exitstatus = pytest.ExitCode.INTERRUPTED


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.config.stash.get(SESSION, None) is not None:
        signals.check()  # a signal whose KeyboardInterrupt was swallowed where it landed still stops the run


def pytest_unconfigure(config: pytest.Config) -> None:
    """End the run if pytest never got to its session's end (an interrupt right after pytest_configure)."""
    state = config.stash.get(SESSION, None)
    if state is not None and not state.ended:
        from benchmarks.session import end_session

        end_session(state, attempted_all=False, exit_status=int(pytest.ExitCode.INTERRUPTED))
        _print_summary(config)


def _drop_unfinished_benchmarks(config: pytest.Config) -> None:
    """A benchmark interrupted by Ctrl-C holds no rounds, and pytest-benchmark (5.2 and 5.3) then fails
    its own save with "min() arg is an empty sequence"; leave such entries out of its JSON."""
    bench_session = getattr(config, "_benchmarksession", None)
    if bench_session is not None and isinstance(getattr(bench_session, "benchmarks", None), list):
        bench_session.benchmarks[:] = [b for b in bench_session.benchmarks if getattr(b, "stats", None)]


def _end_run(session: pytest.Session, exitstatus: int) -> None:
    from benchmarks.session import end_session

    state = session.config.stash.get(SESSION, None)
    if state is None:
        return
    # -x / --maxfail stop the run early with TESTS_FAILED: the work after the stop was never done
    stopped = bool(session.shouldfail or session.shouldstop)
    attempted_all = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not stopped
    end_session(state, attempted_all, int(exitstatus))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    memo = getattr(reporter, "_keyboardinterrupt_memo", None)
    crash = getattr(memo, "reprcrash", None)
    # our lines replace pytest's report of an interrupt, or of our own pytest.exit (the run's problems say it)
    if memo is not None and (signals.received() or "rnn-bench: " in getattr(crash, "message", "")):
        reporter._keyboardinterrupt_memo = None


def _print_summary(config: pytest.Config) -> None:
    state = config.stash.get(SESSION, None)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if state is None or tr is None:
        return
    with signals.deferred():
        tr.section("rnn-bench comparison")
        for line in state.summary:
            tr.write_line(line)
        tr.write_line(f"run folder: {state.folder}" + (" (published as latest)" if state.published else ""))
        for problem in state.problems:
            tr.write_line(problem, yellow=True)
