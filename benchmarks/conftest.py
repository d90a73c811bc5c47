"""Fixtures of the benchmark files: one case per (backend, device), loaded or skipped with the reason."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import pytest

import backends
from backends import Backend, BackendUnavailable
from backends.base import DeviceUnsupported, Prepared
from backends.errors import one_line
from backends.task import initial_weights, train_windows
from benchmarks.options import BenchOptions
from benchmarks.session import OPTIONS, RUN


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    opts = metafunc.config.stash[OPTIONS]
    if "case" in metafunc.fixturenames:
        cases = [(b, d) for b in opts.backends for d in opts.devices]
        metafunc.parametrize("case", cases, ids=[f"{b}-{d}" for b, d in cases])
    if "repeat" in metafunc.fixturenames:
        metafunc.parametrize("repeat", range(opts.repeats), ids=[f"r{i}" for i in range(opts.repeats)])


# Run order: the overhead probe, then the step timings, then the training runs. The step timings
# go in repeats: every backend's block of rounds (registry order, train_step then predict), then
# every backend's next block, and so on. The machine's speed drifts over a run (on the 2-core VM,
# torch-rnn's median over consecutive blocks of 600 steps in one process went from 1.33 to 0.80 ms,
# with no framework loaded or unloaded in between), and taking the blocks in turn spreads that drift
# over all backends and shows it as the spread between repeats, instead of handing all of it to
# whichever backend was timed at a bad moment.
PHASES = {
    "test_harness_overhead": (0, 0),
    "test_train_step": (1, 0),
    "test_predict": (1, 1),
    "test_training_run": (2, 0),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order = {name: i for i, name in enumerate(backends.names())}

    def key(item: pytest.Item) -> tuple[int, int, int, str, int]:
        params = getattr(getattr(item, "callspec", None), "params", {})
        case = params.get("case", ("", ""))
        phase, within = PHASES.get(getattr(item, "originalname", item.name), (3, 0))
        return phase, params.get("repeat", 0), order.get(case[0], -1), case[1], within

    items.sort(key=key)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """A benchmark that raised is a bug: the table shows it as a failed row instead of dropping the row."""
    report = yield
    params = getattr(getattr(item, "callspec", None), "params", {})
    case = params.get("case")
    state = item.config.stash.get(RUN, None)
    if report.failed and case and state is not None and call.excinfo is not None:
        where = getattr(item, "originalname", item.name)
        if "repeat" in params and item.config.stash[OPTIONS].repeats > 1:
            where += f" (repeat {params['repeat']})"
        state.failed.setdefault(f"{case[0]}@{case[1]}", f"{where}: {one_line(call.excinfo.value)}")
    return report


TIMED = pytest.StashKey[dict[tuple[str, str, str], Backend]]()  # (backend, device, benchmark) -> its backend


class Bench:
    """What a benchmark needs from the session: options, loading, progress lines."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.opts: BenchOptions = config.stash[OPTIONS]

    def load_for_repeat(self, case: tuple[str, str], benchmark: str, repeat: int) -> tuple[Backend, bool]:
        """The backend a step benchmark times in this repeat, and whether it is fresh. Repeat 0 loads it
        (its first call is the first-call timing); a later repeat takes back the one an earlier repeat
        kept, reset to the canonical weights, so every repeat times the same steps and only the machine
        differs. Where none was kept (the earlier repeat failed) it loads a fresh one."""
        kept = self.config.stash.setdefault(TIMED, {})
        key = (*case, benchmark)
        fresh = repeat == 0 or key not in kept
        backend = self.load(case) if fresh else kept.pop(key)
        if not fresh:
            backend.set_weights(initial_weights(backend.config))  # also zeroes the state and restarts Adam
        return backend, fresh

    def keep_for_next_repeat(self, case: tuple[str, str], benchmark: str, repeat: int, backend: Backend) -> None:
        """Called once a repeat's timing has finished: the next repeat reuses this backend."""
        if repeat < self.opts.repeats - 1:
            self.config.stash.setdefault(TIMED, {})[(*case, benchmark)] = backend

    def load(self, case: tuple[str, str], seed: int = 0) -> Backend:
        """A fresh backend from the canonical weights of `seed`; skips (and records why) if unavailable."""
        name, device = case
        try:
            return backends.load(name, dataclasses.replace(self.opts.config, seed=seed), device)
        except DeviceUnsupported as err:
            pytest.skip(str(err))  # not a row at all: this backend is defined for other devices only
        except BackendUnavailable as err:
            state = self.config.stash.get(RUN, None)
            if state is not None:
                state.unavailable[f"{name}@{device}"] = str(err)
            pytest.skip(str(err))

    def windows(self, backend: Backend) -> list[tuple[Prepared, Prepared]]:
        """The training windows, converted once to the backend's arrays on its device."""
        return [(backend.prepare(x, "x"), backend.prepare(y, "y")) for x, y in train_windows(backend.config)]

    def progress(self, line: str) -> None:
        """Print a line now, even while pytest captures output."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
        else:
            reporter.write_line(line)


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> Bench:
    return Bench(request.config)


def cycling(fn: Callable[..., Any], args: list[tuple[Any, ...]]) -> Callable[[], Any]:
    """A no-argument call of fn over pre-made arguments, in turn; the harness overhead benchmark times this too."""
    it = itertools.cycle(args)

    def call() -> Any:
        return fn(*next(it))

    return call
