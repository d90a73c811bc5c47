"""The task, framework-free: sizes and training settings, the canonical weights, and the task seam.

`TaskConfig` holds the model's sizes and Adam's settings. A `Task` says what the backends are
trained on and how the result is scored: its window stream, its held-out windows, its metric and
the labels plots use. The harness and the report ask the task (the report through what the run
recorded of it), so another task needs no edit in either. `SIN_TO_COS` is the seed's task:
window k of stream b covers t = linspace(k*pi, (k+1)*pi, seq_len) + b*pi/batch_size, the input is
sin(t), the target cos(t); stream 0 is exactly the seed's script.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np

WEIGHT_NAMES: tuple[str, ...] = ("W_xh", "W_hh", "b_h", "W_hq", "b_q")

# Upper bounds of the counts and sizes: beyond them a run would hang or exhaust memory rather than fail.
LIMITS: dict[str, int] = {
    "seq_len": 10_000,
    "input_size": 1,
    "hidden_size": 4096,
    "batch_size": 4096,
    "train_steps": 1_000_000,
    "eval_windows": 10_000,
}


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Sizes and training settings; defaults are the seed script's."""

    seq_len: int = 10  # time steps per window
    input_size: int = 1  # features per step (the task feeds sin(t) only)
    hidden_size: int = 32  # RNN hidden units
    batch_size: int = 1  # parallel streams, each with its own phase offset
    lr: float = 0.02  # Adam learning rate
    adam_eps: float = 1e-8  # Adam epsilon (PyTorch's default)
    train_steps: int = 300  # training windows, one Adam step each
    seed: int = 0  # seeds the initial weights
    eval_windows: int = 10  # held-out windows after training, state carried
    model: str = "rnn"  # the cell (backends/models.py): rnn, lstm or gru

    def __post_init__(self) -> None:
        # numbers become plain Python ints and floats (numpy scalars, Fractions): the frameworks get what
        # they expect, and configs compare and print the same whatever the caller built them from
        for field, limit in LIMITS.items():
            self._set(field, _plain_int(self, field, 1, limit, str(limit)))
        self._set("seed", _plain_int(self, "seed", 0, 2**32 - 1, "2**32 - 1"))
        for field in ("lr", "adam_eps"):
            self._set(field, _plain_float(self, field, 1e3))
        from backends.models import MODELS

        if not isinstance(self.model, str) or self.model not in MODELS:
            raise ValueError(f"TaskConfig.model must be one of {', '.join(MODELS)}, got {self.model!r:.40}")

    def _set(self, field: str, value: Any) -> None:
        object.__setattr__(self, field, value)  # frozen: only validation writes, once

    @property
    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical weight names and shapes of the config's model (backends/models.py); for the rnn:
        h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h), q_t = h_t W_hq + b_q."""
        from backends.models import MODELS

        return MODELS[self.model].weight_shapes(self.input_size, self.hidden_size)

    @property
    def weight_names(self) -> tuple[str, ...]:
        return tuple(self.weight_shapes)

    @property
    def param_count(self) -> int:
        """Parameters of the canonical model (single bias)."""
        return sum(math.prod(s) for s in self.weight_shapes.values())


def _plain_int(config: TaskConfig, field: str, low: int, high: int, shown: str) -> int:
    """An integral value (int or numpy integer, not a bool) as an int in [low, high]; ValueError otherwise."""
    value = getattr(config, field)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and low <= int(value) <= high:
        return int(value)
    raise ValueError(f"TaskConfig.{field} must be an int from {low} to {shown}, got {value!r:.40}")


def _plain_float(config: TaskConfig, field: str, high: float) -> float:
    """A real value (float, int, numpy scalar, Fraction; not a bool) as a float in (0, high]; ValueError
    otherwise. A float32 becomes its exact value (np.float32(0.02) is 0.0199999995...)."""
    value = getattr(config, field)
    plain = math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        try:
            plain = float(value)
        except OverflowError:  # an int or Fraction too large for a float
            pass
    if math.isfinite(plain) and 0 < plain <= high:
        return plain
    raise ValueError(f"TaskConfig.{field} must be a finite number in (0, {high:g}], got {value!r:.40}")


def initial_weights(config: TaskConfig) -> dict[str, np.ndarray]:
    """Canonical float32 weights from config.seed: U(-1/sqrt(hidden), 1/sqrt(hidden)), PyTorch's default."""
    rng = np.random.default_rng(config.seed)
    bound = 1.0 / math.sqrt(config.hidden_size)
    return {
        name: rng.uniform(-bound, bound, size=shape).astype(np.float32) for name, shape in config.weight_shapes.items()
    }


@dataclasses.dataclass(frozen=True)
class Metric:
    """The accuracy figure a task reports; lower is better."""

    name: str  # record and CSV name, e.g. "held_out_mse"
    label: str  # table header, e.g. "held-out MSE"
    about: str  # one line for the column legend


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Where a training run's outcome changes (`backends.training.outcome_of`), in the task's own units."""

    trivial: float  # the held-out metric of the trivial predictor: a run no better than this did not learn
    trivial_about: str  # what the trivial predictor is, in a few words
    metric_bound: float  # a held-out metric above this: the run diverged
    loss_bound: float  # a training loss (MSE over a window) above this: the run diverged

    def __post_init__(self) -> None:
        values = (self.trivial, self.metric_bound, self.loss_bound)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"Thresholds must be finite numbers, got {values!r:.80}")
        if not 0 < self.trivial < self.metric_bound or self.loss_bound <= 0:
            raise ValueError(f"Thresholds need 0 < trivial < metric_bound and loss_bound > 0, got {values!r:.80}")


class Task:
    """The seed's task: learn cos(t) from sin(t). Another task subclasses it and overrides `target`
    (and its labels, metric, trivial predictor and thresholds); the stream layout, protocol and scoring
    stay shared."""

    name = "sin-to-cos"
    metric = Metric("held_out_mse", "held-out MSE", "MSE of the predictions on the held-out windows")
    # Predicting 0 scores the mean of cos², 0.5 over whole periods (0.55 on the default 10-point windows,
    # whose two ends have cos² = 1, so 0.5 is slightly the stricter bar). Divergence: a held-out MSE above 4
    # (errors of 2 rms, twice the targets' range of ±1) or a window's loss above 1000 (errors of 30 rms).
    # Measured with the numpy oracle at the defaults (seeds 0-9): losses peak at 0.67-3.2 in the first steps,
    # held-out MSE 3e-5 to 0.085; transient spikes that recover stay under 1000 (lr 1: 510; hidden 1024: 123).
    thresholds = Thresholds(0.5, "predicting 0 everywhere", metric_bound=4.0, loss_bound=1000.0)
    input_label = "sin(t)"
    target_label = "cos(t)"
    axis_label = "t"

    def target(self, t: np.ndarray) -> np.ndarray:
        """The target at points t (float32)."""
        return np.cos(t)

    def source(self, t: np.ndarray) -> np.ndarray:
        """The input at points t (float32)."""
        return np.sin(t)

    def trivial_prediction(self, t: np.ndarray) -> np.ndarray:
        """What the trivial predictor of `thresholds` predicts at points t: here 0 everywhere."""
        return np.zeros_like(t)

    def times(self, config: TaskConfig, k: int) -> np.ndarray:
        """The points t of window k, float32 of shape (batch, seq_len)."""
        t = np.linspace(k * np.pi, (k + 1) * np.pi, config.seq_len, dtype=np.float32)
        offsets = (np.arange(config.batch_size, dtype=np.float32) * np.float32(np.pi / config.batch_size))[:, None]
        return t[None, :] + offsets

    def window(self, config: TaskConfig, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Input and target of window k, each float32 of shape (batch, seq_len, 1)."""
        t = self.times(config, k)
        return self.source(t).astype(np.float32)[..., None], self.target(t).astype(np.float32)[..., None]

    def train_windows(self, config: TaskConfig) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The training stream: windows 0 .. train_steps-1."""
        for k in range(config.train_steps):
            yield self.window(config, k)

    def held_out_indices(self, config: TaskConfig) -> range:
        """Indices of the held-out windows: the stream continues past training, state carried."""
        return range(config.train_steps, config.train_steps + config.eval_windows)

    def held_out_windows(self, config: TaskConfig) -> list[tuple[np.ndarray, np.ndarray]]:
        """Held-out windows, never trained on."""
        return [self.window(config, k) for k in self.held_out_indices(config)]

    def score(self, predictions: np.ndarray, targets: np.ndarray) -> float:
        """The metric over all held-out windows (float64 arithmetic)."""
        return float(np.mean((predictions.astype(np.float64) - targets) ** 2))

    def describe(self) -> dict[str, Any]:
        """What a run records of the task, so the report can label it without importing it."""
        return {
            "name": self.name,
            "metric": dataclasses.asdict(self.metric),
            "input_label": self.input_label,
            "target_label": self.target_label,
            "axis_label": self.axis_label,
            "thresholds": dataclasses.asdict(self.thresholds),
        }


SIN_TO_COS = Task()


# The seed task's functions, for code that needs no other task.
def times(config: TaskConfig, k: int) -> np.ndarray:
    """The points t of window k of the seed task."""
    return SIN_TO_COS.times(config, k)


def window(config: TaskConfig, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Input sin(t) and target cos(t) of window k, each float32 of shape (batch, seq_len, 1)."""
    return SIN_TO_COS.window(config, k)


def train_windows(config: TaskConfig) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The seed task's training stream."""
    return SIN_TO_COS.train_windows(config)


def eval_windows(config: TaskConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """The seed task's held-out windows."""
    return SIN_TO_COS.held_out_windows(config)
