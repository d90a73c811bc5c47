"""The accuracy protocol, shared by the tests and the harness, for any `Task`.

Train on the task's windows 0 .. train_steps-1 (one Adam step each, state carried), then keep
the state and predict the held-out windows with no weight update; the task scores those
predictions. Divergence is defined here once, for every backend.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

from backends.base import Backend
from backends.task import SIN_TO_COS, Task

# A run has diverged when a loss is NaN/inf or exceeds this multiple of its first loss (at lr 10 every
# backend's loss reached 1e4-1e14 while staying finite), or when its metric is not finite.
DIVERGENCE_FACTOR = 1e3


@dataclasses.dataclass
class TrainingResult:
    """What one training run produced."""

    losses: list[float]  # training loss per step, up to divergence
    metric: float  # the task's held-out metric; NaN when diverged
    predictions: np.ndarray  # (held-out windows, batch, seq_len, 1); empty when diverged
    train_seconds: float  # wall time of the training loop
    diverged_step: int | None  # the step (0-based) where the run diverged; None if it did not

    @property
    def diverged(self) -> bool:
        return self.diverged_step is not None

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan

    @property
    def held_out_mse(self) -> float:
        """The seed task's name for its metric."""
        return self.metric


def diverged(loss: float, first_loss: float) -> bool:
    """Whether a training loss means the run has diverged."""
    return not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * max(first_loss, 1e-12)


def run_training(
    backend: Backend, task: Task = SIN_TO_COS, on_step: Callable[[int, float], None] | None = None
) -> TrainingResult:
    """Train `backend` from its current weights with the protocol above."""
    config = backend.config
    windows = [(backend.prepare(x, "x"), backend.prepare(y, "y")) for x, y in task.train_windows(config)]
    losses: list[float] = []
    start = time.perf_counter()
    for step, (x, y) in enumerate(windows):
        loss = backend.train_step(x, y)
        losses.append(loss)
        if on_step is not None:
            on_step(step, loss)
        if diverged(loss, losses[0]):
            return TrainingResult(losses, math.nan, np.empty(0), time.perf_counter() - start, step)
    seconds = time.perf_counter() - start
    held_out = task.held_out_windows(config)
    predictions = np.stack([backend.predict(x) for x, _ in held_out])
    targets = np.stack([y for _, y in held_out])
    with np.errstate(all="ignore"):
        metric = task.score(predictions, targets)
    if not math.isfinite(metric):
        return TrainingResult(losses, math.nan, predictions, seconds, len(losses) - 1)
    return TrainingResult(losses, metric, predictions, seconds, None)
