"""`numpy`: forward, backpropagation through time and Adam written out by hand.

This is the oracle every other backend is checked against. It computes in float64 so its
own rounding is far below the float32 backends' differences, and applies Adam exactly as
torch.optim.Adam does: p -= lr * m_hat / (sqrt(v_hat) + eps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backends.base import Backend, Info
from backends.task import TaskConfig

BETA1, BETA2 = 0.9, 0.999


def forward(w: dict[str, np.ndarray], x: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden states (batch, seq_len+1, hidden) starting with h0, and predictions (batch, seq_len, 1)."""
    batch, seq_len, _ = x.shape
    hs = np.empty((batch, seq_len + 1, h0.shape[1]), dtype=w["W_hh"].dtype)
    hs[:, 0] = h0
    xw = x @ w["W_xh"] + w["b_h"]  # input projection for all steps at once
    for t in range(seq_len):
        hs[:, t + 1] = np.tanh(xw[:, t] + hs[:, t] @ w["W_hh"])
    return hs, hs[:, 1:] @ w["W_hq"] + w["b_q"]


def gradients(
    w: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, h0: np.ndarray
) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """MSE loss, its gradients by BPTT through the window (h0 held constant), and the last hidden state."""
    hs, q = forward(w, x, h0)
    dq = 2.0 * (q - y) / q.size
    g = {"W_hq": np.einsum("bth,bto->ho", hs[:, 1:], dq), "b_q": dq.sum(axis=(0, 1))}
    dh_out = dq @ w["W_hq"].T  # (batch, seq_len, hidden): what each h_t feeds the head
    da_all = np.empty_like(dh_out)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        da = (dh_out[:, t] + dh_next) * (1.0 - hs[:, t + 1] ** 2)
        da_all[:, t] = da
        dh_next = da @ w["W_hh"].T
    g["W_xh"] = np.einsum("bti,bth->ih", x, da_all)
    g["W_hh"] = np.einsum("bti,bth->ih", hs[:, :-1], da_all)
    g["b_h"] = da_all.sum(axis=(0, 1))
    return float(np.mean((q - y) ** 2)), g, hs[:, -1]


class Adam:
    """torch.optim.Adam's update rule (no weight decay, no amsgrad)."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, eps: float) -> None:
        self.lr, self.eps, self.t = lr, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        c1, c2 = 1.0 - BETA1**self.t, 1.0 - BETA2**self.t
        for k, g in grads.items():
            self.m[k] = BETA1 * self.m[k] + (1.0 - BETA1) * g
            self.v[k] = BETA2 * self.v[k] + (1.0 - BETA2) * g * g
            params[k] -= self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)


class NumpyRNN(Backend):
    """The numpy oracle, float64 inside."""

    name = "numpy"

    def __init__(self, config: TaskConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        self.w: dict[str, np.ndarray] = {}
        self.h = np.zeros((config.batch_size, config.hidden_size))

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.w = {k: v.astype(np.float64) for k, v in weights.items()}
        self.adam = Adam(self.w, self.config.lr, self.config.adam_eps)

    def _get_weights(self) -> dict[str, np.ndarray]:
        return self.w

    def reset_state(self) -> None:
        self.h = np.zeros((self.config.batch_size, self.config.hidden_size))

    def _to_native(self, array: np.ndarray) -> Any:
        return array.astype(np.float64)

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, grads, self.h = gradients(self.w, x, y, self.h)
        self.adam.step(self.w, grads)
        return loss

    def _predict(self, x: np.ndarray) -> np.ndarray:
        hs, q = forward(self.w, x, self.h)
        self.h = hs[:, -1]
        return q.astype(np.float32)

    def info(self) -> Info:
        return Info(framework=f"numpy {np.__version__}", kernel="numpy BPTT, float64", mode=self.mode)
