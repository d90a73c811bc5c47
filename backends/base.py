"""The backend contract: every framework implements the same task behind these methods.

A backend subclasses `Backend` and fills in the underscored hooks; the public methods
validate input once here, so every backend rejects bad input with the same message.
The harness passes windows made once with `prepare` so the timed calls skip validation
and host-to-device copies.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from backends import DEVICES, REGISTRY
from backends.errors import BackendUnavailable, DeviceUnsupported
from backends.models import MODELS
from backends.task import TaskConfig

__all__ = [
    "Backend",
    "BackendUnavailable",
    "DeviceUnsupported",
    "Info",
    "Prepared",
    "check_weights",
    "check_window",
]


@dataclasses.dataclass(frozen=True)
class Info:
    """What the tables say about how a backend runs."""

    framework: str  # framework and version, e.g. "torch 2.13.0"
    kernel: str  # the code path, e.g. "ATen RNN, both biases trained"
    mode: str = ""  # the registry mode (filled in by load)
    gpu: str | None = None  # the GPU model on a cuda row
    compile: str = ""  # compiler and its settings where the mode compiles, e.g. "inductor, fullgraph"


class Prepared:
    """A window already converted to the backend's native array (on its device), validated once.
    It belongs to the backend that made it: another backend refuses it."""

    __slots__ = ("value", "shape", "owner", "role")

    def __init__(self, value: Any, shape: tuple[int, ...], owner: object = None, role: str = "x") -> None:
        self.value = value
        self.shape = shape
        self.owner = owner  # the backend that made it
        self.role = role


class Backend(abc.ABC):
    """One implementation of the task's RNN: canonical weights in, Adam steps on windows, state carried."""

    name: ClassVar[str]  # registry name, used as pytest id and table row
    # the cells (backends/models.py) this backend implements; another model is BackendUnavailable, a row
    # that says why, never a different cell under the same name
    models: ClassVar[tuple[str, ...]] = ("rnn",)
    parity_options: ClassVar[dict[str, Any]] = {}  # options under which the model is exactly the canonical one
    mode: str = ""  # the registry mode this instance runs in (set by backends.load)

    def __init__(self, config: TaskConfig, device: str = "cpu") -> None:
        if not isinstance(config, TaskConfig):
            raise TypeError(f"config must be a TaskConfig, got {type(config).__name__}")
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        if config.model not in self.models:
            raise BackendUnavailable(f"{self.name} has no {config.model} model (its models: {', '.join(self.models)})")
        # the registry says where a backend runs (an unregistered one, such as the harness's no-op, on the cpu)
        devices = REGISTRY[self.name].devices if self.name in REGISTRY else ("cpu",)
        if device not in devices:
            raise DeviceUnsupported(f"{self.name} runs on {', '.join(devices)} only, not {device}")
        self.config = config
        self.device = device

    # ---- public interface (used by the harness and the tests) ----

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load canonical weights; also zeroes the hidden state and restarts the optimizer."""
        self._set_weights(check_weights(weights, self.config))
        self.reset_state()

    def get_weights(self) -> dict[str, np.ndarray]:
        """The current weights in canonical layout, float32 copies."""
        return {k: np.array(v, dtype=np.float32) for k, v in self._get_weights().items()}

    def train_step(self, x: np.ndarray | Prepared, y: np.ndarray | Prepared) -> float:
        """One Adam step on one window (MSE over the window); returns the loss. Carries the hidden state."""
        # the timed path: windows this backend prepared were checked then (shapes follow from its config)
        if x.__class__ is Prepared and y.__class__ is Prepared and x.owner is self and y.owner is self:
            if x.role == "x" and y.role == "y":
                return self._train_step(x.value, y.value)
        return self._train_step(self._prepared(x, "x").value, self._prepared(y, "y").value)

    def predict(self, x: np.ndarray | Prepared) -> np.ndarray:
        """Forward only, no weight update; returns predictions (batch, seq_len, 1). Carries the hidden state."""
        return self._predict(self._prepared(x, "x").value)

    def timed_calls(self, op: str, windows: list[tuple[Prepared, Prepared]]) -> tuple[Callable[..., Any], list[tuple]]:
        """The hook behind `op` ("train_step" or "predict") and its native arguments, for a timing loop:
        the windows are checked here once, so the timed calls are the backend's own work only."""
        for x, y in windows:
            self._prepared(x, "x"), self._prepared(y, "y")
        if op == "train_step":
            return self._train_step, [(x.value, y.value) for x, y in windows]
        if op == "predict":
            return self._predict, [(x.value,) for x, _ in windows]
        raise ValueError(f"op must be 'train_step' or 'predict', got {op!r}")

    @abc.abstractmethod
    def reset_state(self) -> None:
        """Zero the carried hidden state."""

    def prepare(self, array: np.ndarray, role: str = "x") -> Prepared:
        """Validate a window (role 'x' input or 'y' target) and convert it to the native array once."""
        check_window(array, self.config, role)
        # converted from a copy of its own: some frameworks wrap the memory they are given (torch.from_numpy
        # on the CPU), and a prepared window must not change when the caller later changes its array
        own = np.array(array, dtype=np.float32, order="C", copy=True)
        return Prepared(self._to_native(own), array.shape, self, role)

    def _prepared(self, window: np.ndarray | Prepared, role: str) -> Prepared:
        if not isinstance(window, Prepared):
            return self.prepare(window, role)
        if window.owner is not self:
            raise ValueError(f"{role} was prepared by another backend instance; prepare it with this one")
        if window.role != role:
            raise ValueError(f"{role} was prepared as {window.role!r}; prepare it with role {role!r}")
        return window

    def param_count(self) -> int:
        """Trainable parameters (the canonical model has 1121 at hidden 32)."""
        return self.config.param_count

    @abc.abstractmethod
    def info(self) -> Info:
        """What the tables should say about how this backend runs (framework, kernel path, GPU, compiler)."""

    def synchronize(self) -> None:  # noqa: B027 - a no-op on the CPU is the right default
        """Wait until queued device work has finished (no-op on the CPU)."""

    def device_peak_bytes(self) -> int | None:
        """Peak GPU memory the framework's allocator has handed out in this process (None on the CPU)."""
        return None

    # ---- hooks a backend fills in ----

    @abc.abstractmethod
    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load validated canonical float32 weights and restart the optimizer."""

    @abc.abstractmethod
    def _get_weights(self) -> dict[str, np.ndarray]:
        """Current weights in canonical layout."""

    def _to_native(self, array: np.ndarray) -> Any:
        """Convert a validated float32 window to the framework's array on self.device."""
        return array

    @abc.abstractmethod
    def _train_step(self, x: Any, y: Any) -> float:
        """One Adam step on native arrays; returns the loss as a Python float."""

    @abc.abstractmethod
    def _predict(self, x: Any) -> np.ndarray:
        """Forward on a native array; returns a numpy float32 array."""


def check_window(array: Any, config: TaskConfig, role: str = "x") -> None:
    """Raise ValueError unless `array` is a finite float32 window of shape (batch, seq_len, 1).
    A masked array is refused: the frameworks would read the values under its mask, and which value a
    masked step should have is the caller's choice (`array.filled(value)`)."""
    if role not in ("x", "y"):
        raise ValueError(f"role must be 'x' or 'y', got {role!r}")
    if isinstance(array, np.ma.MaskedArray):
        raise ValueError(f"{role} is a numpy masked array; pass a plain array, e.g. {role}.filled(0.0)")
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{role} must be a numpy array, got {type(array).__name__}")
    features = config.input_size if role == "x" else 1
    expected = (config.batch_size, config.seq_len, features)
    if array.shape != expected:
        raise ValueError(f"{role} must have shape (batch, seq_len, features) = {expected}, got {array.shape}")
    if array.dtype != np.float32:
        raise ValueError(f"{role} must be float32, got {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{role} contains NaN or inf")


def check_weights(weights: Any, config: TaskConfig) -> dict[str, np.ndarray]:
    """Validate a canonical weights dict of the config's model; returns float32 C-contiguous copies the
    backend owns. Weights of another model are named as such (their keys or their shapes)."""
    names, model = config.weight_names, config.model
    if not isinstance(weights, dict):
        raise ValueError(f"{model} weights must be a dict with keys {', '.join(names)}, got {type(weights).__name__}")
    missing = [k for k in names if k not in weights]
    extra = sorted(str(k) for k in weights if k not in names)
    if missing or extra:
        raise ValueError(
            f"{model} weights keys must be exactly {', '.join(names)}; "
            f"missing: {missing or 'none'}, extra: {extra or 'none'}{_other_model(weights, config)}"
        )
    checked = {}
    for name, shape in config.weight_shapes.items():
        value = weights[name]
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            kind = getattr(value, "dtype", type(value).__name__)
            raise ValueError(f"weights[{name!r}] must be a float numpy array, got {kind}")
        if value.shape != shape:
            raise ValueError(
                f"weights[{name!r}] must have shape {shape} for the {model} model, got {value.shape}"
                f"{_other_model(weights, config)}"
            )
        # a copy the caller cannot change afterwards (some frameworks keep using the buffer they are
        # given), checked after the cast: 1e300 is finite in float64 but inf in float32
        with np.errstate(over="ignore"):
            copy = np.array(value, dtype=np.float32, order="C", copy=True)
        if not np.isfinite(copy).all():
            raise ValueError(f"weights[{name!r}] contains NaN or inf, or values beyond float32's range")
        checked[name] = copy
    return checked


def _other_model(weights: dict, config: TaskConfig) -> str:
    """' (these are gru weights)' when the keys and shapes are exactly another model's at the config's sizes."""
    for other in MODELS.values():
        shapes = other.weight_shapes(config.input_size, config.hidden_size)
        if other.name != config.model and set(weights) == set(shapes):
            if all(getattr(weights[k], "shape", None) == s for k, s in shapes.items()):
                return f" (these are {other.name} weights; the config's model is {config.model})"
    return ""
