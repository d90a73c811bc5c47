"""The harness, plain Python: runs a plan's work, one unit at a time, each case in a worker process of its own,
and writes a record per measurement.

The parent (this module) holds the plan and the records; a case's worker (benchmarks/harness/worker.py)
loads only that case's framework, with that case's process settings, and runs every timing loop itself.
A worker that crashes or hangs costs its unit of work: the unit is recorded as failed with the cause, and
the next unit of that case starts a fresh worker. Every finished measurement is appended to the run's
records before the next one starts (see benchmarks/records.py). Nothing here knows pytest: the pytest
shell (conftest.py, benchmarks/bench_suite.py) and the sweep call `run` for each unit of work.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import backends
from backends.errors import BackendUnavailable, one_line
from backends.task import SIN_TO_COS, Task
from benchmarks import records
from benchmarks.harness import machine
from benchmarks.harness.workers import WorkerFailed, WorkerProcess
from benchmarks.names import size_parts
from benchmarks.options import Options
from benchmarks.plan import Plan, Work
from benchmarks.records import Case

FIRST_CALL_TIMEOUT_FACTOR = 4  # loading a framework or compiling a first step takes longer than a block
Lane = tuple[str, str, str, str]  # backend, mode, device, model: one worker serves a lane's sizes in turn


class Unavailable(Exception):
    """A case cannot run here (its framework or device is missing, or the sweep's budget says no)."""


class Failed(Exception):
    """A unit of work failed (recorded); the message says why in one line."""


class Policy:
    """What a plan's runner may decide as it goes (the sweep's budgets); by default: run everything."""

    def skip(self, work: Work) -> str:
        """Why `work` must not run ('' to run it); asked before every unit."""
        return ""

    def block_budget_s(self, work: Work) -> float | None:
        """Seconds a block's rounds may take (None: exactly --rounds)."""
        return None

    def observe(self, work: Work, record: Any, seconds: float) -> None:
        """What a unit produced (None when it failed) and the wall seconds it took."""


def lane_of(case: Case) -> Lane:
    return (case.backend, case.mode, case.device, case.model)


def worker_env(case: Case | None, opts: Options, caches: Path | None) -> dict[str, str]:
    """The environment of a case's worker: this process's (threads are in it), the run's fresh compile
    caches, the cores to run on, and what the case's mode needs before its framework loads."""
    env = dict(os.environ)
    # the same imports as here: a task or test backend defined in a module this process imported from a
    # path of its own (pytest puts tests/ on sys.path) must unpickle in the worker
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    if caches is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(caches / "inductor")
        env["TRITON_CACHE_DIR"] = str(caches / "triton")
        env["JAX_COMPILATION_CACHE_DIR"] = str(caches / "jax")
    if opts.cpu_affinity:
        env["RNN_BENCH_CPU_AFFINITY"] = ",".join(map(str, opts.cpu_affinity))
    if case is not None:
        env.update(backends.mode_env(case.backend, case.mode))
    return env


class Harness:
    """Runs the work of one plan into one records writer."""

    def __init__(
        self,
        opts: Options,
        plan: Plan,
        writer: records.Writer,
        task: Task = SIN_TO_COS,
        progress: Callable[[str], None] = print,
        caches: Path | None = None,
        policy: Policy | None = None,
        spawn: Callable[[str, dict[str, str], Path], Any] = WorkerProcess,
    ) -> None:
        self.opts, self.plan, self.writer, self.task, self.progress = opts, plan, writer, task, progress
        self.caches, self.policy = caches, policy or Policy()
        self.spawn = spawn  # makes a worker (name, environment, log file): a local process, or elsewhere
        self.logs = writer.path.parent / "logs"
        self.workers: dict[Lane, WorkerProcess] = {}
        self._ready: set[Case] = set()  # cases whose backend is loaded in their worker
        self._called: set[tuple[Case, str]] = set()  # (case, op) whose first call happened
        self._remaining: dict[Lane, int] = {}
        for w in plan.work:
            if w.case is not None:
                self._remaining[lane_of(w.case)] = self._remaining.get(lane_of(w.case), 0) + 1
        # per case, not per lane: a backend may run at one size and not at another (triton's hidden limit)
        self._unavailable: dict[Case, str] = {}
        self._skipped: set[Case] = set()
        self._loaded: set[Case] = set()
        self._held_out: set[str] = set()
        self._threads: list[dict[str, Any]] = []  # each worker's thread settings, for the last machine record
        self.measured_cases: set[Case] = set()  # cases with a step block or a training run recorded

    # ---- the run's first and last records ----

    def start(self, argv: list[str]) -> None:
        started = dt.datetime.now().isoformat(timespec="seconds")
        config = dataclasses.asdict(self.opts.config)
        values = self.opts.as_dict()
        if self.opts.command == "sweep":
            from benchmarks.plan import sizes

            values["sweep"] = True
            values["sizes"] = [records.size_of(*s) for s in sizes(self.opts)]
        self.writer.write(
            records.Start(
                records.SCHEMA, started, argv, values, self.task.describe(), config, cases=list(self.plan.cases)
            )
        )
        self.writer.write(machine.record())

    def finish(self, complete: bool, exit_status: int | None = None, note: str = "") -> None:
        self.close()
        self.writer.write(machine.record(self._threads))  # the thread settings in force in the workers
        finished = dt.datetime.now().isoformat(timespec="seconds")
        self.writer.write(records.Finish(finished, complete, exit_status, note))

    def close(self) -> None:
        """Stop every worker (idempotent)."""
        for lane in list(self.workers):
            self._stop(lane)

    # ---- work ----

    def run(self, work: Work) -> Any:
        """Do one unit of work and return its main record (a Block or Overhead, else None). Raises Unavailable
        when its case cannot run here and Failed when it failed (recorded, with the cause)."""
        if work.kind == "overhead":
            return self._overhead()
        case = work.case
        assert case is not None
        lane = lane_of(case)
        begin = time.perf_counter()
        record = None
        try:
            if case in self._unavailable:
                raise Unavailable(self._unavailable[case])
            reason = self.policy.skip(work)
            if reason:
                if case not in self._skipped and case not in self.measured_cases:
                    self._skipped.add(case)
                    self._write(records.Skipped(case, "over-budget", reason, "sweep"))
                raise Unavailable(reason)
            if work.kind == "block":
                record = self._block(work)
            elif work.kind == "training":
                self._training(case)
            elif work.kind == "memory":
                self._memory(case)
            else:
                raise ValueError(f"unknown work kind {work.kind!r}")
        except (Unavailable, Failed):
            raise
        except WorkerFailed as err:
            where = work.kind if work.kind != "block" else f"{work.op} block, repeat {work.repeat}"
            self._write(records.Skipped(case, "failed", str(err), where))
            if lane in self.workers and not self.workers[lane].alive():
                self._stop(lane)  # dead: the next unit of this case starts a fresh worker
            raise Failed(str(err)) from None
        finally:
            self.policy.observe(work, record, time.perf_counter() - begin)
            self._remaining[lane] -= 1
            if self._remaining[lane] <= 0:
                self._stop(lane)
        return record

    def _write(self, record: records.Record) -> None:
        self.writer.write(record)
        if isinstance(record, (records.Block, records.Training)):
            self.measured_cases.add(record.case)

    def _timeout(self, first: bool) -> float:
        return self.opts.worker_timeout * (FIRST_CALL_TIMEOUT_FACTOR if first else 1)

    def _request(self, case: Case, message: dict[str, Any], first: bool = False, on_message: Any = None) -> Any:
        worker = self._spawn(case)
        try:
            return worker.request(message, self._timeout(first), on_message)
        except BackendUnavailable as err:
            self._set_unavailable(case, str(err))
            raise Unavailable(str(err)) from None

    def _set_unavailable(self, case: Case, reason: str) -> None:
        if case not in self._unavailable:
            self._unavailable[case] = reason
            self._write(records.Skipped(case, "unavailable", reason))

    def _message(self, case: Case, request: str, **fields: Any) -> dict[str, Any]:
        config = dataclasses.asdict(self.opts.config)
        hidden, batch, seq_len = size_parts(case.size)
        config.update(hidden_size=hidden, batch_size=batch, seq_len=seq_len, model=case.model)
        entry = backends.entry(case.backend)
        return {
            "request": request,
            "entry": entry,
            "name": case.backend,
            "mode": case.mode,
            "device": case.device,
            "size": case.size,
            "config": config,
            "task": self.task,
            **fields,
        }

    def _spawn(self, case: Case) -> WorkerProcess:
        """The worker of the case's lane, started now if none is running."""
        lane = lane_of(case)
        if lane not in self.workers:
            model = "" if case.model == "rnn" else f"-{case.model}"
            log = self.logs / f"{case.backend}-{case.mode}-{case.device}{model}.log"
            self.workers[lane] = self.spawn("-".join(lane), worker_env(case, self.opts, self.caches), log)
        return self.workers[lane]

    def _stop(self, lane: Lane) -> None:
        worker = self.workers.pop(lane, None)
        if worker is not None:
            worker.close()

    def _prepare(self, first: Case) -> None:
        """Load every case of `first`'s size whose backend is not loaded yet, in their workers, as many at a time
        as there are cores (nothing is being timed now); each gets its Loaded record with its start-up time."""
        todo = [
            c
            for c in self.plan.cases
            if c.size == first.size
            and c.model == first.model  # the plan takes a model's cases at a time
            and c not in self._ready
            and c not in self._unavailable
            and self._remaining.get(lane_of(c), 0) > 0
            and (c == first or not self.policy.skip(Work("block", c, "train_step", 0)))
        ]
        at_once = max(1, min(len(todo), os.cpu_count() or 1))
        pending: list[tuple[Case, WorkerProcess, float]] = []
        while todo or pending:
            while todo and len(pending) < at_once:
                case = todo.pop(0)
                started = time.perf_counter()
                fresh = lane_of(case) not in self.workers
                worker = self._spawn(case)
                if fresh:
                    started = worker.started
                try:
                    worker.send(self._message(case, "prepare"))
                    pending.append((case, worker, started))
                except WorkerFailed as err:
                    self._prepare_failed(case, str(err))
            case, worker, started = pending.pop(0)
            try:
                reply = worker.receive(self._timeout(first=True))
                threads = worker.request({"request": "threads"}, self._timeout(first=False))
            except BackendUnavailable as err:
                self._set_unavailable(case, str(err))
                continue
            except WorkerFailed as err:
                self._prepare_failed(case, str(err))
                continue
            self._ready.add(case)
            self._threads.append({"worker": worker.name, **threads})
            if case not in self._loaded:
                self._loaded.add(case)
                startup = time.perf_counter() - started
                self.writer.write(records.Loaded(case, reply["info"], reply["params"], startup))

    def _prepare_failed(self, case: Case, reason: str) -> None:
        self._write(records.Skipped(case, "failed", reason, "worker start"))
        lane = lane_of(case)
        if lane in self.workers and not self.workers[lane].alive():
            self._stop(lane)

    def _block(self, work: Work) -> records.Block:
        case = work.case
        assert case is not None
        if case not in self._ready:
            self._prepare(case)
            if case in self._unavailable:
                raise Unavailable(self._unavailable[case])
            if case not in self._ready:
                raise Failed(f"{case.label}: its worker did not start (see the run's records)")
        first = (case, work.op) not in self._called
        keep = work.repeat < self.plan.repeats - 1
        message = self._message(
            case,
            "block",
            op=work.op,
            repeat=work.repeat,
            rounds=self.opts.rounds,
            warmup=self.opts.warmup_rounds,
            min_round_us=self.opts.min_round_us,
            budget_s=self.policy.block_budget_s(work),
            keep=keep,
        )
        said: dict[str, float] = {}  # the first call's time, written after the block (nothing runs beside it)
        try:
            reply = self._request(case, message, first=first, on_message=said.update)
        except WorkerFailed:
            self._ready.discard(case)
            raise
        finally:
            if "first_seconds" in said and work.op == "train_step" and work.repeat == 0:
                self._write(records.FirstStep(case, said["first_seconds"]))
        self._called.add((case, work.op))
        block = records.Block(case, work.op, work.repeat, reply["calls"], reply["seconds"])
        self._write(block)
        return block

    def _overhead(self) -> records.Overhead:
        """A step that does nothing, timed by the same loop in a worker: what the harness costs per timed call."""
        worker = self.spawn("overhead", worker_env(None, self.opts, self.caches), self.logs / "overhead.log")
        try:
            message = {
                "request": "overhead",
                "config": dataclasses.asdict(self.opts.config),
                "task": self.task,
                "rounds": self.opts.rounds,
                "warmup": self.opts.warmup_rounds,
                "min_round_us": self.opts.min_round_us,
            }
            reply = worker.request(message, self._timeout(first=True))
        except WorkerFailed as err:
            raise Failed(f"overhead probe: {err}") from None
        finally:
            worker.close()
        record = records.Overhead(reply["calls"], reply["seconds"])
        self._write(record)
        return record

    def _training(self, case: Case) -> None:
        if case.size not in self._held_out:
            self._held_out.add(case.size)
            hidden, batch, seq_len = size_parts(case.size)
            config = dataclasses.replace(
                self.opts.config, hidden_size=hidden, batch_size=batch, seq_len=seq_len, model=case.model
            )
            held_out = self.task.held_out_windows(config)
            t = [float(v) for k in self.task.held_out_indices(config) for v in self.task.times(config, k)[0]]
            target = [float(v) for _, y in held_out for v in y[0, :, 0]]
            self.writer.write(records.HeldOut(case.size, t, target))
        label = f"{case.backend} {case.mode} @{case.device}"
        metric = self.task.metric.label

        def on_message(message: dict[str, Any]) -> None:
            if "progress" in message:
                self.progress(f"  [accuracy] {label} {message['progress']}")
            elif "seed_result" in message:
                r = message["seed_result"]
                self._write(records.Training(case, **r))
                shown = (
                    f"diverged at step {r['diverged_step']}" if r["diverged_step"] is not None else f"{r['metric']:.4g}"
                )
                shown += f" ({r['outcome']})" if r.get("outcome") else ""
                seeds = f"seed {r['seed'] + 1}/{self.opts.seeds}"
                self.progress(f"  [accuracy] {label} {seeds}: {metric} {shown}, {r['seconds']:.2f} s")

        self._request(case, self._message(case, "training", seeds=self.opts.seeds), first=True, on_message=on_message)

    def _memory(self, case: Case) -> None:
        """The peak memory of the case's own worker (everything it loaded and ran for this case)."""
        if lane_of(case) not in self.workers:  # it died in an earlier unit: a fresh worker's peak is not the case's
            raise WorkerFailed("its worker failed earlier, so the peak of what it ran is lost")
        figures = self._request(case, self._message(case, "memory"))
        self._write(records.Memory(case, **figures))


def run_all(
    opts: Options,
    plan: Plan,
    writer: records.Writer,
    task: Task = SIN_TO_COS,
    progress: Callable[[str], None] = print,
    argv: list[str] | None = None,
    caches: Path | None = None,
    policy: Policy | None = None,
    spawn: Callable[[str, dict[str, str], Path], Any] = WorkerProcess,
) -> Harness:
    """Run a whole plan without pytest (the tests use this): start, every unit, finish."""
    harness = Harness(opts, plan, writer, task, progress, caches, policy, spawn)
    harness.start(list(sys.argv if argv is None else argv))
    complete = False
    try:
        for work in plan.work:
            try:
                harness.run(work)
            except Unavailable as err:
                progress(f"  [skip] {work.id}: {err}")
            except Failed as err:
                progress(f"  [failed] {work.id}: {one_line(err)}")
        complete = True
    finally:
        harness.finish(complete)
    return harness


__all__ = ["Failed", "Harness", "Policy", "Unavailable", "run_all"]
