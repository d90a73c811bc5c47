"""`tflearn`: the seed's fourth system, tflearn's recurrent layers + a linear head, trained in a TF1 session loop.

The graph lives in its own `tf.Graph()` so the rest of the process stays eager (Keras keeps
working). The carried state goes in through the layer's `initial_state` placeholders and comes back
as numpy arrays, so each window starts from a constant (truncated BPTT). tflearn's `DNN`/`Trainer`
are not used: they clip gradients at 5.0 and add session calls per step; one `session.run` of a plain
`AdamOptimizer.minimize` op is the step here.

Canonical weights onto tflearn's layout: each cell holds one matrix over concat[x, h], so
(input + hidden, gates * hidden) = [W_x; W_h] stacked, and one bias.
  rnn   `tflearn.simple_rnn(activation='tanh')` (its default is sigmoid): matrix [W_xh; W_hh], bias b_h.
  lstm  `tflearn.lstm`, TF1's BasicLSTMCell: gate blocks i, j, f, o (j the candidate, canonical g), so the
        canonical i, f, g, o blocks are reordered to i, g, f, o (the middle two swapped, both ways). The
        cell adds `forget_bias` (1.0 by default) to f at run time, not stored: built with forget_bias=0.0,
        the model is the canonical one. Its state is LSTMStateTuple(c, h), the reverse of the canonical (h, c).
  gru   none: `tflearn.gru` is TF1's GRUCell, which applies the reset gate before the recurrent matmul,
        n = tanh([x, r h] W + b), a different model from the canonical GRU (reset after the matmul, two
        biases); a gru case is unavailable, saying so, rather than that model under the same name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from backends import threads
from backends._tflearn_compat import import_tflearn
from backends.base import Backend, BackendUnavailable, Info
from backends.models import MODELS
from backends.task import TaskConfig

tflearn = import_tflearn()  # at import, so a broken tflearn is reported by the registry with the extra
v1 = tf.compat.v1

# model -> canonical input matrix, recurrent matrix, bias, and the canonical gate block in each of
# tflearn's gate blocks (BasicLSTMCell's i, j, f, o are the canonical blocks 0, 2, 1, 3)
LAYOUT: dict[str, tuple[str, str, str, tuple[int, ...]]] = {
    "rnn": ("W_xh", "W_hh", "b_h", (0,)),
    "lstm": ("W_x", "W_h", "b", (0, 2, 1, 3)),
}
GRU_REASON = (
    "tflearn has no gru model (its models: rnn, lstm): tflearn.gru is TF1's GRUCell, which applies the reset gate "
    "before the recurrent matmul, a different model from the canonical GRU (reset after it)"
)


def session_config() -> Any:
    """A ConfigProto with the suite's thread count (0 = TensorFlow's default when none is configured)."""
    n = threads.count() or 0
    threads.record("tensorflow-v1-session", intra_op=n, inter_op=n)
    return v1.ConfigProto(intra_op_parallelism_threads=n, inter_op_parallelism_threads=n)


def reorder(array: np.ndarray, blocks: tuple[int, ...]) -> np.ndarray:
    """The gate blocks of the last axis in the order `blocks` (canonical to tflearn and back: the permutation
    is its own inverse for both cells)."""
    parts = np.split(array, len(blocks), axis=-1)
    return np.concatenate([parts[k] for k in blocks], axis=-1)


class TFLearnRNN(Backend):
    """tflearn.simple_rnn(activation='tanh') or tflearn.lstm(forget_bias=0.0) with a time-distributed linear
    head, v1 AdamOptimizer, no clipping."""

    name = "tflearn"
    models = ("rnn", "lstm")

    def __init__(self, config: TaskConfig, device: str = "cpu") -> None:
        if isinstance(config, TaskConfig) and config.model == "gru":
            raise BackendUnavailable(GRU_REASON)
        super().__init__(config, device)
        b, t, i, h = config.batch_size, config.seq_len, config.input_size, config.hidden_size
        g = MODELS[config.model].gates * h
        self.graph = tf.Graph()
        with self.graph.as_default(), tf.device("/CPU:0"):
            self.x = v1.placeholder(tf.float32, (b, t, i), name="x")
            self.y = v1.placeholder(tf.float32, (b, t, 1), name="y")
            # the carried state in the canonical order: (h,) or (h, c)
            self.state_in = tuple(v1.placeholder(tf.float32, (b, h), name=n) for n in MODELS[config.model].state)
            if config.model == "lstm":
                h0, c0 = self.state_in
                seq, last = tflearn.lstm(
                    self.x,
                    h,
                    return_seq=True,
                    initial_state=tflearn.layers.recurrent.core_rnn_cell.LSTMStateTuple(c0, h0),  # its order: (c, h)
                    return_state=True,
                    forget_bias=0.0,  # else 1.0 is added to the forget gate at run time
                    name="rnn",
                )
                self.state_out = (last.h, last.c)
            else:
                seq, h_last = tflearn.simple_rnn(
                    self.x, h, activation="tanh", return_seq=True, initial_state=self.state_in[0], return_state=True,
                    name="rnn",
                )  # fmt: skip
                self.state_out = (h_last,)
            self.matrix, self.bias = tflearn.get_layer_variables_by_name("rnn")  # [W_x; W_h] and the bias
            self.w_hq = v1.get_variable("W_hq", (h, 1))
            self.b_q = v1.get_variable("b_q", (1,))
            self.q = tf.reshape(tf.reshape(seq, (b * t, h)) @ self.w_hq + self.b_q, (b, t, 1))  # one matmul
            self.loss = tf.reduce_mean(tf.square(self.q - self.y))
            optimizer = v1.train.AdamOptimizer(config.lr, epsilon=config.adam_eps)
            self.train_op = optimizer.minimize(self.loss)
            # Loading weights: re-initialise everything (Adam's moments and beta powers too), then assign.
            self.init_op = v1.global_variables_initializer()
            shapes = {"matrix": (i + h, g), "bias": (g,), "W_hq": (h, 1), "b_q": (1,)}
            self.feeds = {k: v1.placeholder(tf.float32, s, name=f"feed_{k}") for k, s in shapes.items()}
            self.assign_op = tf.group(
                self.matrix.assign(self.feeds["matrix"]),
                self.bias.assign(self.feeds["bias"]),
                self.w_hq.assign(self.feeds["W_hq"]),
                self.b_q.assign(self.feeds["b_q"]),
            )
        self.graph.finalize()  # every step reuses these ops; nothing may add to the graph later
        self.session = v1.Session(graph=self.graph, config=session_config())
        self.reset_state()

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        w_in, w_rec, bias, blocks = LAYOUT[self.config.model]
        matrix = reorder(np.concatenate([weights[w_in], weights[w_rec]], axis=0), blocks)
        values = {"matrix": matrix, "bias": reorder(weights[bias], blocks)}
        values.update(W_hq=weights["W_hq"], b_q=weights["b_q"])
        self.session.run(self.init_op)
        self.session.run(self.assign_op, {self.feeds[k]: v for k, v in values.items()})

    def _get_weights(self) -> dict[str, np.ndarray]:
        matrix, bias, w_hq, b_q = self.session.run([self.matrix, self.bias, self.w_hq, self.b_q])
        w_in, w_rec, bias_name, blocks = LAYOUT[self.config.model]
        matrix, i = reorder(matrix, blocks), self.config.input_size
        return {w_in: matrix[:i], w_rec: matrix[i:], bias_name: reorder(bias, blocks), "W_hq": w_hq, "b_q": b_q}

    def reset_state(self) -> None:
        shape = (self.config.batch_size, self.config.hidden_size)
        self.state = tuple(np.zeros(shape, np.float32) for _ in self.state_in)

    def _to_native(self, array: np.ndarray) -> np.ndarray:
        return array.copy()  # fed at each step: a copy the caller cannot change after prepare

    def _feed(self, x: np.ndarray) -> dict[Any, np.ndarray]:
        return {self.x: x, **dict(zip(self.state_in, self.state))}

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        # loss and the last state come from the forward pass the gradients need, so before Adam updates the weights
        loss, _, *state = self.session.run([self.loss, self.train_op, *self.state_out], {**self._feed(x), self.y: y})
        self.state = tuple(state)
        return float(loss)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        q, *state = self.session.run([self.q, *self.state_out], self._feed(x))
        self.state = tuple(state)
        return q

    def info(self) -> Info:
        from importlib.metadata import version  # tflearn has no __version__

        layer = "lstm (BasicLSTMCell, forget_bias=0)" if self.config.model == "lstm" else "simple_rnn"
        return Info(
            framework=f"tensorflow {tf.__version__} / tflearn {version('tflearn')}",
            kernel=f"tflearn {layer}: static_rnn unrolled over the window, TF ops, v1 AdamOptimizer",
            mode=self.mode,
            compile="TF1 graph, one tf.compat.v1.Session.run per step, no XLA",
        )
