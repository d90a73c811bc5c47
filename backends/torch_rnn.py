"""`torch-rnn`: the framework's own recurrent modules, `nn.RNN`, `nn.LSTM` or `nn.GRU` + `nn.Linear`, on CPU
or CUDA (cuDNN's RNN kernels).

Canonical weights onto PyTorch's layout (backends/models.py): PyTorch keeps each input and recurrent
matrix as (gates * hidden, in), the canonical one is (in, gates * hidden), so `weight_ih_l0 = W_x.T` and
`weight_hh_l0 = W_h.T` (W_xh, W_hh for the rnn); the gate blocks keep their order, because the canonical
orders are PyTorch's (LSTM i, f, g, o; GRU r, z, n, reset applied after the recurrent matmul).

Biases. PyTorch keeps two per gate, `bias_ih` and `bias_hh`. In the rnn and the LSTM they are only ever
added together, so they receive the same gradient: the canonical model has one (b_h, b), which is
`bias_ih`; `bias_hh` starts at zero and is read back into the effective bias. Like the seed, this backend
trains both by default (hidden or 4 hidden more parameters than the canonical model, and under Adam the
effective bias moves about twice as fast); `freeze_bias_hh=True` holds `bias_hh` at zero, which makes the
model exactly the canonical one. In the GRU the reset gate multiplies n's recurrent bias, so the two
biases are different parameters and both are canonical (`bias_ih = b_x`, `bias_hh = b_h`, both trained):
`freeze_bias_hh` does not apply to the GRU.

Modes: eager (loss.backward(), torch.optim.Adam), compile (the whole step as one torch.compile graph;
Dynamo traces the recurrent modules only with `allow_rnn`), cuda-graph (CUDA only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from backends._torch_common import TorchBackend, loss_grad_adam
from backends.task import TaskConfig

MODULES: dict[str, type[nn.Module]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

# canonical name -> the module's parameter; matrices are transposed on the way (see the docstring)
LAYOUT: dict[str, dict[str, str]] = {
    "rnn": {"W_xh": "weight_ih_l0", "W_hh": "weight_hh_l0", "b_h": "bias_ih_l0"},
    "lstm": {"W_x": "weight_ih_l0", "W_h": "weight_hh_l0", "b": "bias_ih_l0"},
    "gru": {"W_x": "weight_ih_l0", "W_h": "weight_hh_l0", "b_x": "bias_ih_l0", "b_h": "bias_hh_l0"},
}


@contextlib.contextmanager
def onednn_off() -> Iterator[None]:
    """oneDNN (mkldnn) off in this block, nothing else changed (torch.backends.mkldnn.flags would also set
    its TF32 and determinism switches to its defaults)."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


def rnn_forward(module: nn.Module, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.RNN or nn.GRU over the window, the linear head on the whole output sequence."""
    out, h_last = module["rnn"](x, h)
    return module["head"](out), h_last


def lstm_forward(module: nn.Module, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.LSTM over the window from state (2, batch, hidden) = h and c stacked; returns the last one so."""
    out, (h, c) = module["rnn"](x, (state[0:1], state[1:2]))
    return module["head"](out), torch.cat([h, c])


# One training step for torch.compile per model: forward, gradients, Adam (one code object for every
# instance). The same shape as torch_cell's steps on purpose: Dynamo caches per code object, so each
# backend's and model's compiled step must be its own function, not one made by a shared factory.


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
    q, h_last = rnn_forward(module, x, h)
    return loss_grad_adam(q, y, h_last, params, exp_avg, exp_avg_sq, step, hyper)


def lstm_step(
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
    q, last = lstm_forward(module, x, state)
    return loss_grad_adam(q, y, last, params, exp_avg, exp_avg_sq, step, hyper)


def gru_step(
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
    q, h_last = rnn_forward(module, x, h)
    return loss_grad_adam(q, y, h_last, params, exp_avg, exp_avg_sq, step, hyper)


class TorchRNN(TorchBackend):
    """nn.RNN / nn.LSTM / nn.GRU (batch_first=True) with the linear head applied to the whole output sequence."""

    name = "torch-rnn"
    models = ("rnn", "lstm", "gru")
    parity_options = {"freeze_bias_hh": True}
    step_functions = {"rnn": rnn_step, "lstm": lstm_step, "gru": gru_step}
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
        self._forward = lstm_forward if config.model == "lstm" else rnn_forward

    def build(self) -> nn.Module:
        cell = MODULES[self.config.model](self.config.input_size, self.config.hidden_size, batch_first=True)
        module = nn.ModuleDict({"rnn": cell, "head": nn.Linear(self.config.hidden_size, 1)})
        # the GRU's bias_hh is the canonical b_h: always trained
        cell.bias_hh_l0.requires_grad_(not (self.freeze_bias_hh and self.config.model != "gru"))
        return module

    def trace_context(self) -> contextlib.AbstractContextManager[Any]:
        # Inductor (torch 2.13, CPU) cannot run the oneDNN LSTM layer that nn.LSTM's decomposition picks when
        # the input needs no gradient: its backward's workspace is undefined ("expected Tensor() for op:
        # aten.mkldnn_rnn_layer", pytorch#158007). Traced with oneDNN off, the LSTM decomposes into its per-step
        # ATen ops, which inductor compiles. Inductor's cache key leaves this switch out: a graph traced with
        # oneDNN on and cached would be served here too (the benchmark's runs use fresh caches)
        if self.config.model == "lstm" and self.torch_device.type == "cpu":
            return onednn_off()
        return super().trace_context()

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._forward(self.module, x, h)

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        cell, head = self.module["rnn"], self.module["head"]
        with torch.no_grad():  # copy_ into the parameters: nothing keeps the caller's arrays
            cell.bias_hh_l0.zero_()  # the rnn's and LSTM's second bias (the GRU's is set below)
            for name, attr in LAYOUT[self.config.model].items():
                value = weights[name].T if weights[name].ndim == 2 else weights[name]
                getattr(cell, attr).copy_(torch.from_numpy(np.ascontiguousarray(value)))
            head.weight.copy_(torch.from_numpy(weights["W_hq"].T.copy()))
            head.bias.copy_(torch.from_numpy(weights["b_q"]))
        if self.torch_device.type == "cuda":
            cell.flatten_parameters()
        self._after_set_weights()

    def _get_weights(self) -> dict[str, np.ndarray]:
        cell, head = self.module["rnn"], self.module["head"]

        def np_(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().numpy()

        out = {}
        for name, attr in LAYOUT[self.config.model].items():
            value = getattr(cell, attr)
            if attr == "bias_ih_l0" and self.config.model != "gru":
                value = value + cell.bias_hh_l0  # the effective bias
            out[name] = np_(value).T if value.ndim == 2 else np_(value)
        return {**out, "W_hq": np_(head.weight).T, "b_q": np_(head.bias)}

    def param_count(self) -> int:
        return sum(p.numel() for p in self.trainable())

    def kernel(self) -> str:
        kind = type(self.module["rnn"]).__name__  # RNN, LSTM or GRU
        if self.config.model == "gru":
            biases = "both biases canonical"
        else:
            biases = "bias_hh frozen at 0" if self.freeze_bias_hh else "both biases trained"
        if self.compile:
            generated = "C++" if self.torch_device.type == "cpu" else "Triton"
            return f"nn.{kind} traced by Dynamo, inductor {generated} kernels, {biases}"
        cudnn = self.torch_device.type == "cuda" and torch.backends.cudnn.enabled
        return f"{'cuDNN' if cudnn else 'ATen'} {kind}, {biases}"
