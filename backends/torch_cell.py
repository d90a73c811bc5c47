"""`torch-cell`: the formulas written out in PyTorch, a Python loop over time steps.

The canonical weights are the parameters, as they are (backends/models.py gives the equations):
    rnn   h' = tanh(x W_xh + h W_hh + b_h)
    lstm  [i f g o] = x W_x + h W_h + b;  c' = σ(f) c + σ(i) tanh(g);  h' = σ(o) tanh(c')
    gru   [r z n]_x = x W_x + b_x, [r z n]_h = h W_h + b_h;  r, z = σ(.. + ..);  n = tanh(n_x + r n_h);
          h' = (1 - z) n + z h
and q_t = h_t W_hq + b_q. The input projection is one matmul for the whole window; only the recurrence loops.

Modes: eager (loss.backward(), torch.optim.Adam), compile (forward, gradients and Adam as one
torch.compile graph, the loop unrolled; one graph per size and model), cuda-graph (CUDA only).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from backends._torch_common import TorchBackend, loss_grad_adam


def cell_forward(module: nn.Module, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rnn over the window from state h (1, batch, hidden): predictions and the last state."""
    xw = x @ module["W_xh"] + module["b_h"]
    state = h[0]
    outs = []
    for t in range(x.shape[1]):
        state = torch.tanh(xw[:, t] + state @ module["W_hh"])
        outs.append(state)
    hs = torch.stack(outs, dim=1)
    return hs @ module["W_hq"] + module["b_q"], state.unsqueeze(0)


def lstm_cell_forward(module: nn.Module, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The LSTM over the window from state (2, batch, hidden) = h and c stacked; returns the last one so."""
    xw = x @ module["W_x"] + module["b"]
    h, c = state[0], state[1]
    outs = []
    for t in range(x.shape[1]):
        i, f, g, o = (xw[:, t] + h @ module["W_h"]).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    hs = torch.stack(outs, dim=1)
    return hs @ module["W_hq"] + module["b_q"], torch.stack([h, c])


def gru_cell_forward(module: nn.Module, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The GRU (reset after the recurrent matmul) over the window from state h (1, batch, hidden)."""
    xw = x @ module["W_x"] + module["b_x"]
    h = state[0]
    outs = []
    for t in range(x.shape[1]):
        x_r, x_z, x_n = xw[:, t].chunk(3, dim=1)
        h_r, h_z, h_n = (h @ module["W_h"] + module["b_h"]).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        outs.append(h)
    hs = torch.stack(outs, dim=1)
    return hs @ module["W_hq"] + module["b_q"], h.unsqueeze(0)


# One training step for torch.compile per model: forward, gradients, Adam (one code object for every instance
# of a model: Dynamo caches per code object, so each model's step is its own function).


def cell_step(
    module: nn.Module,
    params: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    step: torch.Tensor,
    hyper: torch.Tensor,
    h: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    q, h_last = cell_forward(module, x, h)
    return loss_grad_adam(q, y, h_last, params, exp_avg, exp_avg_sq, step, hyper)


def lstm_cell_step(
    module: nn.Module,
    params: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    step: torch.Tensor,
    hyper: torch.Tensor,
    state: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    q, last = lstm_cell_forward(module, x, state)
    return loss_grad_adam(q, y, last, params, exp_avg, exp_avg_sq, step, hyper)


def gru_cell_step(
    module: nn.Module,
    params: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    step: torch.Tensor,
    hyper: torch.Tensor,
    h: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    q, h_last = gru_cell_forward(module, x, h)
    return loss_grad_adam(q, y, h_last, params, exp_avg, exp_avg_sq, step, hyper)


FORWARDS = {"rnn": cell_forward, "lstm": lstm_cell_forward, "gru": gru_cell_forward}


class TorchCell(TorchBackend):
    """Hand-written rnn, LSTM and GRU cells in PyTorch."""

    name = "torch-cell"
    models = ("rnn", "lstm", "gru")
    step_functions = {"rnn": cell_step, "lstm": lstm_cell_step, "gru": gru_cell_step}

    def build(self) -> nn.Module:
        return nn.ParameterDict(
            {name: nn.Parameter(torch.zeros(shape)) for name, shape in self.config.weight_shapes.items()}
        )

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return FORWARDS[self.config.model](self.module, x, h)

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        with torch.no_grad():  # copy_ into the parameters: nothing keeps the caller's arrays
            for name in self.config.weight_names:
                self.module[name].copy_(torch.from_numpy(weights[name]))
        self._after_set_weights()

    def _get_weights(self) -> dict[str, np.ndarray]:
        return {name: self.module[name].detach().cpu().numpy() for name in self.config.weight_names}

    def kernel(self) -> str:
        cuda = self.torch_device.type == "cuda"
        if self.compile:
            return f"loop unrolled, inductor {'Triton' if cuda else 'C++'} kernels: forward, gradients, Adam"
        return "Python loop of small CUDA kernels" if cuda else "Python loop, ATen ops"
