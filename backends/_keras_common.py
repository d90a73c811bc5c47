"""What the Keras backends share (Keras on TensorFlow, JAX and PyTorch: keras-simplernn, keras-jax,
keras-torch): which Keras backend this process runs, and the model as a Keras user writes it.

Keras picks its backend once per process, when it is first imported (KERAS_BACKEND, else
~/.keras/keras.json, else TensorFlow), and switching it later is documented as unsafe: one process
per Keras backend. The registry modes of keras-jax and keras-torch declare KERAS_BACKEND in their
`env`, which the harness's worker for the case sets before anything is imported. This module imports
Keras only inside its functions, so a backend file can check the environment before Keras loads.

The model: Keras's own layer for the cell, `SimpleRNN`, `LSTM` or `GRU` (stateful=True,
return_sequences=True), + `Dense(1)` on a fixed batch (`keras.Input(batch_shape=...)`, which stateful
needs), compiled the way most Keras code is: `model.compile(optimizer=Adam(lr, epsilon), loss="mse")`,
trained by `train_on_batch`, predicted by `predict_on_batch`; the layer's state variables (h, and c for
the LSTM) carry the state across both.

Canonical weights onto Keras's layout (backends/models.py). Keras keeps matrices as (in, gates * hidden),
the canonical orientation, so no transpose:
  rnn   kernel = W_xh, recurrent_kernel = W_hh, bias = b_h.
  lstm  kernel = W_x, recurrent_kernel = W_h, bias = b: Keras's gates i, f, c, o are the canonical i, f, g, o
        and it has one bias. `unit_forget_bias` only writes 1 into the forget slice at initialisation, which
        set_weights overwrites. recurrent_activation is given as "sigmoid" (TF1 Keras's default was hard_sigmoid).
  gru   `reset_after=True` (Keras 3's default, given explicitly) is the canonical model: reset after the
        recurrent matmul, an input and a recurrent bias. Keras's gates are z, r, h, the canonical blocks r, z, n
        reordered (the first two swapped, both ways): kernel = W_x[z r n], recurrent_kernel = W_h[z r n],
        bias (2, 3 hidden) = [b_x[z r n], b_h[z r n]].
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


LAYERS = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}  # the Keras layer of each model
GRU_BLOCKS = (1, 0, 2)  # Keras's GRU gates z, r, h are the canonical blocks 1, 0, 2 (r, z, n); its own inverse


def layer_options(model: str, use_cudnn: bool | str = "auto") -> dict[str, Any]:
    """The layer's arguments that make it the canonical cell (activations given, not left to defaults)."""
    options: dict[str, Any] = {"activation": "tanh", "return_sequences": True, "stateful": True}
    if model != "rnn":
        options.update(recurrent_activation="sigmoid", use_cudnn=use_cudnn)
    if model == "gru":
        options["reset_after"] = True
    return options


def _gru_order(array: np.ndarray) -> np.ndarray:
    """The gate blocks of the last axis swapped between the canonical r, z, n and Keras's z, r, h."""
    parts = np.split(array, len(GRU_BLOCKS), axis=-1)
    return np.concatenate([parts[k] for k in GRU_BLOCKS], axis=-1)


def to_keras(model: str, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The cell's canonical weights as Keras's kernel, recurrent_kernel and bias (see the module doc)."""
    if model == "rnn":
        return {"kernel": weights["W_xh"], "recurrent_kernel": weights["W_hh"], "bias": weights["b_h"]}
    if model == "lstm":
        return {"kernel": weights["W_x"], "recurrent_kernel": weights["W_h"], "bias": weights["b"]}
    return {
        "kernel": _gru_order(weights["W_x"]),
        "recurrent_kernel": _gru_order(weights["W_h"]),
        "bias": np.stack([_gru_order(weights["b_x"]), _gru_order(weights["b_h"])]),
    }


def from_keras(model: str, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keras's kernel, recurrent_kernel and bias as the cell's canonical weights."""
    kernel, recurrent, bias = values["kernel"], values["recurrent_kernel"], values["bias"]
    if model == "rnn":
        return {"W_xh": kernel, "W_hh": recurrent, "b_h": bias}
    if model == "lstm":
        return {"W_x": kernel, "W_h": recurrent, "b": bias}
    return {
        "W_x": _gru_order(kernel),
        "W_h": _gru_order(recurrent),
        "b_x": _gru_order(bias[0]),
        "b_h": _gru_order(bias[1]),
    }


class KerasModel:
    """The Keras model, its compiled Adam, and the canonical weights in and out. `rnn_class` replaces the
    model's Keras layer where a backend needs a variant of it (keras-jax); `jit_compile` is what `compile`
    is given ("auto" unless a mode says otherwise); `use_cudnn` is the LSTM's and GRU's ("auto" unless a
    backend must avoid cuDNN)."""

    def __init__(
        self,
        config: TaskConfig,
        rnn_class: Any = None,
        jit_compile: bool | str = "auto",
        use_cudnn: bool | str = "auto",
    ) -> None:
        import keras

        self.config = config
        b, t = config.batch_size, config.seq_len
        inputs = keras.Input(batch_shape=(b, t, config.input_size))  # stateful needs a fixed batch
        rnn_class = rnn_class or getattr(keras.layers, LAYERS[config.model])
        self.rnn = rnn_class(config.hidden_size, **layer_options(config.model, use_cudnn))
        self.head = keras.layers.Dense(1)
        self.model = keras.Model(inputs, self.head(self.rnn(inputs)))
        self.optimizer = keras.optimizers.Adam(learning_rate=config.lr, epsilon=config.adam_eps)
        self.model.compile(optimizer=self.optimizer, loss="mse", jit_compile=jit_compile)
        self.optimizer.build(self.model.trainable_variables)  # slots now, so set_weights can reset them in place
        cell = self.rnn.cell
        self.cell_variables = {"kernel": cell.kernel, "recurrent_kernel": cell.recurrent_kernel, "bias": cell.bias}

    @property
    def jit_compile(self) -> bool:
        """What `compile(jit_compile=...)` resolved to on this backend and machine."""
        return bool(self.model.jit_compile)

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Canonical weights in, and a fresh Adam: step count, moments and velocities back to zero."""
        for name, value in to_keras(self.config.model, weights).items():
            self.cell_variables[name].assign(value)
        self.head.kernel.assign(weights["W_hq"])
        self.head.bias.assign(weights["b_q"])
        for variable in self.optimizer.variables:  # the learning rate is its one other variable: set again below
            variable.assign(np.zeros(variable.shape, variable.dtype))
        self.optimizer.learning_rate = self.config.lr

    def get_weights(self) -> dict[str, np.ndarray]:
        values = {name: np.array(variable.numpy()) for name, variable in self.cell_variables.items()}
        cell = from_keras(self.config.model, values)
        head = {"W_hq": np.array(self.head.kernel.numpy()), "b_q": np.array(self.head.bias.numpy())}
        return {name: {**cell, **head}[name] for name in self.config.weight_names}  # the canonical order

    def reset_state(self) -> None:
        self.rnn.reset_state()

    def train_on_batch(self, x: Any, y: Any) -> float:
        return float(self.model.train_on_batch(x, y))

    def predict_on_batch(self, x: Any) -> np.ndarray:
        return self.model.predict_on_batch(x)
