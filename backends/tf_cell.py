"""`tf-cell`: the seed's third system, a plain RNN written by hand in TensorFlow.

h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h), q_t = h_t W_hq + b_q with the canonical weights as
`tf.Variable`s, the cell written out over the window (a Python loop, unrolled when the step is
traced), `tf.GradientTape`, MSE over the window, and Adam written by hand with PyTorch's epsilon
placement, p -= lr * m_hat / (sqrt(v_hat) + eps), so it matches the oracle at any epsilon (Keras's
Adam adds epsilon differently). Bias corrections are computed in float64, as PyTorch does on the CPU.
The hidden state is carried in a non-trainable variable: each step reads it as a constant (the tape
watches trainable variables only), which is the detaching truncated BPTT asks for.

Modes: `function` is the step in `tf.function`; `xla` the same with jit_compile=True; `xla-concrete`
calls the traced ConcreteFunction directly, skipping `tf.function`'s per-call dispatch (argument
binding and trace-cache lookup, ~200 µs on this machine's CPU), which a performance-minded TF user
does for a hot loop with fixed shapes.

"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from backends._tf_common import TFBackend, compile_text, concrete_function, gpu_name
from backends.base import Info
from backends.task import WEIGHT_NAMES, TaskConfig

BETA1, BETA2 = 0.9, 0.999


class TFCell(TFBackend):
    """The formula as tf.Variables and a hand-written Adam. Options: jit_compile (XLA), concrete
    (call the traced ConcreteFunction directly)."""

    name = "tf-cell"

    def __init__(
        self, config: TaskConfig, device: str = "cpu", jit_compile: bool = False, concrete: bool = False
    ) -> None:
        super().__init__(config, device)
        self.jit_compile, self.concrete = bool(jit_compile), bool(concrete)
        b, t, i = config.batch_size, config.seq_len, config.input_size
        with tf.device(self.tf_device):
            zeros = {k: tf.zeros(s, tf.float32) for k, s in config.weight_shapes.items()}
            self.weights = {k: tf.Variable(zeros[k], name=k) for k in WEIGHT_NAMES}
            self.m = {k: tf.Variable(zeros[k], trainable=False, name=f"m_{k}") for k in WEIGHT_NAMES}
            self.v = {k: tf.Variable(zeros[k], trainable=False, name=f"v_{k}") for k in WEIGHT_NAMES}
            self.step_count = tf.Variable(tf.zeros((), tf.float64), trainable=False, name="step")
            self.h = tf.Variable(tf.zeros((b, config.hidden_size)), trainable=False, name="h")
        self._variables = [self.weights[k] for k in WEIGHT_NAMES]
        # Traced once per backend: set_weights assigns the variables the functions read, so no retrace follows.
        train_fn = tf.function(self._step, jit_compile=self.jit_compile)
        predict_fn = tf.function(self._forward_and_carry, jit_compile=self.jit_compile)
        if self.concrete:
            x_spec, y_spec = tf.TensorSpec((b, t, i), tf.float32), tf.TensorSpec((b, t, 1), tf.float32)
            with tf.device(self.tf_device):
                train_fn, predict_fn = (
                    concrete_function(train_fn, x_spec, y_spec),
                    concrete_function(predict_fn, x_spec),
                )
        self._train_fn, self._predict_fn = train_fn, predict_fn

    # ---- the model, traced into the tf.functions ----

    def _forward(self, x: tf.Tensor, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Predictions (batch, seq_len, 1) and the last hidden state, from h."""
        b, t, i, n = self.config.batch_size, self.config.seq_len, self.config.input_size, self.config.hidden_size
        w = self.weights
        xw = tf.reshape(tf.reshape(x, (b * t, i)) @ w["W_xh"], (b, t, n)) + w["b_h"]  # input projection, all steps
        # Time-major, then one tensor per step: slicing xw[:, step] instead made XLA compile 2-6x longer
        # (17 s at batch 4, seq 20, hidden 64) and the step 4x slower there.
        hs = []
        for xw_t in tf.unstack(tf.transpose(xw, (1, 0, 2))):  # a Python loop: unrolled at trace time
            h = tf.tanh(xw_t + h @ w["W_hh"])
            hs.append(h)
        hs = tf.reshape(tf.transpose(tf.stack(hs), (1, 0, 2)), (b * t, n))
        q = tf.reshape(hs @ w["W_hq"] + w["b_q"], (b, t, 1))
        return q, h

    def _forward_and_carry(self, x: tf.Tensor) -> tf.Tensor:
        q, h = self._forward(x, self.h.read_value())
        self.h.assign(h)
        return q

    def _step(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:  # watches the trainable variables; h0 is read as a constant
            q, h = self._forward(x, self.h.read_value())
            loss = tf.reduce_mean(tf.square(q - y))
        grads = tape.gradient(loss, self._variables)
        self.step_count.assign_add(1.0)
        lr_hat = tf.cast(self.config.lr / (1.0 - BETA1**self.step_count), tf.float32)  # float64, like PyTorch's
        sqrt_c2 = tf.cast(tf.sqrt(1.0 - BETA2**self.step_count), tf.float32)
        eps = tf.constant(self.config.adam_eps, tf.float32)
        for k, g in zip(WEIGHT_NAMES, grads):
            m = self.m[k].assign(BETA1 * self.m[k] + (1.0 - BETA1) * g)
            v = self.v[k].assign(BETA2 * self.v[k] + (1.0 - BETA2) * tf.square(g))
            self.weights[k].assign_sub(lr_hat * m / (tf.sqrt(v) / sqrt_c2 + eps))
        self.h.assign(h)
        return loss

    # ---- the backend hooks ----

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        for k in WEIGHT_NAMES:  # assign copies the values into the variables' own buffers
            self.weights[k].assign(weights[k])
            self.m[k].assign(tf.zeros_like(self.m[k]))
            self.v[k].assign(tf.zeros_like(self.v[k]))
        self.step_count.assign(0.0)

    def _get_weights(self) -> dict[str, np.ndarray]:
        return {k: self.weights[k].numpy() for k in WEIGHT_NAMES}

    def reset_state(self) -> None:
        self.h.assign(tf.zeros_like(self.h))

    def info(self) -> Info:
        return Info(
            framework=f"tensorflow {tf.__version__}",
            kernel="the cell as tf.Variables, unrolled over the window; GradientTape; Adam by hand (PyTorch's eps)",
            mode=self.mode,
            gpu=gpu_name(self.device),
            compile=compile_text(self.jit_compile, self.concrete),
        )
