"""`numpy`: forward, backpropagation through time and Adam written out by hand, for every model.

This is the oracle every other backend is checked against. It computes in float64 so its
own rounding is far below the float32 backends' differences, and applies Adam exactly as
torch.optim.Adam does: p -= lr * m_hat / (sqrt(v_hat) + eps). Each cell's forward and backward
are written from the equations in backends/models.py, not from a framework; the tests check the
backward passes against finite differences of the forward ones.

The carried state is a tuple of (batch, hidden) arrays, one per name in the model's `state`:
(h,) for rnn and gru, (h, c) for lstm. BPTT is truncated at the window: the state a window starts
from is a constant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backends.base import Backend, Info
from backends.models import MODELS
from backends.task import TaskConfig

BETA1, BETA2 = 0.9, 0.999

Weights = dict[str, np.ndarray]
State = tuple[np.ndarray, ...]


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


# ---- each cell: forward over a window (hidden states, last state, what backward needs) and backward ----


def rnn_forward(w: Weights, x: np.ndarray, state: State) -> tuple[np.ndarray, State, dict]:
    """h' = tanh(x W_xh + h W_hh + b_h). Returns hs (batch, seq_len+1, hidden) starting with h0."""
    (h0,) = state
    batch, seq_len, _ = x.shape
    hs = np.empty((batch, seq_len + 1, h0.shape[1]))
    hs[:, 0] = h0
    xw = x @ w["W_xh"] + w["b_h"]  # input projection for all steps at once
    for t in range(seq_len):
        hs[:, t + 1] = np.tanh(xw[:, t] + hs[:, t] @ w["W_hh"])
    return hs, (hs[:, -1],), {}


def rnn_backward(w: Weights, x: np.ndarray, hs: np.ndarray, cache: dict, dh_out: np.ndarray) -> Weights:
    """Gradients of the cell's weights from dL/dh_t of the head (batch, seq_len, hidden)."""
    da_all = np.empty_like(dh_out)
    dh_next = np.zeros_like(hs[:, 0])
    for t in reversed(range(x.shape[1])):
        da = (dh_out[:, t] + dh_next) * (1.0 - hs[:, t + 1] ** 2)
        da_all[:, t] = da
        dh_next = da @ w["W_hh"].T
    return {
        "W_xh": np.einsum("bti,bth->ih", x, da_all),
        "W_hh": np.einsum("bti,bth->ih", hs[:, :-1], da_all),
        "b_h": da_all.sum(axis=(0, 1)),
    }


def lstm_forward(w: Weights, x: np.ndarray, state: State) -> tuple[np.ndarray, State, dict]:
    """[i f g o] = x W_x + h W_h + b; c' = σ(f) c + σ(i) tanh(g); h' = σ(o) tanh(c')."""
    h0, c0 = state
    batch, seq_len, _ = x.shape
    n = h0.shape[1]
    hs, cs = np.empty((batch, seq_len + 1, n)), np.empty((batch, seq_len + 1, n))
    hs[:, 0], cs[:, 0] = h0, c0
    acts = np.empty((batch, seq_len, 4 * n))  # σ(i), σ(f), tanh(g), σ(o)
    xw = x @ w["W_x"] + w["b"]
    for t in range(seq_len):
        a = xw[:, t] + hs[:, t] @ w["W_h"]
        i, f, g, o = sigmoid(a[:, :n]), sigmoid(a[:, n : 2 * n]), np.tanh(a[:, 2 * n : 3 * n]), sigmoid(a[:, 3 * n :])
        acts[:, t] = np.concatenate([i, f, g, o], axis=1)
        cs[:, t + 1] = f * cs[:, t] + i * g
        hs[:, t + 1] = o * np.tanh(cs[:, t + 1])
    return hs, (hs[:, -1], cs[:, -1]), {"cs": cs, "acts": acts}


def lstm_backward(w: Weights, x: np.ndarray, hs: np.ndarray, cache: dict, dh_out: np.ndarray) -> Weights:
    cs, acts = cache["cs"], cache["acts"]
    n = hs.shape[2]
    da_all = np.empty((*dh_out.shape[:2], 4 * n))
    dh_next, dc_next = np.zeros_like(hs[:, 0]), np.zeros_like(hs[:, 0])
    for t in reversed(range(x.shape[1])):
        i, f, g, o = (acts[:, t, k * n : (k + 1) * n] for k in range(4))
        tc = np.tanh(cs[:, t + 1])
        dh = dh_out[:, t] + dh_next
        dc = dc_next + dh * o * (1.0 - tc**2)
        da = np.concatenate(
            [dc * g * i * (1.0 - i), dc * cs[:, t] * f * (1.0 - f), dc * i * (1.0 - g**2), dh * tc * o * (1.0 - o)],
            axis=1,
        )
        da_all[:, t] = da
        dc_next = dc * f
        dh_next = da @ w["W_h"].T
    return {
        "W_x": np.einsum("bti,btg->ig", x, da_all),
        "W_h": np.einsum("bti,btg->ig", hs[:, :-1], da_all),
        "b": da_all.sum(axis=(0, 1)),
    }


def gru_forward(w: Weights, x: np.ndarray, state: State) -> tuple[np.ndarray, State, dict]:
    """[r z n]_x = x W_x + b_x, [r z n]_h = h W_h + b_h; r = σ(r_x + r_h), z = σ(z_x + z_h),
    n = tanh(n_x + r n_h) (reset after the matmul); h' = (1 - z) n + z h."""
    (h0,) = state
    batch, seq_len, _ = x.shape
    n_ = h0.shape[1]
    hs = np.empty((batch, seq_len + 1, n_))
    hs[:, 0] = h0
    acts = np.empty((batch, seq_len, 3 * n_))  # r, z, n
    hn = np.empty((batch, seq_len, n_))  # n_h: what the reset gate multiplies
    xw = x @ w["W_x"] + w["b_x"]
    for t in range(seq_len):
        hw = hs[:, t] @ w["W_h"] + w["b_h"]
        r = sigmoid(xw[:, t, :n_] + hw[:, :n_])
        z = sigmoid(xw[:, t, n_ : 2 * n_] + hw[:, n_ : 2 * n_])
        n = np.tanh(xw[:, t, 2 * n_ :] + r * hw[:, 2 * n_ :])
        acts[:, t] = np.concatenate([r, z, n], axis=1)
        hn[:, t] = hw[:, 2 * n_ :]
        hs[:, t + 1] = (1.0 - z) * n + z * hs[:, t]
    return hs, (hs[:, -1],), {"acts": acts, "hn": hn}


def gru_backward(w: Weights, x: np.ndarray, hs: np.ndarray, cache: dict, dh_out: np.ndarray) -> Weights:
    acts, hn = cache["acts"], cache["hn"]
    n_ = hs.shape[2]
    dx_all = np.empty((*dh_out.shape[:2], 3 * n_))  # gradients of x W_x + b_x
    dhw_all = np.empty_like(dx_all)  # gradients of h W_h + b_h
    dh_next = np.zeros_like(hs[:, 0])
    for t in reversed(range(x.shape[1])):
        r, z, n = (acts[:, t, k * n_ : (k + 1) * n_] for k in range(3))
        dh = dh_out[:, t] + dh_next
        dan = dh * (1.0 - z) * (1.0 - n**2)  # through n's pre-activation n_x + r n_h
        dar = dan * hn[:, t] * r * (1.0 - r)
        daz = dh * (hs[:, t] - n) * z * (1.0 - z)
        dx_all[:, t] = np.concatenate([dar, daz, dan], axis=1)
        dhw_all[:, t] = np.concatenate([dar, daz, dan * r], axis=1)
        dh_next = dh * z + dhw_all[:, t] @ w["W_h"].T
    return {
        "W_x": np.einsum("bti,btg->ig", x, dx_all),
        "W_h": np.einsum("bti,btg->ig", hs[:, :-1], dhw_all),
        "b_x": dx_all.sum(axis=(0, 1)),
        "b_h": dhw_all.sum(axis=(0, 1)),
    }


CELLS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "rnn": (rnn_forward, rnn_backward),
    "lstm": (lstm_forward, lstm_backward),
    "gru": (gru_forward, gru_backward),
}


# ---- the model: a cell and the head q_t = h_t W_hq + b_q ----


def forward(model: str, w: Weights, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
    """Predictions (batch, seq_len, 1) and the last state."""
    hs, last, _ = CELLS[model][0](w, x, state)
    return hs[:, 1:] @ w["W_hq"] + w["b_q"], last


def gradients(model: str, w: Weights, x: np.ndarray, y: np.ndarray, state: State) -> tuple[float, Weights, State]:
    """MSE loss over the window, its gradients by BPTT through the window (the state it starts from held
    constant), and the last state."""
    cell_forward, cell_backward = CELLS[model]
    hs, last, cache = cell_forward(w, x, state)
    q = hs[:, 1:] @ w["W_hq"] + w["b_q"]
    dq = 2.0 * (q - y) / q.size
    grads = cell_backward(w, x, hs, cache, dq @ w["W_hq"].T)  # dq W_hq^T: what each h_t feeds the head
    grads.update(W_hq=np.einsum("bth,bto->ho", hs[:, 1:], dq), b_q=dq.sum(axis=(0, 1)))
    return float(np.mean((q - y) ** 2)), grads, last


class Adam:
    """torch.optim.Adam's update rule (no weight decay, no amsgrad)."""

    def __init__(self, params: Weights, lr: float, eps: float) -> None:
        self.lr, self.eps, self.t = lr, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: Weights, grads: Weights) -> None:
        self.t += 1
        c1, c2 = 1.0 - BETA1**self.t, 1.0 - BETA2**self.t
        for k, g in grads.items():
            self.m[k] = BETA1 * self.m[k] + (1.0 - BETA1) * g
            self.v[k] = BETA2 * self.v[k] + (1.0 - BETA2) * g * g
            params[k] -= self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)


class NumpyRNN(Backend):
    """The numpy oracle, float64 inside."""

    name = "numpy"
    models = tuple(MODELS)

    def __init__(self, config: TaskConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        self.w: Weights = {}
        self.reset_state()

    def _set_weights(self, weights: Weights) -> None:
        self.w = {k: v.astype(np.float64) for k, v in weights.items()}
        self.adam = Adam(self.w, self.config.lr, self.config.adam_eps)

    def _get_weights(self) -> Weights:
        return self.w

    def reset_state(self) -> None:
        shape = (self.config.batch_size, self.config.hidden_size)
        self.state: State = tuple(np.zeros(shape) for _ in MODELS[self.config.model].state)

    def _to_native(self, array: np.ndarray) -> Any:
        return array.astype(np.float64)

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, grads, self.state = gradients(self.config.model, self.w, x, y, self.state)
        self.adam.step(self.w, grads)
        return loss

    def _predict(self, x: np.ndarray) -> np.ndarray:
        q, self.state = forward(self.config.model, self.w, x, self.state)
        return q.astype(np.float32)

    def info(self) -> Info:
        return Info(framework=f"numpy {np.__version__}", kernel="numpy BPTT, float64", mode=self.mode)
