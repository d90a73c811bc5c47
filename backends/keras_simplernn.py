"""`keras-simplernn`: Keras 3 `SimpleRNN(stateful=True)` + `Dense(1)` on TensorFlow, trained by a `tf.function` step.

The step is what a Keras user writes for speed: GradientTape + Adam inside `tf.function`
(`train_on_batch` is slower, an eager GradientTape far slower). XLA is an explicit
option, never Keras's "auto", so a table row always says which one ran; `keras-simplernn-xla`
is the same model with XLA on. The stateful layer keeps the hidden state in a variable:
it carries across train_step and predict, and reading it starts each window's graph from a
constant, which is the detaching (truncated BPTT) the task asks for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf  # before keras, so a missing TensorFlow is reported as such, not as a Keras error

# isort: split
import keras

from backends import threads
from backends.base import Backend, BackendUnavailable
from backends.task import TaskConfig

if keras.backend.backend() != "tensorflow":  # KERAS_BACKEND=jax/torch would run another framework under this name
    raise ImportError(f"keras-simplernn needs KERAS_BACKEND=tensorflow, Keras uses {keras.backend.backend()}")


def apply_threads() -> None:
    """Apply the suite's thread count; TF refuses once initialised, then the TF_NUM_*_THREADS env vars rule."""
    n = threads.count()
    if n is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
        except RuntimeError:  # "cannot be modified after initialization"
            pass
    threads.record(
        "tensorflow",  # 0 means "TF's default", i.e. what the environment variables asked for
        intra_op=tf.config.threading.get_intra_op_parallelism_threads(),
        inter_op=tf.config.threading.get_inter_op_parallelism_threads(),
    )


class KerasSimpleRNN(Backend):
    """Keras SimpleRNN on TensorFlow. Option jit_compile: compile the train and predict steps with XLA."""

    name = "keras-simplernn"
    devices = ("cpu", "cuda")

    def __init__(self, config: TaskConfig, device: str = "cpu", jit_compile: bool = False) -> None:
        super().__init__(config, device)
        if device == "cuda" and not tf.config.list_physical_devices("GPU"):
            raise BackendUnavailable(f"{self.name}: TensorFlow sees no GPU")
        apply_threads()
        self.jit_compile = bool(jit_compile)
        self.tf_device = "/GPU:0" if device == "cuda" else "/CPU:0"
        b, t, h = config.batch_size, config.seq_len, config.hidden_size
        with tf.device(self.tf_device):
            inputs = keras.Input(batch_shape=(b, t, config.input_size))  # stateful needs a fixed batch
            self.rnn = keras.layers.SimpleRNN(h, activation="tanh", return_sequences=True, stateful=True)
            self.head = keras.layers.Dense(1)
            self.model = keras.Model(inputs, self.head(self.rnn(inputs)))
        self.optimizer = keras.optimizers.Adam(learning_rate=config.lr, epsilon=config.adam_eps)
        self.optimizer.build(self.model.trainable_variables)  # slots now, so set_weights can reset them in place
        # Traced once per backend: set_weights resets variables the functions read, so no retrace follows.
        self._train_fn = tf.function(self._step, jit_compile=self.jit_compile)
        self._predict_fn = tf.function(self._forward, jit_compile=self.jit_compile)

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        return self.model(x, training=False)

    def _step(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self.model(x, training=True) - y))
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.rnn.set_weights([weights["W_xh"], weights["W_hh"], weights["b_h"]])  # Keras's layout is canonical
        self.head.set_weights([weights["W_hq"], weights["b_q"]])
        # Fresh Adam: step count, moments and velocities back to zero; the learning rate is its one other variable.
        for variable in self.optimizer.variables:
            variable.assign(tf.zeros(variable.shape, variable.dtype))
        self.optimizer.learning_rate = self.config.lr

    def _get_weights(self) -> dict[str, np.ndarray]:
        kernel, recurrent, bias = self.rnn.get_weights()
        head_kernel, head_bias = self.head.get_weights()
        return {"W_xh": kernel, "W_hh": recurrent, "b_h": bias, "W_hq": head_kernel, "b_q": head_bias}

    def reset_state(self) -> None:
        self.rnn.reset_state()

    def _to_native(self, array: np.ndarray) -> tf.Tensor:
        with tf.device(self.tf_device):
            return tf.identity(tf.constant(array))  # identity places the copy on the device

    def _train_step(self, x: tf.Tensor, y: tf.Tensor) -> float:
        with tf.device(self.tf_device):
            return float(self._train_fn(x, y))  # float() waits for the step

    def _predict(self, x: tf.Tensor) -> np.ndarray:
        with tf.device(self.tf_device):
            return self._predict_fn(x).numpy()

    def device_peak_bytes(self) -> int | None:
        if self.device != "cuda":
            return None
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])

    def info(self) -> dict[str, Any]:
        kernel = "XLA-compiled step" if self.jit_compile else "TF ops in a tf.while_loop"
        out = {
            "framework": f"tensorflow {tf.__version__} / keras {keras.__version__}",
            "kernel": f"Keras SimpleRNN, {kernel}",
            "xla": self.jit_compile,
            "mode": "tf.function",
        }
        if self.device == "cuda":
            details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            out["gpu"] = details.get("device_name", "a GPU")
        return out


class KerasSimpleRNNXLA(KerasSimpleRNN):
    """The same model with both steps compiled by XLA (jit_compile=True)."""

    name = "keras-simplernn-xla"

    def __init__(self, config: TaskConfig, device: str = "cpu") -> None:
        super().__init__(config, device, jit_compile=True)
