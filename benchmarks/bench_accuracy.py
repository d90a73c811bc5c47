"""Accuracy: a full training run per seed from that seed's canonical weights, then the held-out MSE.

Each round of this benchmark is one whole training run (first-call cost included), so its
statistics are the run's wall time over seeds. Accuracy, divergence, loss curves and the
backend's peak memory (from a child process) go into extra_info for the report.
"""

import dataclasses
import math
import time

import numpy as np

from backends.task import eval_indices, eval_windows, times
from backends.training import TrainingResult, run_training
from benchmarks.memory import FIELDS, measure_in_child

PROGRESS_EVERY_S = 10.0


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def test_training_run(benchmark, case, bench):
    probe = bench.load(case)  # skips here, with the reason, if the backend is unavailable
    params, info = probe.param_count(), probe.info()
    del probe
    seeds = list(range(bench.opts.seeds))
    pending = iter(seeds)
    results: list[TrainingResult] = []
    label = f"{case[0]}@{case[1]}"

    def setup():
        seed = next(pending)
        return (bench.load(case, seed), seed), {}

    def train(backend, seed):
        next_report = [time.perf_counter() + PROGRESS_EVERY_S]

        def on_step(step: int, loss: float) -> None:  # long runs say where they are; a clock read per step
            if time.perf_counter() >= next_report[0]:
                next_report[0] += PROGRESS_EVERY_S
                bench.progress(f"  [accuracy] {label} seed {seed + 1}/{len(seeds)}: step {step + 1}, loss {loss:.5f}")

        result = run_training(backend, on_step)
        results.append(result)
        mse = "diverged" if result.diverged else f"{result.held_out_mse:.5f}"
        bench.progress(
            f"  [accuracy] {label} seed {seed + 1}/{len(seeds)}: held-out MSE {mse}, "
            f"final loss {result.final_loss:.5f}, {result.train_seconds:.2f} s"
        )

    benchmark.group = "training_run"
    benchmark.pedantic(train, setup=setup, rounds=len(seeds), iterations=1, warmup_rounds=0)

    first = results[0]
    held_out = eval_windows(bench.opts.config)
    memory = dict.fromkeys(FIELDS)
    if bench.opts.memory:
        bench.progress(f"  [memory] {label}: child process")
        fields = dataclasses.asdict(bench.opts.config)
        memory = measure_in_child(case[0], case[1], fields)
    benchmark.extra_info.update(
        kind="training_run",
        backend=case[0],
        device=case[1],
        seeds=seeds,
        held_out_mse=[_finite_or_none(r.held_out_mse) for r in results],
        final_loss=[_finite_or_none(r.final_loss) for r in results],
        diverged=[r.diverged for r in results],
        train_seconds=[r.train_seconds for r in results],
        loss_curves=[[_finite_or_none(v) for v in r.losses] for r in results],
        held_out={
            "t": np.concatenate([times(bench.opts.config, k)[0] for k in eval_indices(bench.opts.config)]).tolist(),
            "target": np.concatenate([y[0, :, 0] for _, y in held_out]).tolist(),
            "prediction": None if first.diverged else first.predictions[:, 0, :, 0].reshape(-1).tolist(),
        },
        params=params,
        info=info,
        **memory,
    )
