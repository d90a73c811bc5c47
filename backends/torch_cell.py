"""`torch-cell`: the formula written out in PyTorch, a Python loop over time steps.

h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h), q_t = h_t W_hq + b_q, with the canonical weights
as explicit parameters. The input projection is one matmul for the whole window; only the
recurrence loops.

Modes: eager (loss.backward(), torch.optim.Adam), compile (forward, gradients and Adam as one
torch.compile graph, the loop unrolled), cuda-graph (CUDA only).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from backends._torch_common import TorchBackend, loss_grad_adam
from backends.task import WEIGHT_NAMES


def cell_forward(module: nn.Module, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The formula over the window from state h (1, batch, hidden): predictions and the last state."""
    xw = x @ module["W_xh"] + module["b_h"]
    state = h[0]
    outs = []
    for t in range(x.shape[1]):
        state = torch.tanh(xw[:, t] + state @ module["W_hh"])
        outs.append(state)
    hs = torch.stack(outs, dim=1)
    return hs @ module["W_hq"] + module["b_q"], state.unsqueeze(0)


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
    """One training step for torch.compile: forward, gradients, Adam (one code object for every instance)."""
    q, h_last = cell_forward(module, x, h)
    return loss_grad_adam(q, y, h_last, params, exp_avg, exp_avg_sq, step, hyper)


class TorchCell(TorchBackend):
    """Hand-written tanh RNN cell in PyTorch."""

    name = "torch-cell"
    step_function = staticmethod(cell_step)

    def build(self) -> nn.Module:
        return nn.ParameterDict(
            {name: nn.Parameter(torch.zeros(shape)) for name, shape in self.config.weight_shapes.items()}
        )

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return cell_forward(self.module, x, h)

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        with torch.no_grad():  # copy_ into the parameters: nothing keeps the caller's arrays
            for name in WEIGHT_NAMES:
                self.module[name].copy_(torch.from_numpy(weights[name]))
        self._after_set_weights()

    def _get_weights(self) -> dict[str, np.ndarray]:
        return {name: self.module[name].detach().cpu().numpy() for name in WEIGHT_NAMES}

    def kernel(self) -> str:
        cuda = self.torch_device.type == "cuda"
        if self.compile:
            return f"loop unrolled, inductor {'Triton' if cuda else 'C++'} kernels: forward, gradients, Adam"
        return "Python loop of small CUDA kernels" if cuda else "Python loop, ATen ops"
