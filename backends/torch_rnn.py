"""`torch-rnn`: the seed's model, `nn.RNN` + `nn.Linear`, on CPU or CUDA (cuDNN's RNN kernel).

`nn.RNN` keeps two biases, `bias_ih` and `bias_hh`, that always receive the same gradient.
Like the seed, this backend trains both by default: 32 more parameters than the canonical
model, and under Adam the effective bias moves about twice as fast. `freeze_bias_hh=True`
holds `bias_hh` at zero, which makes the model exactly the canonical one.

Modes: eager (loss.backward(), torch.optim.Adam), compile (the whole step as one torch.compile
graph; Dynamo traces nn.RNN only with `allow_rnn`), cuda-graph (CUDA only).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from backends._torch_common import TorchBackend, loss_grad_adam
from backends.task import TaskConfig


def rnn_forward(module: nn.Module, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.RNN over the window, the linear head on the whole output sequence."""
    out, h_last = module["rnn"](x, h)
    return module["head"](out), h_last


def rnn_step(
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
    """One training step for torch.compile: forward, gradients, Adam (one code object for every instance).
    The same shape as torch_cell.cell_step on purpose: Dynamo caches per code object, so each backend's
    compiled step must be its own function, not one made by a shared factory."""
    q, h_last = rnn_forward(module, x, h)
    return loss_grad_adam(q, y, h_last, params, exp_avg, exp_avg_sq, step, hyper)


class TorchRNN(TorchBackend):
    """nn.RNN(batch_first=True) with the linear head applied to the whole output sequence."""

    name = "torch-rnn"
    parity_options = {"freeze_bias_hh": True}
    step_function = staticmethod(rnn_step)
    dynamo_settings = {"allow_rnn": True}

    def __init__(
        self,
        config: TaskConfig,
        device: str = "cpu",
        freeze_bias_hh: bool = False,
        compile: bool = False,
        cuda_graph: bool = False,
        fused: bool = False,
    ) -> None:
        self.freeze_bias_hh = bool(freeze_bias_hh)
        super().__init__(config, device, compile=compile, cuda_graph=cuda_graph, fused=fused)

    def build(self) -> nn.Module:
        module = nn.ModuleDict(
            {
                "rnn": nn.RNN(self.config.input_size, self.config.hidden_size, batch_first=True),
                "head": nn.Linear(self.config.hidden_size, 1),
            }
        )
        module["rnn"].bias_hh_l0.requires_grad_(not self.freeze_bias_hh)
        return module

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return rnn_forward(self.module, x, h)

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        rnn, head = self.module["rnn"], self.module["head"]
        with torch.no_grad():  # copy_ into the parameters: nothing keeps the caller's arrays
            rnn.weight_ih_l0.copy_(torch.from_numpy(weights["W_xh"].T.copy()))
            rnn.weight_hh_l0.copy_(torch.from_numpy(weights["W_hh"].T.copy()))
            rnn.bias_ih_l0.copy_(torch.from_numpy(weights["b_h"]))
            rnn.bias_hh_l0.zero_()
            head.weight.copy_(torch.from_numpy(weights["W_hq"].T.copy()))
            head.bias.copy_(torch.from_numpy(weights["b_q"]))
        if self.torch_device.type == "cuda":
            rnn.flatten_parameters()
        self._after_set_weights()

    def _get_weights(self) -> dict[str, np.ndarray]:
        rnn, head = self.module["rnn"], self.module["head"]

        def np_(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().numpy()

        return {
            "W_xh": np_(rnn.weight_ih_l0).T,
            "W_hh": np_(rnn.weight_hh_l0).T,
            "b_h": np_(rnn.bias_ih_l0 + rnn.bias_hh_l0),  # the effective bias
            "W_hq": np_(head.weight).T,
            "b_q": np_(head.bias),
        }

    def param_count(self) -> int:
        return sum(p.numel() for p in self.trainable())

    def kernel(self) -> str:
        biases = "bias_hh frozen at 0" if self.freeze_bias_hh else "both biases trained"
        if self.compile:
            generated = "C++" if self.torch_device.type == "cpu" else "Triton"
            return f"nn.RNN traced by Dynamo, inductor {generated} kernels, {biases}"
        cudnn = self.torch_device.type == "cuda" and torch.backends.cudnn.enabled
        return f"{'cuDNN RNN' if cudnn else 'ATen RNN'}, {biases}"
