"""`keras-torch`: Keras on PyTorch, the same model as `keras-simplernn` (Keras on TensorFlow):
`SimpleRNN(stateful=True)` + `Dense(1)`, compiled with Adam and "mse" (see backends/_keras_common.py).
Needs KERAS_BACKEND=torch before Keras is imported, which its registry mode declares.

Mode: `train_on_batch`, the code most Keras users write. On PyTorch `compile`'s jit_compile="auto" means
eager: the layer runs as a Python loop over the time steps (keras/src/backend/torch/rnn.py), then
`loss.backward()` and Keras's Adam. Keras's fast path here would be `compile(jit_compile=True)`, which
wraps the train step in `torch.compile`; it is not a mode: on the 2-core VM its first call took 84 s
(15 graphs, 21 graph breaks in Keras's own code, Dynamo's recompile limit reached) and the steps after it
were no faster than eager, while each new size pays that compile again.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from backends._keras_common import KerasModel, check_backend, require_backend

require_backend("torch")

# isort: split
import torch  # noqa: E402 - before keras, so a missing PyTorch is reported as such, not as a Keras error

# isort: split
import keras  # noqa: E402

from backends._torch_common import apply_threads  # noqa: E402
from backends.base import Backend, BackendUnavailable, Info  # noqa: E402
from backends.task import TaskConfig  # noqa: E402

check_backend(keras, "torch")


class KerasTorch(Backend):
    """Keras SimpleRNN on PyTorch, compile + train_on_batch."""

    name = "keras-torch"

    def __init__(self, config: TaskConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(f"{self.name}: PyTorch sees no CUDA GPU (torch {torch.__version__})")
        apply_threads()
        if device == "cuda":  # full float32 like every other row
            torch.backends.cuda.matmul.allow_tf32 = False
        self.torch_device = torch.device(device)
        # Keras puts variables and data on the GPU whenever PyTorch sees one: a scope where that is not asked for
        self.scope = (lambda: keras.device(device)) if torch.cuda.is_available() != (device == "cuda") else None
        with self._scope():
            self.net = KerasModel(config)

    def _scope(self) -> Any:
        return self.scope() if self.scope else contextlib.nullcontext()

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        with self._scope():
            self.net.set_weights(weights)

    def _get_weights(self) -> dict[str, np.ndarray]:
        return self.net.get_weights()

    def reset_state(self) -> None:
        with self._scope():
            self.net.reset_state()

    def _to_native(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.torch_device)  # `prepare` hands over a copy of its own

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if self.scope:
            with self.scope():
                return self.net.train_on_batch(x, y)
        return self.net.train_on_batch(x, y)  # float(): waits for the device

    def _predict(self, x: torch.Tensor) -> np.ndarray:
        with self._scope():
            return self.net.predict_on_batch(x)

    def synchronize(self) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize()

    def device_peak_bytes(self) -> int | None:
        if self.torch_device.type != "cuda":
            return None
        return int(torch.cuda.max_memory_allocated(self.torch_device))

    def info(self) -> Info:
        return Info(
            framework=f"torch {torch.__version__} / keras {keras.__version__}",
            kernel="Keras SimpleRNN, a Python loop over time steps; compile(Adam, 'mse') + train_on_batch, "
            "predict_on_batch",
            mode=self.mode,
            gpu=torch.cuda.get_device_name(self.torch_device) if self.device == "cuda" else None,
            compile=f"eager (jit_compile='auto' -> {self.net.jit_compile} on PyTorch)",
        )
