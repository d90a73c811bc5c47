"""The worker: one case's framework in a process of its own (`python -m benchmarks.harness.worker IN OUT`).

The parent (benchmarks/harness/workers.py) starts it with the case's environment already set (threads,
compile caches, the mode's own variables), sends requests over a pipe and reads the replies. Every timing
loop runs here, so no message crosses the pipe inside a timed block. A crash here ends this process only;
the parent records it and goes on. Output of the frameworks goes to the case's log file (the parent opens
it as this process's stdout and stderr).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

if __name__ == "__main__":  # before numpy or any framework loads: cores first, then nothing else can race it
    _cores = os.environ.get("RNN_BENCH_CPU_AFFINITY")
    if _cores:
        os.sched_setaffinity(0, {int(c) for c in _cores.split(",")})

import backends  # noqa: E402
from backends import threads  # noqa: E402
from backends.errors import BackendUnavailable, one_line  # noqa: E402
from backends.training import prepared_windows  # noqa: E402

PROGRESS_EVERY_S = 10.0
REQUESTS = ("prepare", "block", "overhead", "training", "memory", "threads")
WARMUP_SHARE = 0.25  # with a time budget, warm-up rounds stop after this share of it


class Worker:
    """Holds the case's loaded backends between requests (one per op, kept across repeats)."""

    def __init__(self, reply: Callable[[dict[str, Any]], None]) -> None:
        self.reply = reply
        self.kept: dict[tuple[str, str], Any] = {}  # (size, op) -> backend
        self.fresh: dict[str, Any] = {}  # size -> a backend loaded ahead, not yet called
        self.calls: dict[tuple[str, str], int] = {}  # (size, op) -> calls per round, fixed in repeat 0
        self.last: list[Any] = []
        self.baseline_rss = _rss_bytes()

    # ---- requests ----

    def load(self, entry: Any, name: str, mode: str, device: str, config: dict[str, Any], seed: int = 0) -> Any:
        """A fresh backend from the canonical weights of `seed`."""
        from backends.task import TaskConfig

        if backends.REGISTRY.get(name) != entry:  # a backend registered by the caller only (tests)
            backends.REGISTRY[name] = entry
        backend = backends.load(name, dataclasses.replace(TaskConfig(**config), seed=seed), device, mode=mode)
        threads.enforce()  # a framework may have started native pools of its own
        return backend

    def prepare(self, req: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        backend = self.load(req["entry"], req["name"], req["mode"], req["device"], req["config"])
        self.fresh[req["size"]] = backend
        return {
            "info": dataclasses.asdict(backend.info()),
            "params": backend.param_count(),
            "load_seconds": time.perf_counter() - start,
            "pid": os.getpid(),
        }

    def block(self, req: dict[str, Any]) -> dict[str, Any]:
        from backends.task import initial_weights

        key = (req["size"], req["op"])
        backend = self.kept.pop(key, None)
        fresh = backend is None
        if fresh:
            backend = self.fresh.pop(req["size"], None) or self.load(
                req["entry"], req["name"], req["mode"], req["device"], req["config"]
            )
        else:
            backend.set_weights(initial_weights(backend.config))  # also zeroes the state and restarts Adam
        fn, args = backend.timed_calls(req["op"], prepared_windows(backend, req["task"]))
        args = args[1:] + args[:1]
        start = time.perf_counter()
        fn(*args[-1])  # the first call; a loss or numpy result means the device has finished
        first = time.perf_counter() - start
        if fresh:  # said now, before the timing: the parent keeps it even if the block fails later
            self.reply({"first_seconds": first})
        if key not in self.calls:
            self.calls[key] = calls_per_round(fn, args, req["min_round_us"] * 1e-6)
        calls = self.calls[key]
        backend.synchronize()
        seconds, elapsed = time_rounds(
            rounds_of(fn, args, calls), req["rounds"], req["warmup"], calls, req.get("budget_s")
        )
        if req["keep"]:
            self.kept[key] = backend
        return {"calls": calls, "seconds": seconds, "elapsed": elapsed}

    def overhead(self, req: dict[str, Any]) -> dict[str, Any]:
        from backends.task import TaskConfig, initial_weights
        from benchmarks.harness.noop import NoopBackend

        config = TaskConfig(**req["config"])
        backend = NoopBackend(config)
        backend.set_weights(initial_weights(config))
        fn, args = backend.timed_calls("train_step", prepared_windows(backend, req["task"]))
        calls = calls_per_round(fn, args, req["min_round_us"] * 1e-6)
        seconds, _ = time_rounds(rounds_of(fn, args, calls), req["rounds"], req["warmup"], calls, None)
        return {"calls": calls, "seconds": seconds}

    def training(self, req: dict[str, Any]) -> dict[str, Any]:
        """Train every seed, one reply message per seed as it finishes (the parent records each at once)."""
        from backends.training import run_training

        self.kept.clear()  # the timing backends are done with: their memory goes before training
        self.fresh.clear()
        for seed in range(req["seeds"]):
            backend = self.load(req["entry"], req["name"], req["mode"], req["device"], req["config"], seed)
            label = f"seed {seed + 1}/{req['seeds']}"
            next_report = [time.perf_counter() + PROGRESS_EVERY_S]

            def on_step(step: int, loss: float, label: str = label, next_report: list[float] = next_report) -> None:
                if time.perf_counter() >= next_report[0]:  # long runs say where they are
                    next_report[0] += PROGRESS_EVERY_S
                    self.reply({"progress": f"{label}: step {step + 1}, loss {loss:.5g}"})

            result = run_training(backend, req["task"], on_step)
            predictions = None if result.diverged else [float(v) for v in result.predictions[:, 0, :, 0].reshape(-1)]
            self.reply(
                {
                    "seed_result": {
                        "seed": seed,
                        "losses": [_finite_or_none(v) for v in result.losses],
                        "metric": None if result.diverged else _finite_or_none(result.metric),
                        "diverged_step": result.diverged_step,
                        "seconds": result.train_seconds,
                        "predictions": predictions,
                        "outcome": result.outcome,
                    }
                }
            )
            self.last = [backend]  # kept for the memory request's device figure
        return {}

    def memory(self, req: dict[str, Any]) -> dict[str, Any]:
        """This process's own peak: everything the case did here (loading, timing, training)."""
        gpu = None
        for backend in [*self.kept.values(), *self.fresh.values(), *self.last]:
            gpu = backend.device_peak_bytes()
            break
        return {"peak_rss_bytes": _peak_rss_bytes(), "baseline_rss_bytes": self.baseline_rss, "gpu_peak_bytes": gpu}

    def threads(self, req: dict[str, Any]) -> dict[str, Any]:
        from benchmarks.harness.machine import native_thread_pools

        return {**threads.settings(), "native_pools": native_thread_pools()}

    def at_size(self, size: str) -> None:
        """Forget the backends of other sizes: the plan takes sizes one after another."""
        self.kept = {k: v for k, v in self.kept.items() if k[0] == size}
        self.fresh = {k: v for k, v in self.fresh.items() if k == size}


# ---- timing loops (plain Python; the overhead probe measures what they cost per call) ----


def rounds_of(fn: Callable[..., Any], args: list[tuple[Any, ...]], calls: int) -> Callable[[], None]:
    """A round: `calls` calls of fn over pre-made arguments, taken in turn across rounds."""
    it = itertools.cycle(args)
    islice = itertools.islice

    def run_round() -> None:
        for a in islice(it, calls):
            fn(*a)

    return run_round


MAX_CALLS_PER_ROUND = 1000


def calls_per_round(fn: Callable[..., Any], args: list[tuple[Any, ...]], min_round_s: float) -> int:
    """How many calls make a round last about `min_round_s`, from a few calls timed now."""
    if min_round_s <= 0:
        return 1
    run_round = rounds_of(fn, args, 3)
    start = time.perf_counter()
    run_round()
    per_call = max((time.perf_counter() - start) / 3, 1e-9)
    return max(1, min(MAX_CALLS_PER_ROUND, math.ceil(min_round_s / per_call)))


def time_rounds(
    run_round: Callable[[], Any], rounds: int, warmup: int, calls: int, budget_s: float | None, min_rounds: int = 2
) -> tuple[list[float], float]:
    """Seconds per call of each timed round, and the block's seconds in all (warm-up included). With a
    budget, the rounds fit it: at least `min_rounds` (one when a round alone is over it), at most `rounds`;
    warm-up stops after a quarter of it."""
    clock = time.perf_counter
    begin = clock()
    for done in range(warmup):
        if budget_s is not None and done and clock() - begin >= budget_s * WARMUP_SHARE:
            break
        run_round()
    out: list[float] = []
    start = clock()
    while len(out) < rounds:
        if budget_s is not None and out and clock() - start >= budget_s:
            if len(out) >= min_rounds or out[0] * calls >= budget_s:
                break
        t0 = clock()
        run_round()
        out.append((clock() - t0) / calls)
    return out, clock() - begin


def _finite_or_none(value: float) -> float | None:
    return float(value) if value == value and abs(value) != float("inf") else None


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """This process's peak RSS (VmHWM; not ru_maxrss, which survives fork+exec from the parent)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def serve(inbox: Connection, outbox: Connection) -> None:
    """Answer requests until told to exit or the parent goes away."""
    worker = Worker(outbox.send)
    while True:
        try:
            req = inbox.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        name = req.get("request")
        if name == "exit":
            return
        if name not in REQUESTS:
            outbox.send({"error": f"unknown request {name!r}; known: {', '.join(REQUESTS)}"})
            continue
        try:
            if "size" in req:
                worker.at_size(req["size"])
            result = getattr(worker, name)(req)
            outbox.send({"done": result})
        except BackendUnavailable as err:
            outbox.send({"unavailable": str(err)})
        except Exception as err:
            outbox.send({"error": one_line(err)})
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
