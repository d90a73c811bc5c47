"""What the PyTorch backends share: device handling, the Adam step, and the CUDA-graph mode.

A subclass builds its parameters and provides `forward(x, h) -> (predictions, last_h)`
plus the mapping to and from canonical weights; everything else lives here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from backends import threads
from backends.base import Backend, BackendUnavailable
from backends.task import TaskConfig


def apply_threads() -> None:
    """Apply the suite's thread count to PyTorch (intra-op any time; inter-op only once, before work)."""
    n = threads.count()
    if n is not None:
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # already set or parallel work started: keep what is in force
            pass
    threads.record("torch", intra_op=torch.get_num_threads(), inter_op=torch.get_num_interop_threads())


class TorchBackend(Backend):
    """Base for PyTorch backends. Options: cuda_graph (CUDA only) replays the whole step as one graph."""

    devices = ("cpu", "cuda")

    def __init__(self, config: TaskConfig, device: str = "cpu", cuda_graph: bool = False) -> None:
        super().__init__(config, device)
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(f"{self.name}: PyTorch sees no CUDA GPU (torch {torch.__version__})")
        if cuda_graph and device != "cuda":
            raise ValueError(f"{self.name}: cuda_graph=True needs device='cuda', got {device!r}")
        apply_threads()
        if device == "cuda":  # full float32 like every other row: cuDNN's RNN may otherwise use TF32
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.torch_device = torch.device(device)
        self.cuda_graph = bool(cuda_graph)
        self.h = torch.zeros(1, config.batch_size, config.hidden_size, device=self.torch_device)
        self._graph: Any = None
        self.module = self.build().to(self.torch_device)

    # ---- what a subclass provides ----

    def build(self) -> torch.nn.Module:
        """Create the parameters (canonical values are loaded later by set_weights)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions (batch, seq_len, 1) and the last hidden state (1, batch, hidden)."""
        raise NotImplementedError

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    # ---- the contract ----

    def _after_set_weights(self) -> None:
        capturable = self.cuda_graph  # Adam keeps its step count on the GPU so a graph can replay it
        self.optimizer = torch.optim.Adam(
            self.trainable(), lr=self.config.lr, eps=self.config.adam_eps, capturable=capturable
        )
        self._graph = None

    def reset_state(self) -> None:
        self.h.zero_()  # in place: a captured graph reads this very buffer

    def _to_native(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.torch_device)

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if self.cuda_graph:
            return self._graph_step(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        q, h_last = self.forward(x, self.h)
        loss = torch.nn.functional.mse_loss(q, y)
        loss.backward()
        self.optimizer.step()
        self.h = h_last.detach()  # truncated BPTT: the next window starts from a constant state
        return loss.item()  # .item() waits for the device

    def _predict(self, x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            q, h_last = self.forward(x, self.h)
            if self.cuda_graph:
                self.h.copy_(h_last)  # in place: the captured step reads and writes this very buffer
            else:
                self.h = h_last
        return q.cpu().numpy()  # the copy to the host waits for the device

    def synchronize(self) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize()

    def device_peak_bytes(self) -> int | None:
        if self.torch_device.type != "cuda":
            return None
        return int(torch.cuda.max_memory_allocated(self.torch_device))

    def info(self) -> dict[str, Any]:
        out = {"framework": f"torch {torch.__version__}", "mode": "cuda-graph" if self.cuda_graph else "eager"}
        if self.torch_device.type == "cuda":
            out["gpu"] = torch.cuda.get_device_name(self.torch_device)
            out["tf32"] = torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32
        return out

    # ---- CUDA graph mode ----

    def _graph_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if self._graph is None:
            self._capture(x, y)
        self._x.copy_(x)
        self._y.copy_(y)
        self._graph.replay()
        return self._loss.item()

    def _graph_body(self) -> None:
        self.optimizer.zero_grad(set_to_none=False)
        q, h_last = self.forward(self._x, self.h)
        self._loss = torch.nn.functional.mse_loss(q, self._y)
        self._loss.backward()
        self.optimizer.step()
        self.h.copy_(h_last.detach())  # after backward, which still needed the old state

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Capture forward+backward+Adam once. Warm-up runs on a side stream, as CUDA graphs require,
        on copies of weights and optimizer state that are restored afterwards, so the losses match eager mode."""
        self._x, self._y = x.clone(), y.clone()
        saved = self._snapshot()
        for p in self.trainable():  # gradients must exist before capture so the graph owns their buffers
            p.grad = torch.zeros_like(p)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                self._graph_body()
        torch.cuda.current_stream().wait_stream(stream)
        self._restore(saved)
        graph = torch.cuda.CUDAGraph()
        # thread_local: only this thread must avoid unsafe CUDA calls while capturing; the runtime
        # threads of other frameworks loaded in the same process (JAX's, say) must not break capture
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._graph_body()
        self._restore(saved)  # capture itself does not run kernels, but be explicit
        self._graph = graph

    def _snapshot(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Copies of the weights and the carried state, for `_restore`."""
        return [p.detach().clone() for p in self.module.parameters()], self.h.clone()

    def _restore(self, snapshot: tuple[list[torch.Tensor], torch.Tensor]) -> None:
        """Back to the snapshot's weights and state, with a fresh Adam, in place (a graph holds these buffers)."""
        params, h = snapshot
        with torch.no_grad():
            for p, saved in zip(self.module.parameters(), params):
                p.copy_(saved)
            self.h.copy_(h)
            for state in self.optimizer.state.values():
                for value in state.values():
                    if torch.is_tensor(value):
                        value.zero_()  # fresh Adam: moments and step count back to zero
