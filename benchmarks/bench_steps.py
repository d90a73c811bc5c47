"""Steady-state step times: one train_step (forward, BPTT, Adam, state carried) and one predict.

Each is timed in `--repeats` blocks taken in turn across backends (see conftest.py). In repeat 0
the first call on a fresh backend (tracing, graph building, compilation) is timed on its own and
kept out of the statistics; every repeat then starts from the canonical weights, makes one untimed
call, runs the warm-up rounds and then `--rounds` timed rounds of one call.
"""

import dataclasses
import time

from backends.task import initial_weights
from benchmarks.conftest import cycling
from benchmarks.noop import NoopBackend


def test_train_step(benchmark, case, repeat, bench):
    backend, fresh = bench.load_for_repeat(case, "train_step", repeat)
    windows = bench.windows(backend)
    start = time.perf_counter()
    backend.train_step(*windows[0])  # returns a float, so the device has finished
    first = time.perf_counter() - start
    benchmark.group = "train_step"
    benchmark.extra_info.update(
        kind="train_step",
        backend=case[0],
        device=case[1],
        repeat=repeat,
        first_step_seconds=first if fresh else None,
        params=backend.param_count(),
        info=backend.info(),
        config=dataclasses.asdict(backend.config),
    )
    backend.synchronize()
    benchmark.pedantic(
        cycling(backend.train_step, windows[1:] + windows[:1]),
        rounds=bench.opts.rounds,
        warmup_rounds=bench.opts.warmup_rounds,
        iterations=1,
    )
    bench.keep_for_next_repeat(case, "train_step", repeat, backend)


def test_predict(benchmark, case, repeat, bench):
    backend, _ = bench.load_for_repeat(case, "predict", repeat)
    inputs = [(x,) for x, _ in bench.windows(backend)]
    backend.predict(*inputs[0])  # the first call (of a fresh backend) out of the statistics
    benchmark.group = "predict"
    benchmark.extra_info.update(kind="predict", backend=case[0], device=case[1], repeat=repeat)
    backend.synchronize()
    benchmark.pedantic(
        cycling(backend.predict, inputs),  # returns numpy: the copy to the host waits for the device
        rounds=bench.opts.rounds,
        warmup_rounds=bench.opts.warmup_rounds,
        iterations=1,
    )
    bench.keep_for_next_repeat(case, "predict", repeat, backend)


def test_harness_overhead(benchmark, bench):
    """A step that does nothing, through the same path: what the harness itself costs per timed call."""
    backend = NoopBackend(bench.opts.config)
    backend.set_weights(initial_weights(bench.opts.config))
    benchmark.group = "harness"
    benchmark.extra_info.update(kind="harness_overhead", backend="noop", device="cpu")
    benchmark.pedantic(
        cycling(backend.train_step, bench.windows(backend)),
        rounds=bench.opts.rounds,
        warmup_rounds=bench.opts.warmup_rounds,
        iterations=1,
    )
