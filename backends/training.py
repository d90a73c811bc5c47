"""The accuracy protocol, shared by the tests and the harness, for any `Task`, and the three outcomes.

Train on the task's windows 0 .. train_steps-1 (one Adam step each, state carried), then keep
the state and predict the held-out windows with no weight update; the task scores those
predictions. Each run then has one of three outcomes, defined here once for every backend from
the thresholds the task declares (`Task.thresholds`):

- diverged: a training loss that is not finite or above the task's loss bound (training stops
  there), or a held-out metric that is not finite or above the task's metric bound (so a single
  step that throws the weights far off counts, although no later loss could show it);
- did-not-learn: a held-out metric no better than the task's trivial predictor's (for sin -> cos,
  predicting 0 everywhere), whatever the losses did;
- learned: otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backends.base import Backend
from backends.task import SIN_TO_COS, Task, Thresholds

OUTCOMES: tuple[str, ...] = ("learned", "did-not-learn", "diverged")


@dataclasses.dataclass
class TrainingResult:
    """What one training run produced."""

    losses: list[float]  # training loss per step, up to divergence
    metric: float  # the task's held-out metric; NaN when training stopped at a diverged loss
    predictions: np.ndarray  # (held-out windows, batch, seq_len, 1); empty when training stopped early
    train_seconds: float  # wall time of the training loop
    diverged_step: int | None  # the step (0-based) where the run diverged (the last for its metric); None if not
    outcome: str  # one of OUTCOMES (outcome_of)

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


def _thresholds(task: Task | Thresholds) -> Thresholds:
    return task if isinstance(task, Thresholds) else task.thresholds


def _beyond(value: float | None, bound: float) -> bool:
    """Not finite (None as records write it), or above the bound."""
    return value is None or not math.isfinite(value) or value > bound


def loss_diverged(loss: float | None, task: Task | Thresholds) -> bool:
    """Whether a training loss means the run has diverged."""
    return _beyond(loss, _thresholds(task).loss_bound)


def diverged_step(losses: Sequence[float | None], metric: float | None, task: Task | Thresholds) -> int | None:
    """Where a run diverged: the first loss beyond the bound, else the last step when the held-out metric
    is beyond its bound; None if it did not diverge."""
    thresholds = _thresholds(task)
    for step, loss in enumerate(losses):
        if loss_diverged(loss, thresholds):
            return step
    return max(len(losses) - 1, 0) if _beyond(metric, thresholds.metric_bound) else None


def outcome_of(losses: Sequence[float | None], metric: float | None, task: Task | Thresholds) -> str:
    """The run's outcome, one of OUTCOMES, from its losses and held-out metric (None: not finite). `task` is
    the task or its thresholds (`Thresholds(**start.task["thresholds"])` from a run's records)."""
    thresholds = _thresholds(task)
    if diverged_step(losses, metric, thresholds) is not None:
        return "diverged"
    if metric >= thresholds.trivial:
        return "did-not-learn"
    return "learned"


def prepared_windows(backend: Backend, task: Task = SIN_TO_COS) -> list[tuple[Any, Any]]:
    """The task's training windows converted once to the backend's arrays (on its device)."""
    return [(backend.prepare(x, "x"), backend.prepare(y, "y")) for x, y in task.train_windows(backend.config)]


def run_training(
    backend: Backend, task: Task = SIN_TO_COS, on_step: Callable[[int, float], None] | None = None
) -> TrainingResult:
    """Train `backend` from its current weights with the protocol above."""
    config = backend.config
    windows = prepared_windows(backend, task)
    losses: list[float] = []
    start = time.perf_counter()
    for step, (x, y) in enumerate(windows):
        loss = backend.train_step(x, y)
        losses.append(loss)
        if on_step is not None:
            on_step(step, loss)
        if loss_diverged(loss, task):  # no point going on: the weights are far off or not numbers
            return TrainingResult(losses, math.nan, np.empty(0), time.perf_counter() - start, step, "diverged")
    seconds = time.perf_counter() - start
    held_out = task.held_out_windows(config)
    predictions = np.stack([backend.predict(x) for x, _ in held_out])
    targets = np.stack([y for _, y in held_out])
    with np.errstate(all="ignore"):
        metric = task.score(predictions, targets)
    step = diverged_step(losses, metric, task)
    return TrainingResult(losses, metric, predictions, seconds, step, outcome_of(losses, metric, task))
