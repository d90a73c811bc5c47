"""`tf-cell`: the seed's third system, the cells written by hand in TensorFlow.

Every model of backends/models.py, from its equations, with the canonical weights as `tf.Variable`s as
they are (no layout to map):
    rnn   h' = tanh(x W_xh + h W_hh + b_h)
    lstm  [i f g o] = x W_x + h W_h + b;  c' = σ(f) c + σ(i) tanh(g);  h' = σ(o) tanh(c')
    gru   [r z n]_x = x W_x + b_x, [r z n]_h = h W_h + b_h;  r, z = σ(.. + ..);  n = tanh(n_x + r n_h);
          h' = (1 - z) n + z h   (reset after the recurrent matmul)
and q_t = h_t W_hq + b_q; the cell written out over the window (a Python loop, unrolled when the step is
traced), `tf.GradientTape`, MSE over the window, and Adam written by hand with PyTorch's epsilon
placement, p -= lr * m_hat / (sqrt(v_hat) + eps), so it matches the oracle at any epsilon (Keras's
Adam adds epsilon differently). Bias corrections are computed in float64, as PyTorch does on the CPU.
The carried state (h, or h and c) is held in non-trainable variables: each step reads them as constants
(the tape watches trainable variables only), which is the detaching truncated BPTT asks for.

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
from backends.models import MODELS
from backends.task import TaskConfig

BETA1, BETA2 = 0.9, 0.999

Weights = dict[str, tf.Variable]
State = tuple[tf.Tensor, ...]  # (h,) or (h, c)


# Each cell: the projected input's weight and bias, and one time step (weights, state, projected input)
# -> state, whose first tensor is h.


def rnn_cell(w: Weights, state: State, xw_t: tf.Tensor) -> State:
    return (tf.tanh(xw_t + state[0] @ w["W_hh"]),)


def lstm_cell(w: Weights, state: State, xw_t: tf.Tensor) -> State:
    h, c = state
    i, f, g, o = tf.split(xw_t + h @ w["W_h"], 4, axis=1)  # gate order i, f, g, o
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c


def gru_cell(w: Weights, state: State, xw_t: tf.Tensor) -> State:
    (h,) = state
    x_r, x_z, x_n = tf.split(xw_t, 3, axis=1)  # gate order r, z, n
    h_r, h_z, h_n = tf.split(h @ w["W_h"] + w["b_h"], 3, axis=1)
    r, z = tf.sigmoid(x_r + h_r), tf.sigmoid(x_z + h_z)
    n = tf.tanh(x_n + r * h_n)  # reset after the recurrent matmul
    return ((1.0 - z) * n + z * h,)


# model -> (input weight, input bias, cell)
CELLS = {"rnn": ("W_xh", "b_h", rnn_cell), "lstm": ("W_x", "b", lstm_cell), "gru": ("W_x", "b_x", gru_cell)}


class TFCell(TFBackend):
    """The formulas as tf.Variables and a hand-written Adam. Options: jit_compile (XLA), concrete
    (call the traced ConcreteFunction directly)."""

    name = "tf-cell"
    models = tuple(MODELS)

    def __init__(
        self, config: TaskConfig, device: str = "cpu", jit_compile: bool = False, concrete: bool = False
    ) -> None:
        super().__init__(config, device)
        self.jit_compile, self.concrete = bool(jit_compile), bool(concrete)
        b, t, i = config.batch_size, config.seq_len, config.input_size
        self.names = config.weight_names
        with tf.device(self.tf_device):
            zeros = {k: tf.zeros(s, tf.float32) for k, s in config.weight_shapes.items()}
            self.weights = {k: tf.Variable(zeros[k], name=k) for k in self.names}
            self.m = {k: tf.Variable(zeros[k], trainable=False, name=f"m_{k}") for k in self.names}
            self.v = {k: tf.Variable(zeros[k], trainable=False, name=f"v_{k}") for k in self.names}
            self.step_count = tf.Variable(tf.zeros((), tf.float64), trainable=False, name="step")
            self.state = tuple(
                tf.Variable(tf.zeros((b, config.hidden_size)), trainable=False, name=name)
                for name in MODELS[config.model].state
            )
        self._variables = [self.weights[k] for k in self.names]
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

    def _forward(self, x: tf.Tensor, state: State) -> tuple[tf.Tensor, State]:
        """Predictions (batch, seq_len, 1) and the last state, from `state`."""
        b, t, i, n = self.config.batch_size, self.config.seq_len, self.config.input_size, self.config.hidden_size
        w = self.weights
        w_in, b_in, cell = CELLS[self.config.model]
        g = w[w_in].shape[1]  # gates * hidden
        xw = tf.reshape(tf.reshape(x, (b * t, i)) @ w[w_in], (b, t, g)) + w[b_in]  # input projection, all steps
        # Time-major, then one tensor per step: slicing xw[:, step] instead made XLA compile 2-6x longer
        # (17 s at batch 4, seq 20, hidden 64) and the step 4x slower there.
        hs = []
        for xw_t in tf.unstack(tf.transpose(xw, (1, 0, 2))):  # a Python loop: unrolled at trace time
            state = cell(w, state, xw_t)
            hs.append(state[0])
        hs = tf.reshape(tf.transpose(tf.stack(hs), (1, 0, 2)), (b * t, n))
        q = tf.reshape(hs @ w["W_hq"] + w["b_q"], (b, t, 1))
        return q, state

    def _read_state(self) -> State:
        return tuple(s.read_value() for s in self.state)

    def _carry(self, state: State) -> None:
        for variable, value in zip(self.state, state):
            variable.assign(value)

    def _forward_and_carry(self, x: tf.Tensor) -> tf.Tensor:
        q, state = self._forward(x, self._read_state())
        self._carry(state)
        return q

    def _step(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:  # watches the trainable variables; the state is read as a constant
            q, state = self._forward(x, self._read_state())
            loss = tf.reduce_mean(tf.square(q - y))
        grads = tape.gradient(loss, self._variables)
        self.step_count.assign_add(1.0)
        lr_hat = tf.cast(self.config.lr / (1.0 - BETA1**self.step_count), tf.float32)  # float64, like PyTorch's
        sqrt_c2 = tf.cast(tf.sqrt(1.0 - BETA2**self.step_count), tf.float32)
        eps = tf.constant(self.config.adam_eps, tf.float32)
        for k, g in zip(self.names, grads):
            m = self.m[k].assign(BETA1 * self.m[k] + (1.0 - BETA1) * g)
            v = self.v[k].assign(BETA2 * self.v[k] + (1.0 - BETA2) * tf.square(g))
            self.weights[k].assign_sub(lr_hat * m / (tf.sqrt(v) / sqrt_c2 + eps))
        self._carry(state)
        return loss

    # ---- the backend hooks ----

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        for k in self.names:  # assign copies the values into the variables' own buffers
            self.weights[k].assign(weights[k])
            self.m[k].assign(tf.zeros_like(self.m[k]))
            self.v[k].assign(tf.zeros_like(self.v[k]))
        self.step_count.assign(0.0)

    def _get_weights(self) -> dict[str, np.ndarray]:
        return {k: self.weights[k].numpy() for k in self.names}

    def reset_state(self) -> None:
        for variable in self.state:
            variable.assign(tf.zeros_like(variable))

    def info(self) -> Info:
        return Info(
            framework=f"tensorflow {tf.__version__}",
            kernel=f"the {self.config.model} cell as tf.Variables, unrolled over the window; GradientTape; "
            "Adam by hand (PyTorch's eps)",
            mode=self.mode,
            gpu=gpu_name(self.device),
            compile=compile_text(self.jit_compile, self.concrete),
        )
