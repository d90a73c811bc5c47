"""The seed's task, framework-free: config, windows, initial weights, evaluation protocol.

Window k of stream b covers t = linspace(k*pi, (k+1)*pi, seq_len) + b*pi/batch_size;
the input is sin(t), the target cos(t). Stream 0 is exactly the seed's script.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np

WEIGHT_NAMES: tuple[str, ...] = ("W_xh", "W_hh", "b_h", "W_hq", "b_q")


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
        for field in ("seq_len", "input_size", "hidden_size", "batch_size", "train_steps", "eval_windows"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TaskConfig.{field} must be a positive int, got {value!r}")
        if self.input_size != 1:
            raise ValueError(f"TaskConfig.input_size must be 1 (the task feeds sin(t) only), got {self.input_size!r}")
        for field in ("lr", "adam_eps"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"TaskConfig.{field} must be a finite number > 0, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"TaskConfig.seed must be a non-negative int, got {self.seed!r}")

    @property
    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical weight shapes, for h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h), q_t = h_t W_hq + b_q."""
        i, h = self.input_size, self.hidden_size
        return {"W_xh": (i, h), "W_hh": (h, h), "b_h": (h,), "W_hq": (h, 1), "b_q": (1,)}

    @property
    def param_count(self) -> int:
        """Parameters of the canonical model (single bias)."""
        return sum(math.prod(s) for s in self.weight_shapes.values())


def times(config: TaskConfig, k: int) -> np.ndarray:
    """The points t of window k, float32 of shape (batch, seq_len)."""
    t = np.linspace(k * np.pi, (k + 1) * np.pi, config.seq_len, dtype=np.float32)
    offsets = (np.arange(config.batch_size, dtype=np.float32) * np.float32(np.pi / config.batch_size))[:, None]
    return t[None, :] + offsets


def window(config: TaskConfig, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Input sin(t) and target cos(t) of window k, each float32 of shape (batch, seq_len, 1)."""
    t = times(config, k)
    return np.sin(t)[..., None], np.cos(t)[..., None]


def train_windows(config: TaskConfig) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The training stream: windows 0 .. train_steps-1."""
    for k in range(config.train_steps):
        yield window(config, k)


def eval_indices(config: TaskConfig) -> range:
    """Indices of the held-out windows: the stream continues past training."""
    return range(config.train_steps, config.train_steps + config.eval_windows)


def eval_windows(config: TaskConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Held-out windows, never trained on."""
    return [window(config, k) for k in eval_indices(config)]


def initial_weights(config: TaskConfig) -> dict[str, np.ndarray]:
    """Canonical float32 weights from config.seed: U(-1/sqrt(hidden), 1/sqrt(hidden)), PyTorch's default."""
    rng = np.random.default_rng(config.seed)
    bound = 1.0 / math.sqrt(config.hidden_size)
    return {
        name: rng.uniform(-bound, bound, size=shape).astype(np.float32) for name, shape in config.weight_shapes.items()
    }
