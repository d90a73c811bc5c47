"""The harness, plain Python: runs a plan's work, one unit at a time, and writes a record per measurement.

It loads backends, times step blocks, trains, and probes memory in child processes. Every finished
measurement is appended to the run's records before the next one starts (see benchmarks/records.py).
Nothing here knows pytest: the pytest shell (conftest.py, benchmarks/bench_suite.py) calls `run`
for each unit of work and passes a timer that goes through pytest-benchmark.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import backends
from backends import threads
from backends.base import Backend, Prepared
from backends.errors import BackendUnavailable, one_line
from backends.task import SIN_TO_COS, Task, initial_weights
from backends.training import run_training
from benchmarks import records
from benchmarks.harness import machine, memory
from benchmarks.harness.noop import NoopBackend
from benchmarks.harness.timing import Timer, calls_per_round, plain_timer, rounds_of
from benchmarks.options import Options
from benchmarks.plan import Plan, Work
from benchmarks.records import Case

PROGRESS_EVERY_S = 10.0


class Unavailable(Exception):
    """A case cannot run here (its framework or device is missing); recorded, and the shell skips it."""


def _finite_or_none(value: float) -> float | None:
    return float(value) if value == value and abs(value) != float("inf") else None


class Harness:
    """Runs the work of one plan into one records writer."""

    def __init__(
        self,
        opts: Options,
        plan: Plan,
        writer: records.Writer,
        task: Task = SIN_TO_COS,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.opts, self.plan, self.writer, self.task, self.progress = opts, plan, writer, task, progress
        self._kept: dict[tuple[Case, str], Backend] = {}  # a backend kept for the next repeat of its block
        self._calls: dict[tuple[Case, str], int] = {}  # calls per round, fixed in repeat 0
        self._unavailable: dict[Case, str] = {}
        self._loaded: set[Case] = set()
        self._held_out: set[str] = set()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._probes: dict[Case, concurrent.futures.Future[dict[str, Any]]] | None = None
        self.measured_cases: set[Case] = set()  # cases with a step block or a training run recorded

    # ---- the run's first and last records ----

    def start(self, argv: list[str]) -> None:
        started = dt.datetime.now().isoformat(timespec="seconds")
        config = dataclasses.asdict(self.opts.config)
        self.writer.write(
            records.Start(records.SCHEMA, started, argv, self.opts.as_dict(), self.task.describe(), config)
        )
        self.writer.write(machine.record())

    def finish(self, complete: bool, exit_status: int | None = None, note: str = "") -> None:
        self._kept.clear()
        if self._pool is not None:  # probes no unit of work waited for (a run cut short) are not waited for
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.writer.write(machine.record())  # again: the thread settings in force once frameworks loaded
        finished = dt.datetime.now().isoformat(timespec="seconds")
        self.writer.write(records.Finish(finished, complete, exit_status, note))

    # ---- work ----

    def run(self, work: Work, timer: Timer = plain_timer) -> None:
        """Do one unit of work. Raises Unavailable when its case cannot run here; any other error is
        recorded as a failed measurement and raised again."""
        try:
            if work.kind == "overhead":
                self._overhead(timer)
            elif work.case in self._unavailable:
                raise Unavailable(self._unavailable[work.case])
            elif work.kind == "block":
                self._block(work, timer)
            elif work.kind == "training":
                self._training(work.case)
            elif work.kind == "memory":
                self._memory(work.case)
            else:
                raise ValueError(f"unknown work kind {work.kind!r}")
        except Unavailable:
            raise
        except BaseException as err:
            if work.case is not None:
                self._kept.pop((work.case, work.op), None)  # its state is unknown now: the next repeat loads afresh
                if isinstance(err, Exception):
                    where = work.kind if work.kind != "block" else f"{work.op} block, repeat {work.repeat}"
                    self._write(records.Skipped(work.case, "failed", one_line(err), where))
            raise

    def _write(self, record: records.Record) -> None:
        self.writer.write(record)
        if isinstance(record, (records.Block, records.Training)):
            self.measured_cases.add(record.case)

    def load(self, case: Case, seed: int = 0) -> Backend:
        """A fresh backend for `case` from the canonical weights of `seed`; Unavailable if it cannot run."""
        config = dataclasses.replace(self.opts.config, seed=seed)
        try:
            backend = backends.load(case.backend, config, case.device, mode=case.mode)
        except BackendUnavailable as err:
            self._unavailable[case] = str(err)
            self._write(records.Skipped(case, "unavailable", str(err)))
            raise Unavailable(str(err)) from err
        threads.enforce()  # a framework may have started native pools of its own
        if case not in self._loaded:
            info = dataclasses.asdict(backend.info())
            self.writer.write(records.Loaded(case, info, backend.param_count()))
            self._loaded.add(case)
        return backend

    def _windows(self, backend: Backend) -> list[tuple[Prepared, Prepared]]:
        """The training windows as the backend's arrays on its device, converted before timing."""
        return [(backend.prepare(x, "x"), backend.prepare(y, "y")) for x, y in self.task.train_windows(backend.config)]

    def _block(self, work: Work, timer: Timer) -> None:
        case, op = work.case, work.op
        kept = self._kept.pop((case, op), None)
        backend = kept or self.load(case)
        if kept is not None:
            backend.set_weights(initial_weights(backend.config))  # also zeroes the state and restarts Adam
        fn, args = backend.timed_calls(op, self._windows(backend))
        args = args[1:] + args[:1]
        start = time.perf_counter()
        fn(*args[-1])  # the first call; a loss or numpy result means the device has finished
        first = time.perf_counter() - start
        if kept is None and op == "train_step" and work.repeat == 0:
            self._write(records.FirstStep(case, first))
        key = (case, op)
        if key not in self._calls:
            self._calls[key] = calls_per_round(fn, args, self.opts.min_round_us * 1e-6)
        backend.synchronize()
        run_round = rounds_of(fn, args, self._calls[key])
        seconds = timer(run_round, self.opts.rounds, self.opts.warmup_rounds, self._calls[key])
        self._write(records.Block(case, op, work.repeat, self._calls[key], seconds))
        if work.repeat < self.plan.repeats - 1:
            self._kept[key] = backend

    def _overhead(self, timer: Timer) -> None:
        """A step that does nothing, through the same path: what the harness itself costs per timed call."""
        backend = NoopBackend(self.opts.config)
        backend.set_weights(initial_weights(self.opts.config))
        fn, args = backend.timed_calls("train_step", self._windows(backend))
        calls = calls_per_round(fn, args, self.opts.min_round_us * 1e-6)
        seconds = timer(rounds_of(fn, args, calls), self.opts.rounds, self.opts.warmup_rounds, calls)
        self._write(records.Overhead(calls, seconds))

    def _training(self, case: Case) -> None:
        config = self.opts.config
        size = case.size
        if size not in self._held_out:
            self._held_out.add(size)
            held_out = self.task.held_out_windows(config)
            t = [float(v) for k in self.task.held_out_indices(config) for v in self.task.times(config, k)[0]]
            target = [float(v) for _, y in held_out for v in y[0, :, 0]]
            self.writer.write(records.HeldOut(size, t, target))
        for seed in range(self.opts.seeds):
            backend = self.load(case, seed)
            label = f"{case.backend} {case.mode} @{case.device} seed {seed + 1}/{self.opts.seeds}"
            next_report = [time.perf_counter() + PROGRESS_EVERY_S]

            def on_step(step: int, loss: float, label: str = label, next_report: list[float] = next_report) -> None:
                if time.perf_counter() >= next_report[0]:  # long runs say where they are
                    next_report[0] += PROGRESS_EVERY_S
                    self.progress(f"  [accuracy] {label}: step {step + 1}, loss {loss:.5g}")

            result = run_training(backend, self.task, on_step)
            predictions = None if result.diverged else [float(v) for v in result.predictions[:, 0, :, 0].reshape(-1)]
            losses = [_finite_or_none(v) for v in result.losses]
            metric = _finite_or_none(result.metric)
            self._write(
                records.Training(case, seed, losses, metric, result.diverged_step, result.train_seconds, predictions)
            )
            shown = f"diverged at step {result.diverged_step}" if result.diverged else f"{result.metric:.4g}"
            self.progress(f"  [accuracy] {label}: {self.task.metric.label} {shown}, {result.train_seconds:.2f} s")
            del backend

    def _memory(self, case: Case) -> None:
        """The peak memory of `case`. The children of every memory probe in the plan start together, as
        many at a time as there are cores (a child's own peak does not depend on its neighbours, and the
        probes come after every timing); each unit of work waits for its own child."""
        if self._probes is None:
            config = dataclasses.asdict(self.opts.config)
            cases = [w.case for w in self.plan.work if w.kind == "memory" and w.case not in self._unavailable]
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
            self._probes = {c: self._pool.submit(memory.measure_in_child, c, config) for c in cases}
        if case not in self._probes:
            self._probes[case] = self._pool.submit(memory.measure_in_child, case, dataclasses.asdict(self.opts.config))
        self.progress(f"  [memory] {case.backend} {case.mode} @{case.device}: child process")
        figures = self._probes.pop(case).result()
        self._write(records.Memory(case, **figures))


def run_all(
    opts: Options,
    plan: Plan,
    writer: records.Writer,
    task: Task = SIN_TO_COS,
    progress: Callable[[str], None] = print,
    argv: list[str] | None = None,
) -> Harness:
    """Run a whole plan without pytest (the sweep and the tests use this): start, every unit, finish."""
    harness = Harness(opts, plan, writer, task, progress)
    harness.start(list(sys.argv if argv is None else argv))
    complete = False
    try:
        for work in plan.work:
            try:
                harness.run(work)
            except Unavailable as err:
                progress(f"  [skip] {work.id}: {err}")
            except Exception as err:
                progress(f"  [failed] {work.id}: {one_line(err)}")
        complete = True
    finally:
        harness.finish(complete)
    return harness


__all__ = ["Harness", "Unavailable", "run_all"]
