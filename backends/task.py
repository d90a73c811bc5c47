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

    def __post_init__(self) -> None:
        for field, limit in LIMITS.items():
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise ValueError(f"TaskConfig.{field} must be an int from 1 to {limit}, got {value!r}")
        for field in ("lr", "adam_eps"):
            value = getattr(self, field)
            try:
                ok = not isinstance(value, bool) and math.isfinite(value) and 0 < value <= 1e3
            except (TypeError, OverflowError):  # a string, or an int too large for a float
                ok = False
            if not ok:
                raise ValueError(f"TaskConfig.{field} must be a finite number in (0, 1000], got {value!r:.40}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ValueError(f"TaskConfig.seed must be an int from 0 to 2**32 - 1, got {self.seed!r:.40}")

    @property
    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical weight shapes, for h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h), q_t = h_t W_hq + b_q."""
        i, h = self.input_size, self.hidden_size
        return {"W_xh": (i, h), "W_hh": (h, h), "b_h": (h,), "W_hq": (h, 1), "b_q": (1,)}

    @property
    def param_count(self) -> int:
        """Parameters of the canonical model (single bias)."""
        return sum(math.prod(s) for s in self.weight_shapes.values())


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


class Task:
    """The seed's task: learn cos(t) from sin(t). Another task subclasses it and overrides `target`
    (and its labels and metric); the stream layout, protocol and scoring stay shared."""

    name = "sin-to-cos"
    metric = Metric("held_out_mse", "held-out MSE", "MSE of the predictions on the held-out windows")
    input_label = "sin(t)"
    target_label = "cos(t)"
    axis_label = "t"

    def target(self, t: np.ndarray) -> np.ndarray:
        """The target at points t (float32)."""
        return np.cos(t)

    def source(self, t: np.ndarray) -> np.ndarray:
        """The input at points t (float32)."""
        return np.sin(t)

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
