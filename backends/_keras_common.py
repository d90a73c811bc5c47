"""What the Keras backends share (Keras on TensorFlow, JAX and PyTorch: keras-simplernn, keras-jax,
keras-torch): which Keras backend this process runs, and the model as a Keras user writes it.

Keras picks its backend once per process, when it is first imported (KERAS_BACKEND, else
~/.keras/keras.json, else TensorFlow), and switching it later is documented as unsafe: one process
per Keras backend. The registry modes of keras-jax and keras-torch declare KERAS_BACKEND in their
`env`, which the harness's worker for the case sets before anything is imported. This module imports
Keras only inside its functions, so a backend file can check the environment before Keras loads.

The model: `SimpleRNN(stateful=True, return_sequences=True)` + `Dense(1)` on a fixed batch
(`keras.Input(batch_shape=...)`, which stateful needs), compiled the way most Keras code is:
`model.compile(optimizer=Adam(lr, epsilon), loss="mse")`, trained by `train_on_batch`, predicted by
`predict_on_batch`; the layer's state variable carries the hidden state across both.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from backends.errors import BackendUnavailable
from backends.task import TaskConfig

FRAMEWORK_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def require_backend(wanted: str) -> None:
    """Before Keras is imported: BackendUnavailable unless Keras will load on `wanted` in this process."""
    if "keras" in sys.modules:
        return  # decided already: `check_backend` after the import says which
    asked = os.environ.get("KERAS_BACKEND")
    if asked != wanted and not (wanted == "tensorflow" and asked is None):  # TensorFlow is Keras's default
        raise BackendUnavailable(
            f"Keras on {FRAMEWORK_NAMES[wanted]} needs KERAS_BACKEND={wanted} set before Keras is imported, "
            f"one Keras backend per process (the harness's worker for the case sets it); here it is {asked or 'unset'}"
        )


def check_backend(keras: Any, wanted: str) -> None:
    """After Keras is imported: BackendUnavailable unless it runs on `wanted`."""
    running = keras.config.backend()
    if running != wanted:
        raise BackendUnavailable(
            f"Keras in this process already runs on {running}; Keras on {FRAMEWORK_NAMES[wanted]} needs "
            f"KERAS_BACKEND={wanted} set before Keras is imported, in a process of its own"
        )


class KerasModel:
    """The Keras model, its compiled Adam, and the canonical weights in and out. `rnn_class` replaces
    `keras.layers.SimpleRNN` where a backend needs a variant of it (keras-jax); `jit_compile` is what
    `compile` is given ("auto" unless a mode says otherwise)."""

    def __init__(self, config: TaskConfig, rnn_class: Any = None, jit_compile: bool | str = "auto") -> None:
        import keras

        self.config = config
        b, t = config.batch_size, config.seq_len
        inputs = keras.Input(batch_shape=(b, t, config.input_size))  # stateful needs a fixed batch
        rnn_class = rnn_class or keras.layers.SimpleRNN
        self.rnn = rnn_class(config.hidden_size, activation="tanh", return_sequences=True, stateful=True)
        self.head = keras.layers.Dense(1)
        self.model = keras.Model(inputs, self.head(self.rnn(inputs)))
        self.optimizer = keras.optimizers.Adam(learning_rate=config.lr, epsilon=config.adam_eps)
        self.model.compile(optimizer=self.optimizer, loss="mse", jit_compile=jit_compile)
        self.optimizer.build(self.model.trainable_variables)  # slots now, so set_weights can reset them in place
        # Keras's layout is the canonical one: kernel (input, hidden), recurrent (hidden, hidden), one bias
        cell = self.rnn.cell
        self.variables = {
            "W_xh": cell.kernel,
            "W_hh": cell.recurrent_kernel,
            "b_h": cell.bias,
            "W_hq": self.head.kernel,
            "b_q": self.head.bias,
        }

    @property
    def jit_compile(self) -> bool:
        """What `compile(jit_compile=...)` resolved to on this backend and machine."""
        return bool(self.model.jit_compile)

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Canonical weights in, and a fresh Adam: step count, moments and velocities back to zero."""
        for name, variable in self.variables.items():
            variable.assign(weights[name])
        for variable in self.optimizer.variables:  # the learning rate is its one other variable: set again below
            variable.assign(np.zeros(variable.shape, variable.dtype))
        self.optimizer.learning_rate = self.config.lr

    def get_weights(self) -> dict[str, np.ndarray]:
        return {name: np.array(variable.numpy()) for name, variable in self.variables.items()}

    def reset_state(self) -> None:
        self.rnn.reset_state()

    def train_on_batch(self, x: Any, y: Any) -> float:
        return float(self.model.train_on_batch(x, y))

    def predict_on_batch(self, x: Any) -> np.ndarray:
        return self.model.predict_on_batch(x)
