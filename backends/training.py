"""The accuracy protocol, shared by the tests and the harness.

Train on windows 0 .. train_steps-1 (one Adam step each, state carried), then keep the
state and predict the next eval_windows windows with no weight update; the held-out MSE
is the mean squared error over those windows.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

from backends.base import Backend
from backends.task import eval_windows, train_windows


@dataclasses.dataclass
class TrainingResult:
    """What one training run produced."""

    losses: list[float]  # training loss per step, up to divergence
    held_out_mse: float  # NaN when diverged
    predictions: np.ndarray  # (eval_windows, batch, seq_len, 1) held-out predictions; empty when diverged
    train_seconds: float  # wall time of the training loop
    diverged: bool  # a loss or prediction became NaN/inf

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan


def run_training(backend: Backend, on_step: Callable[[int, float], None] | None = None) -> TrainingResult:
    """Train `backend` from its current weights with the protocol above."""
    config = backend.config
    windows = [(backend.prepare(x, "x"), backend.prepare(y, "y")) for x, y in train_windows(config)]
    losses: list[float] = []
    start = time.perf_counter()
    for step, (x, y) in enumerate(windows):
        loss = backend.train_step(x, y)
        losses.append(loss)
        if on_step is not None:
            on_step(step, loss)
        if not math.isfinite(loss):
            return TrainingResult(losses, math.nan, np.empty(0), time.perf_counter() - start, True)
    seconds = time.perf_counter() - start
    held_out = eval_windows(config)
    predictions = np.stack([backend.predict(x) for x, _ in held_out])
    targets = np.stack([y for _, y in held_out])
    mse = float(np.mean((predictions.astype(np.float64) - targets) ** 2))
    diverged = not math.isfinite(mse)
    return TrainingResult(losses, math.nan if diverged else mse, predictions, seconds, diverged)
