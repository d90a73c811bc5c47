"""`keras-simplernn`: Keras 3 `SimpleRNN(stateful=True)` + `Dense(1)` on TensorFlow, trained by a `tf.function` step.

The step is what a Keras user writes for speed: GradientTape + Adam inside `tf.function`
(`train_on_batch` is slower, an eager GradientTape far slower). XLA is an explicit
option, never Keras's "auto", so a table row always says which one ran. Modes: `function`;
`xla`, the same step with jit_compile=True; `xla-concrete`, the XLA step's traced ConcreteFunction
called directly, which skips `tf.function`'s per-call dispatch (argument binding, trace lookup), as a
performance-minded user does in a hot loop with fixed shapes. The stateful layer keeps the hidden
state in a variable: it carries across train_step and predict, and reading it starts each window's
graph from a constant, which is the detaching (truncated BPTT) the task asks for.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf  # before keras, so a missing TensorFlow is reported as such, not as a Keras error

# isort: split
import keras

from backends._tf_common import TFBackend, compile_text, concrete_function, gpu_name
from backends.base import Info
from backends.task import TaskConfig

if keras.backend.backend() != "tensorflow":  # KERAS_BACKEND=jax/torch would run another framework under this name
    raise ImportError(f"keras-simplernn needs KERAS_BACKEND=tensorflow, Keras uses {keras.backend.backend()}")


class KerasSimpleRNN(TFBackend):
    """Keras SimpleRNN on TensorFlow. Options: jit_compile (compile the train and predict steps with XLA),
    concrete (call their traced ConcreteFunctions directly)."""

    name = "keras-simplernn"

    def __init__(
        self, config: TaskConfig, device: str = "cpu", jit_compile: bool = False, concrete: bool = False
    ) -> None:
        super().__init__(config, device)
        self.jit_compile, self.concrete = bool(jit_compile), bool(concrete)
        b, t, h = config.batch_size, config.seq_len, config.hidden_size
        with tf.device(self.tf_device):
            inputs = keras.Input(batch_shape=(b, t, config.input_size))  # stateful needs a fixed batch
            self.rnn = keras.layers.SimpleRNN(h, activation="tanh", return_sequences=True, stateful=True)
            self.head = keras.layers.Dense(1)
            self.model = keras.Model(inputs, self.head(self.rnn(inputs)))
        self.optimizer = keras.optimizers.Adam(learning_rate=config.lr, epsilon=config.adam_eps)
        self.optimizer.build(self.model.trainable_variables)  # slots now, so set_weights can reset them in place
        # Traced once per backend: set_weights resets variables the functions read, so no retrace follows.
        train_fn = tf.function(self._step, jit_compile=self.jit_compile)
        predict_fn = tf.function(self._forward, jit_compile=self.jit_compile)
        if self.concrete:
            x_spec = tf.TensorSpec((b, t, config.input_size), tf.float32)
            y_spec = tf.TensorSpec((b, t, 1), tf.float32)
            with tf.device(self.tf_device):
                train_fn = concrete_function(train_fn, x_spec, y_spec)
                predict_fn = concrete_function(predict_fn, x_spec)
        self._train_fn, self._predict_fn = train_fn, predict_fn

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

    def info(self) -> Info:
        kernel = "one XLA program" if self.jit_compile else "TF ops in a tf.while_loop"
        return Info(
            framework=f"tensorflow {tf.__version__} / keras {keras.__version__}",
            kernel=f"Keras SimpleRNN, {kernel}; GradientTape + Keras Adam",
            mode=self.mode,
            gpu=gpu_name(self.device),
            compile=compile_text(self.jit_compile, self.concrete),
        )
