"""`tflearn`: the seed's fourth system, `tflearn.simple_rnn` + a linear head, trained in a TF1 session loop.

The graph lives in its own `tf.Graph()` so the rest of the process stays eager (Keras keeps
working). The hidden state goes in through `simple_rnn`'s `initial_state` placeholder and
comes back as a numpy array, so each window starts from a constant (truncated BPTT).
tflearn's `DNN`/`Trainer` are not used: they clip gradients at 5.0 and add session calls per
step; one `session.run` of a plain `AdamOptimizer.minimize` op is the step here.
tflearn's cell holds one matrix (input+hidden, hidden) = [W_xh; W_hh] and one bias.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from backends import threads
from backends._tflearn_compat import import_tflearn
from backends.base import Backend, Info
from backends.task import WEIGHT_NAMES, TaskConfig

tflearn = import_tflearn()  # at import, so a broken tflearn is reported by the registry with the extra
v1 = tf.compat.v1


def session_config() -> Any:
    """A ConfigProto with the suite's thread count (0 = TensorFlow's default when none is configured)."""
    n = threads.count() or 0
    threads.record("tensorflow-v1-session", intra_op=n, inter_op=n)
    return v1.ConfigProto(intra_op_parallelism_threads=n, inter_op_parallelism_threads=n)


class TFLearnRNN(Backend):
    """tflearn.simple_rnn(activation='tanh') with a time-distributed linear head, v1 AdamOptimizer, no clipping."""

    name = "tflearn"

    def __init__(self, config: TaskConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        b, t, i, h = config.batch_size, config.seq_len, config.input_size, config.hidden_size
        self.graph = tf.Graph()
        with self.graph.as_default(), tf.device("/CPU:0"):
            self.x = v1.placeholder(tf.float32, (b, t, i), name="x")
            self.y = v1.placeholder(tf.float32, (b, t, 1), name="y")
            self.h0 = v1.placeholder(tf.float32, (b, h), name="h0")
            seq, self.h_last = tflearn.simple_rnn(
                self.x, h, activation="tanh", return_seq=True, initial_state=self.h0, return_state=True, name="rnn"
            )
            self.matrix, self.bias = tflearn.get_layer_variables_by_name("rnn")  # [W_xh; W_hh] and b_h
            self.w_hq = v1.get_variable("W_hq", (h, 1))
            self.b_q = v1.get_variable("b_q", (1,))
            self.q = tf.reshape(tf.reshape(seq, (b * t, h)) @ self.w_hq + self.b_q, (b, t, 1))  # one matmul
            self.loss = tf.reduce_mean(tf.square(self.q - self.y))
            optimizer = v1.train.AdamOptimizer(config.lr, epsilon=config.adam_eps)
            self.train_op = optimizer.minimize(self.loss)
            # Loading weights: re-initialise everything (Adam's moments and beta powers too), then assign.
            self.init_op = v1.global_variables_initializer()
            self.feeds = {k: v1.placeholder(tf.float32, s, name=k) for k, s in config.weight_shapes.items()}
            self.assign_op = tf.group(
                self.matrix.assign(tf.concat([self.feeds["W_xh"], self.feeds["W_hh"]], axis=0)),
                self.bias.assign(self.feeds["b_h"]),
                self.w_hq.assign(self.feeds["W_hq"]),
                self.b_q.assign(self.feeds["b_q"]),
            )
        self.graph.finalize()  # every step reuses these ops; nothing may add to the graph later
        self.session = v1.Session(graph=self.graph, config=session_config())
        self.h = np.zeros((b, h), np.float32)

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.session.run(self.init_op)
        self.session.run(self.assign_op, {self.feeds[k]: weights[k] for k in WEIGHT_NAMES})

    def _get_weights(self) -> dict[str, np.ndarray]:
        matrix, bias, w_hq, b_q = self.session.run([self.matrix, self.bias, self.w_hq, self.b_q])
        i = self.config.input_size
        return {"W_xh": matrix[:i], "W_hh": matrix[i:], "b_h": bias, "W_hq": w_hq, "b_q": b_q}

    def reset_state(self) -> None:
        self.h = np.zeros_like(self.h)

    def _to_native(self, array: np.ndarray) -> np.ndarray:
        return array.copy()  # fed at each step: a copy the caller cannot change after prepare

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        # loss and h_last are computed from the forward pass the gradients need, so before Adam updates the weights
        loss, _, self.h = self.session.run(
            [self.loss, self.train_op, self.h_last], {self.x: x, self.y: y, self.h0: self.h}
        )
        return float(loss)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        q, self.h = self.session.run([self.q, self.h_last], {self.x: x, self.h0: self.h})
        return q

    def info(self) -> Info:
        from importlib.metadata import version  # tflearn has no __version__

        return Info(
            framework=f"tensorflow {tf.__version__} / tflearn {version('tflearn')}",
            kernel="static_rnn unrolled over the window, TF ops, v1 AdamOptimizer",
            mode=self.mode,
            compile="TF1 graph, one tf.compat.v1.Session.run per step, no XLA",
        )
