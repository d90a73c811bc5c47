"""`keras-torch`: Keras on PyTorch, the same model as `keras-simplernn` (Keras on TensorFlow):
`SimpleRNN`, `LSTM` or `GRU` (stateful=True) + `Dense(1)`, compiled with Adam and "mse" (see
backends/_keras_common.py). Needs KERAS_BACKEND=torch before Keras is imported, which its registry mode
declares.

LSTM and GRU: Keras's default (use_cudnn="auto") sends them down Keras's optimized PyTorch path
(`backend.lstm`/`gru`: cuDNN through `torch._VF.lstm/gru` on CUDA, a pure-torch loop on the CPU), and
with stateful=True that path fails in backward in Keras 3.15.1, on the CPU here as on CUDA in keras#23462:
the layer's state variable is written in place after the forward pass while autograd still needs it ("one
of the variables needed for gradient computation has been modified by an inplace operation"). The
optimized path skips the state copy that keras#20916 put into the generic RNN loop for exactly this;
keras PR #23464 adds it there, after 3.15.1. This backend gives those layers use_cudnn=False, the
workaround keras#23462 names: Keras's generic RNN loop over time steps (the same as SimpleRNN's), and
`info()` says so. tests/test_keras_backends.py checks that the default still fails.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from backends._keras_common import LAYERS, KerasModel, check_backend, require_backend

require_backend("torch")

# isort: split
import torch  # noqa: E402 - before keras, so a missing PyTorch is reported as such, not as a Keras error

# isort: split
import keras  # noqa: E402

from backends._torch_common import OnTorchDevice, apply_threads  # noqa: E402
from backends.base import Backend, BackendUnavailable, Info  # noqa: E402
from backends.models import MODELS  # noqa: E402
from backends.task import TaskConfig  # noqa: E402

check_backend(keras, "torch")


class KerasTorch(OnTorchDevice, Backend):
    """Keras SimpleRNN, LSTM or GRU on PyTorch, compile + train_on_batch."""

    name = "keras-torch"
    models = tuple(MODELS)

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
        # keras#23462: a stateful LSTM/GRU on Keras's optimized path fails in backward (see the module doc)
        self.use_cudnn: bool | str = "auto" if config.model == "rnn" else False
        with self._scope():
            self.net = KerasModel(config, use_cudnn=self.use_cudnn)

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

    def info(self) -> Info:
        cudnn = " (use_cudnn=False, Keras's generic loop: keras#23462)" if self.use_cudnn is False else ""
        return Info(
            framework=f"torch {torch.__version__} / keras {keras.__version__}",
            kernel=f"Keras {LAYERS[self.config.model]}, a Python loop over time steps{cudnn}; "
            "compile(Adam, 'mse') + train_on_batch, predict_on_batch",
            mode=self.mode,
            gpu=torch.cuda.get_device_name(self.torch_device) if self.device == "cuda" else None,
            compile=f"eager (jit_compile='auto' -> {self.net.jit_compile} on PyTorch)",
        )
