"""`torch-cell`: the formula written out in PyTorch, a Python loop over time steps.

h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h), q_t = h_t W_hq + b_q, with the canonical weights
as explicit parameters. The input projection is one matmul for the whole window; only the
recurrence loops.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from backends._torch_common import TorchBackend
from backends.task import WEIGHT_NAMES, TaskConfig


class TorchCell(TorchBackend):
    """Hand-written tanh RNN cell in PyTorch."""

    name = "torch-cell"

    def build(self) -> nn.Module:
        return nn.ParameterDict(
            {name: nn.Parameter(torch.zeros(shape)) for name, shape in self.config.weight_shapes.items()}
        )

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.module
        xw = x @ w["W_xh"] + w["b_h"]
        state = h[0]
        outs = []
        for t in range(x.shape[1]):
            state = torch.tanh(xw[:, t] + state @ w["W_hh"])
            outs.append(state)
        hs = torch.stack(outs, dim=1)
        return hs @ w["W_hq"] + w["b_q"], state.unsqueeze(0)

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for name in WEIGHT_NAMES:
                self.module[name].copy_(torch.from_numpy(weights[name]))
        self._after_set_weights()

    def _get_weights(self) -> dict[str, np.ndarray]:
        return {name: self.module[name].detach().cpu().numpy() for name in WEIGHT_NAMES}

    def info(self) -> dict[str, Any]:
        kernel = "Python loop of small CUDA kernels" if self.torch_device.type == "cuda" else "Python loop, ATen ops"
        return {**super().info(), "kernel": kernel}


class TorchCellGraph(TorchCell):
    """torch-cell with the whole training step captured once in a CUDA graph and replayed."""

    name = "torch-cell-graph"
    devices = ("cuda",)

    def __init__(self, config: TaskConfig, device: str = "cuda") -> None:
        super().__init__(config, device, cuda_graph=True)
