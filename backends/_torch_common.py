"""What the PyTorch backends share: device handling, the eager Adam step, the compile mode and the
CUDA-graph mode.

A subclass builds its parameters, provides `forward(x, state) -> (predictions, last_state)`, the mapping
to and from canonical weights, and (for the compile mode) `step_functions`: for each model it has, a
module-level function `step(module, params, exp_avg, exp_avg_sq, step, hyper, state, x, y) -> (loss,
last_state)` that ends in `loss_grad_adam`. Everything else lives here.

The carried state is one tensor of shape (len(model.state), batch, hidden): h for rnn and gru, h and c
stacked for lstm. One tensor whatever the model, so resetting it, copying it in place (a captured CUDA
graph reads that very buffer) and passing it to the compiled step are the same code for every model.

Compile mode. `torch.compile` around `loss.backward(); optimizer.step()` gives three graphs
(`Optimizer.step` breaks the graph on purpose, `zero_grad` is excluded from Dynamo), so the step
instead takes its gradients with `torch.autograd.grad` and applies Adam written out here, the
same arithmetic as `torch.optim.Adam`: forward, gradients and update are one graph (`fullgraph=True`
makes anything else an error). The parameters, Adam's moments and step count, the carried state and
the window are arguments, never captured objects, and the step is one module-level function per
backend and model: Dynamo caches compiled graphs per code object, so every instance of the same sizes
and model reuses the graph compiled first in the process instead of compiling again (a cold compile costs tens of
seconds; inductor's on-disk cache, TORCHINDUCTOR_CACHE_DIR where set, makes later processes faster).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from backends import threads
from backends.base import Backend, BackendUnavailable, Info
from backends.models import MODELS
from backends.task import TaskConfig

BETAS: tuple[float, float] = (0.9, 0.999)  # torch.optim.Adam's defaults, which the eager modes use

# Dynamo settings the compile mode needs while it traces (set only around an instance's first call,
# which is when it can compile): autograd.grad inside the graph, and more than the default 8 compiled
# variants of one step function (one per task size, device and set of trained parameters).
DYNAMO_SETTINGS: dict[str, Any] = {"trace_autograd_ops": True, "recompile_limit": 64}


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


# ---- the compiled step's shared parts (Dynamo inlines them into each backend's step function) ----


def adam_update_(
    params: list[torch.Tensor],
    grads: tuple[torch.Tensor, ...],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    step: torch.Tensor,
    hyper: torch.Tensor,
) -> None:
    """torch.optim.Adam's single-tensor update (no weight decay, no amsgrad), in place, with tensors only.
    `step` is a float64 tensor of shape (1,) and `hyper` holds (lr, eps) in float64: bias corrections
    and step size are formed in float64 and rounded to float32 where Adam rounds its Python floats."""
    beta1, beta2 = BETAS
    step.add_(1)
    bias_correction1 = 1 - beta1**step
    step_size = (hyper[0] / bias_correction1).float()
    bias_correction2_sqrt = (1 - beta2**step).sqrt().float()
    eps = hyper[1].float()
    for p, g, m, v in zip(params, grads, exp_avg, exp_avg_sq):
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = v.sqrt() / bias_correction2_sqrt + eps
        p.sub_(step_size * (m / denom))


def loss_grad_adam(
    q: torch.Tensor,
    y: torch.Tensor,
    h_last: torch.Tensor,
    params: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    step: torch.Tensor,
    hyper: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rest of a step after the forward: MSE over the window, gradients, Adam. Returns the loss and
    the last state, both detached (truncated BPTT: the next window starts from a constant state)."""
    loss = torch.nn.functional.mse_loss(q, y)
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        adam_update_(params, grads, exp_avg, exp_avg_sq, step, hyper)
    return loss.detach(), h_last.detach()


@dataclasses.dataclass(frozen=True)
class CompileStats:
    """What an instance's first compiled call cost: Dynamo graphs compiled, graph breaks, seconds.
    Zero graphs: the step was already compiled in this process for these sizes, and was reused."""

    graphs: int
    graph_breaks: int
    seconds: float


_COMPILED: dict[tuple[Callable[..., Any], str], Callable[..., Any]] = {}
# Every first call that compiled something in this process: (step function's name, device type, what it cost)
COMPILE_LOG: list[tuple[str, str, CompileStats]] = []


def inductor_options(device_type: str) -> dict[str, Any]:
    """Inductor options of the compile mode. On the CPU the C++ wrapper (the generated kernels are
    called from C++ rather than Python) roughly halved the step time on the 2-core test machine."""
    return {"cpp_wrapper": True} if device_type == "cpu" else {}


def compiled_function(function: Callable[..., Any], device_type: str) -> Callable[..., Any]:
    """The torch.compile wrapper of a step function, one per function and device type per process."""
    key = (function, device_type)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(function, fullgraph=True, dynamic=False, options=inductor_options(device_type))
    return _COMPILED[key]


class OnTorchDevice:
    """What every backend whose arrays are PyTorch tensors on `torch_device` does the same way."""

    torch_device: torch.device

    def synchronize(self) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize()

    def device_peak_bytes(self) -> int | None:
        if self.torch_device.type != "cuda":
            return None
        return int(torch.cuda.max_memory_allocated(self.torch_device))


class TorchBackend(OnTorchDevice, Backend):
    """Base for PyTorch backends. Options: compile (the whole step as one torch.compile graph),
    cuda_graph (CUDA only: the whole eager step captured once and replayed), fused (torch.optim.Adam's
    fused kernel, eager and CUDA-graph modes)."""

    # per model, the module-level step function compile mode compiles (one code object per backend and model:
    # Dynamo caches compiled graphs per code object)
    step_functions: ClassVar[dict[str, Callable[..., Any]]] = {}
    dynamo_settings: ClassVar[dict[str, Any]] = {}  # further Dynamo settings a subclass's step needs

    def __init__(
        self,
        config: TaskConfig,
        device: str = "cpu",
        compile: bool = False,
        cuda_graph: bool = False,
        fused: bool = False,
    ) -> None:
        super().__init__(config, device)
        if compile and cuda_graph:
            raise ValueError(f"{self.name}: compile and cuda_graph are separate modes; choose one")
        if compile and fused:
            raise ValueError(f"{self.name}: fused applies to torch.optim.Adam, which compile mode does not use")
        if cuda_graph and device != "cuda":
            raise ValueError(f"{self.name}: cuda_graph=True needs device='cuda', got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(f"{self.name}: PyTorch sees no CUDA GPU (torch {torch.__version__})")
        apply_threads()
        if device == "cuda":  # full float32 like every other row: cuDNN's RNN may otherwise use TF32
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.torch_device = torch.device(device)
        self.compile = bool(compile)
        self.cuda_graph = bool(cuda_graph)
        self.fused = bool(fused)
        states = len(MODELS[config.model].state)  # h, or h and c: stacked in one tensor
        self.h = torch.zeros(states, config.batch_size, config.hidden_size, device=self.torch_device)
        self._graph: Any = None
        self.compile_stats: CompileStats | None = None  # set by the first compiled step
        self._compiled: Callable[..., Any] | None = None
        self.step_function = self.step_functions.get(config.model)
        if self.compile:
            if self.step_function is None:
                raise ValueError(f"{self.name}: has no compile mode for the {config.model} model")
            self._compiled = compiled_function(self.step_function, self.torch_device.type)
        self.module = self.build().to(self.torch_device)

    # ---- what a subclass provides ----

    def build(self) -> torch.nn.Module:
        """Create the parameters (canonical values are loaded later by set_weights)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions (batch, seq_len, 1) and the last state (len(model.state), batch, hidden)."""
        raise NotImplementedError

    def kernel(self) -> str:
        """The code path, for Info.kernel."""
        raise NotImplementedError

    def trace_context(self) -> contextlib.AbstractContextManager[Any]:
        """What must hold while the compiled step runs and may be traced (nothing by default)."""
        return contextlib.nullcontext()

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    # ---- the contract ----

    def _after_set_weights(self) -> None:
        """Restart the optimizer: a fresh torch.optim.Adam, or in compile mode zeroed moments and step."""
        self._graph = None
        if self.compile:
            params = self.trainable()
            self._params = params
            self._exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
            self._exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
            # shape (1,), not a 0-d tensor: on torch 2.13 the in-place update of a 0-d float64 argument
            # was lost in the compiled graph (Dynamo treats those like wrapped Python floats)
            self._step = torch.zeros(1, dtype=torch.float64, device=self.torch_device)
            self._hyper = torch.tensor(
                [self.config.lr, self.config.adam_eps], dtype=torch.float64, device=self.torch_device
            )
            return
        capturable = self.cuda_graph  # Adam keeps its step count on the GPU so a graph can replay it
        self.optimizer = torch.optim.Adam(
            self.trainable(),
            lr=self.config.lr,
            eps=self.config.adam_eps,
            capturable=capturable,
            fused=True if self.fused else None,
        )

    def reset_state(self) -> None:
        self.h.zero_()  # in place: a captured graph reads this very buffer

    def _to_native(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.torch_device)

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if self.cuda_graph:
            return self._graph_step(x, y)
        if self.compile:
            return self._compiled_step(x, y)
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

    def info(self) -> Info:
        gpu = torch.cuda.get_device_name(self.torch_device) if self.torch_device.type == "cuda" else None
        return Info(
            framework=f"torch {torch.__version__}",
            kernel=self.kernel() + (", fused Adam" if self.fused else ""),
            mode=self.mode,
            gpu=gpu,
            compile=self.compile_settings() if self.compile else "",
        )

    def compile_settings(self) -> str:
        """The compiler and its settings, for Info.compile."""
        options = [k for k, v in inductor_options(self.torch_device.type).items() if v is True]
        dynamo = [k for k, v in self.dynamo_settings.items() if v is True]
        return ", ".join(["inductor", "fullgraph", "static shapes", *options, *dynamo])

    # ---- compile mode ----

    def _compiled_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        args = (self.module, self._params, self._exp_avg, self._exp_avg_sq, self._step, self._hyper, self.h, x, y)
        if self.compile_stats is None:
            loss, self.h = self._first_compiled_call(args)
        else:
            try:
                loss, self.h = self._compiled(*args)
            except torch._dynamo.exc.Unsupported:  # something made Dynamo trace again without our settings
                with torch._dynamo.config.patch(**self._settings()), self.trace_context():
                    loss, self.h = self._compiled(*args)
        return loss.item()

    def _settings(self) -> dict[str, Any]:
        config = torch._dynamo.config
        wanted = {**DYNAMO_SETTINGS, **self.dynamo_settings}
        wanted["recompile_limit"] = max(wanted["recompile_limit"], getattr(config, "recompile_limit", 0))
        return {k: v for k, v in wanted.items() if hasattr(config, k)}

    def _first_compiled_call(self, args: tuple[Any, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """The instance's first step: compiles the step for these sizes unless this process already did."""
        from torch._dynamo.utils import counters

        graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
        start = time.perf_counter()
        with torch._dynamo.config.patch(**self._settings()), self.trace_context():
            out = self._compiled(*args)
        self.compile_stats = CompileStats(
            graphs=counters["stats"]["unique_graphs"] - graphs,
            graph_breaks=sum(counters["graph_break"].values()) - breaks,
            seconds=time.perf_counter() - start,
        )
        if self.compile_stats.graphs or self.compile_stats.graph_breaks:
            COMPILE_LOG.append((self.step_function.__name__, self.torch_device.type, self.compile_stats))
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
