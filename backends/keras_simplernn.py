"""`keras-simplernn`: Keras 3 `SimpleRNN(stateful=True)` + `Dense(1)` on TensorFlow, and for the other models
Keras's `LSTM` and `GRU` (Keras on JAX and on PyTorch are `keras-jax` and `keras-torch`; the model and the
weight mapping are the same, see backends/_keras_common.py).

Modes: `train_on_batch`, the default, is the code most Keras users write:
`model.compile(optimizer=Adam(...), loss="mse")`, then `model.train_on_batch(x, y)` and
`model.predict_on_batch(x)` (the one training call that is the same on all three Keras backends).
`compile`'s jit_compile is left at "auto", which on TensorFlow means XLA only when a GPU is present;
`info()` says what it resolved to. TensorFlow's fast modes: `function`, a GradientTape + Adam step
inside `tf.function` (what a Keras user writes for speed; an eager GradientTape is far slower);
`xla`, the same step with jit_compile=True; `xla-concrete`, the XLA step's traced ConcreteFunction
called directly, which skips `tf.function`'s per-call dispatch (argument binding, trace lookup), as a
performance-minded user does in a hot loop with fixed shapes. The stateful layer keeps the hidden
state in a variable: it carries across train_step and predict, and reading it starts each window's
graph from a constant, which is the detaching (truncated BPTT) the task asks for.
"""

from __future__ import annotations

import numpy as np

from backends._keras_common import LAYERS, KerasModel, check_backend, require_backend

require_backend("tensorflow")  # KERAS_BACKEND=jax/torch would run another framework under this name

# isort: split
import tensorflow as tf  # noqa: E402 - before keras, so a missing TensorFlow is reported as such, not as a Keras error

# isort: split
import keras  # noqa: E402

from backends._tf_common import TFBackend, compile_text, concrete_function, gpu_name  # noqa: E402
from backends.base import Info  # noqa: E402
from backends.models import MODELS  # noqa: E402
from backends.task import TaskConfig  # noqa: E402

check_backend(keras, "tensorflow")


class KerasSimpleRNN(TFBackend):
    """Keras SimpleRNN, LSTM or GRU on TensorFlow. Options: train_on_batch (compile + train_on_batch, the
    default mode); otherwise a tf.function step, with jit_compile (XLA) and concrete (call the traced
    ConcreteFunctions directly)."""

    name = "keras-simplernn"
    models = tuple(MODELS)

    def __init__(
        self,
        config: TaskConfig,
        device: str = "cpu",
        train_on_batch: bool = False,
        jit_compile: bool = False,
        concrete: bool = False,
    ) -> None:
        super().__init__(config, device)
        if train_on_batch and (jit_compile or concrete):
            raise ValueError(
                f"{self.name}: train_on_batch is its own mode; jit_compile and concrete are the tf.function step's"
            )
        self.idiomatic, self.jit_compile, self.concrete = bool(train_on_batch), bool(jit_compile), bool(concrete)
        b, t = config.batch_size, config.seq_len
        with tf.device(self.tf_device):
            self.net = KerasModel(config)
        self.model, self.rnn, self.optimizer = self.net.model, self.net.rnn, self.net.optimizer
        if self.idiomatic:
            self._train_fn = self.net.train_on_batch
            return
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

    def _predict(self, x: tf.Tensor) -> np.ndarray:
        if not self.idiomatic:
            return super()._predict(x)
        with tf.device(self.tf_device):
            return self.net.predict_on_batch(x)

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.net.set_weights(weights)

    def _get_weights(self) -> dict[str, np.ndarray]:
        return self.net.get_weights()

    def reset_state(self) -> None:
        self.net.reset_state()

    def info(self) -> Info:
        if self.idiomatic:
            xla = self.net.jit_compile
            kernel = "one XLA program" if xla else "TF ops in a tf.while_loop"
            how = "compile(Adam, 'mse') + train_on_batch, predict_on_batch"
            compile_ = f"{'XLA' if xla else 'TF graph, no XLA'} (Keras's train function, jit_compile='auto' -> {xla})"
        else:
            kernel = "one XLA program" if self.jit_compile else "TF ops in a tf.while_loop"
            how = "GradientTape + Keras Adam"
            compile_ = compile_text(self.jit_compile, self.concrete)
        return Info(
            framework=f"tensorflow {tf.__version__} / keras {keras.__version__}",
            kernel=f"Keras {LAYERS[self.config.model]}, {kernel}; {how}",
            mode=self.mode,
            gpu=gpu_name(self.device),
            compile=compile_,
        )
