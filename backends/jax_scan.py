"""`jax-scan`: the formulas in JAX, the recurrence as `jax.lax.scan`, the whole step one `jax.jit` function.

Every model of backends/models.py, written by hand from its equations with the canonical weights as
the params pytree, as they are (no layout to map: JAX has no recurrent layer of its own here):
    rnn   h' = tanh(x W_xh + h W_hh + b_h)
    lstm  [i f g o] = x W_x + h W_h + b;  c' = σ(f) c + σ(i) tanh(g);  h' = σ(o) tanh(c')
    gru   [r z n]_x = x W_x + b_x, [r z n]_h = h W_h + b_h;  r, z = σ(.. + ..);  n = tanh(n_x + r n_h);
          h' = (1 - z) n + z h   (reset after the recurrent matmul)
and q_t = h_t W_hq + b_q. The input projection is one matmul for the whole window; only the recurrence
scans. The carried state is a tuple, (h,) or (h, c). One compiled function does the forward pass, the
gradient, optax's Adam update and returns the new carried state; `predict` is a second compiled
function (forward only).

Modes: `jit` is the code most JAX users write. `fast` (option fast=True) is the fastest found on the
CPU: the scan fully unrolled (up to UNROLL_MAX steps, in blocks beyond); params, Adam state and the
carried state donated to the step so XLA updates them in place; the loss read through numpy
(`float()` of a jax.Array costs ~35 µs more); and synchronous CPU dispatch
(`jax_cpu_enable_async_dispatch=False`: the ~50 µs step then runs inline instead of through the
async queue). That flag is read once, when JAX creates its CPU client: a fast backend sets it when
JAX has not run anything yet in the process, and otherwise it cannot, which `info()` says. The
setting is process-wide, so a `jit` backend made afterwards in the same process runs synchronously
too; every backend's `info()` names the dispatch in force.

Threads: XLA reads its CPU thread settings once, when JAX creates its CPU client, so they can only
be set through the environment before `import jax` (not per op, as PyTorch can). When the suite
has a thread count and JAX is not imported yet, this module appends
`--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=N` to XLA_FLAGS and sets NPROC=N,
the variable jaxlib's CPU client sizes its intra-op pool from (without it, the XLA_FLAGS alone leave
a large matmul on every core with jaxlib 0.10.2). If JAX was already imported nothing is applied,
and nothing is recorded.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from backends import threads


def _pin_xla_threads() -> int | None:
    """Put the suite's thread count into XLA's environment; returns the count applied, or None."""
    n = threads.count()
    if n is None or "jax" in sys.modules:  # too late: the flags are read when JAX's CPU client starts
        return None
    wanted = {"--xla_cpu_multi_thread_eigen": "false", "intra_op_parallelism_threads": str(n)}
    tokens = os.environ.get("XLA_FLAGS", "").split()
    present = dict(t.split("=", 1) for t in tokens if "=" in t and t.split("=", 1)[0] in wanted)
    if any(present.get(k, v) != v for k, v in wanted.items()) or os.environ.get("NPROC", str(n)) != str(n):
        return None  # other values set explicitly: they rule, and this backend does not claim its own
    tokens += [f"{k}={v}" for k, v in wanted.items() if k not in present]
    os.environ["XLA_FLAGS"] = " ".join(tokens)
    os.environ["NPROC"] = str(n)
    return n


_THREADS_APPLIED = _pin_xla_threads()

# isort: split
import jax  # noqa: E402 - after the thread settings, which XLA reads once
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax._src import xla_bridge  # noqa: E402 - whether JAX created its clients, and the flag they read

from backends.base import Backend, BackendUnavailable, Info  # noqa: E402
from backends.models import MODELS  # noqa: E402
from backends.task import TaskConfig  # noqa: E402

Params = dict[str, jax.Array]
State = tuple[jax.Array, ...]  # (h,) or (h, c)

# Full float32 matmuls: on a GPU, XLA's default precision may use TF32, which the oracle does not.
_HIGHEST = jax.lax.Precision.HIGHEST
UNROLL_MAX = 64  # fast mode unrolls windows up to this length fully; longer ones in blocks of it (compile time)
_ASYNC_FLAG = "jax_cpu_enable_async_dispatch"


class _Dispatch:
    """The CPU dispatch JAX's CPU client was created with, as far as this module can know it."""

    synchronous: bool | None = None  # None: the client was created before this module looked
    set_here = False  # True when a fast backend turned async dispatch off before the client existed


def _cpu_dispatch(want_sync: bool) -> None:
    """Before JAX's CPU client exists, turn async dispatch off if asked, then create the client so the
    setting in force is known. After, only note what the flag says (it may have changed since)."""
    if _Dispatch.synchronous is not None:
        return
    if not xla_bridge.backends_are_initialized():
        if want_sync:
            jax.config.update(_ASYNC_FLAG, False)
            _Dispatch.set_here = True
        jax.devices("cpu")  # creates the clients with the flag as it is now
        _Dispatch.synchronous = not xla_bridge._CPU_ENABLE_ASYNC_DISPATCH.value


def _dispatch_text(fast: bool) -> str:
    late = "synchronous dispatch could not be applied: JAX had already run in this process"
    if _Dispatch.synchronous is None:  # JAX started before this module looked: only the flag is known
        flag = "on" if xla_bridge._CPU_ENABLE_ASYNC_DISPATCH.value else "off"
        return f"{late if fast else 'JAX started before this backend'} ({_ASYNC_FLAG} {flag})"
    if not _Dispatch.synchronous:
        return f"async CPU dispatch; {late}" if fast else "async CPU dispatch"
    who = "by a jax-scan fast backend" if _Dispatch.set_here else "before JAX started"
    return f"synchronous CPU dispatch ({_ASYNC_FLAG}=False set {who}, process-wide)"


def _mm(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.matmul(a, b, precision=_HIGHEST)


# Each cell: the input projection of the whole window, and one time step (state, projected input) ->
# (state, h). The state is a tuple: (h,) for rnn and gru, (h, c) for lstm.


def rnn_project(p: Params, x: jax.Array) -> jax.Array:
    return _mm(x, p["W_xh"]) + p["b_h"]


def rnn_cell(p: Params, state: State, xw_t: jax.Array) -> tuple[State, jax.Array]:
    h = jnp.tanh(xw_t + _mm(state[0], p["W_hh"]))
    return (h,), h


def lstm_project(p: Params, x: jax.Array) -> jax.Array:
    return _mm(x, p["W_x"]) + p["b"]


def lstm_cell(p: Params, state: State, xw_t: jax.Array) -> tuple[State, jax.Array]:
    h, c = state
    i, f, g, o = jnp.split(xw_t + _mm(h, p["W_h"]), 4, axis=-1)  # gate order i, f, g, o
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def gru_project(p: Params, x: jax.Array) -> jax.Array:
    return _mm(x, p["W_x"]) + p["b_x"]


def gru_cell(p: Params, state: State, xw_t: jax.Array) -> tuple[State, jax.Array]:
    (h,) = state
    x_r, x_z, x_n = jnp.split(xw_t, 3, axis=-1)  # gate order r, z, n
    h_r, h_z, h_n = jnp.split(_mm(h, p["W_h"]) + p["b_h"], 3, axis=-1)
    r, z = jax.nn.sigmoid(x_r + h_r), jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)  # reset after the recurrent matmul
    h = (1.0 - z) * n + z * h
    return (h,), h


CELLS: dict[str, tuple[Callable[..., jax.Array], Callable[..., tuple[State, jax.Array]]]] = {
    "rnn": (rnn_project, rnn_cell),
    "lstm": (lstm_project, lstm_cell),
    "gru": (gru_project, gru_cell),
}


def forward(model: str, params: Params, x: jax.Array, state: State, unroll: int | bool = 1) -> tuple[jax.Array, State]:
    """Predictions (batch, seq_len, 1) and the last state, from `state`, for `model`."""
    project, cell = CELLS[model]
    xw = project(params, x)  # input projection, all steps at once
    # scan runs over the leading (time) axis; unroll=True writes every step out (no loop in the program)
    last, hs = jax.lax.scan(lambda s, xw_t: cell(params, s, xw_t), state, jnp.swapaxes(xw, 0, 1), unroll=unroll)
    q = _mm(jnp.swapaxes(hs, 0, 1), params["W_hq"]) + params["b_q"]
    return q, last


def make_step(model: str, optimizer: optax.GradientTransformation, unroll: int | bool = 1, donate: bool = False) -> Any:
    """The jitted training step: (params, opt_state, state, x, y) -> (params, opt_state, last state, loss).
    With donate, the step may reuse the buffers of params, opt_state and state for its outputs."""

    def loss_fn(params: Any, x: jax.Array, y: jax.Array, state: State) -> tuple[jax.Array, State]:
        q, last = forward(model, params, x, state, unroll)
        return jnp.mean((q - y) ** 2), last

    def step(params: Any, opt_state: Any, state: State, x: jax.Array, y: jax.Array) -> tuple[Any, ...]:
        # Gradients are taken with respect to params only: the state is an input of the step, a constant to
        # it, so the carried state is detached (truncated BPTT) without a stop_gradient.
        (loss, last), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y, state)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, last, loss

    return jax.jit(step, donate_argnums=(0, 1, 2) if donate else ())


@functools.lru_cache(maxsize=None, typed=True)  # typed: unroll=True is not unroll=1
def compiled(model: str, lr: float, eps: float, unroll: int | bool, donate: bool) -> tuple[Any, Any, Any]:
    """Adam, the jitted step and the jitted forward for one model and mode, shared by every instance in the
    process: jax.jit caches its compiled programs per function and input shapes, so a second backend of
    the same model, mode and size compiles nothing (as torch.compile's cache per code object does for the
    PyTorch backends). The harness runs each case in a process of its own, so its first call is cold."""
    optimizer = optax.adam(lr, b1=0.9, b2=0.999, eps=eps)
    forward_fn = jax.jit(lambda params, x, state: forward(model, params, x, state, unroll))
    return optimizer, make_step(model, optimizer, unroll, donate), forward_fn


class JaxScan(Backend):
    """Hand-written cells in JAX: lax.scan over time, the whole training step jit-compiled.
    Option fast: unrolled scan, donated buffers, synchronous CPU dispatch (see the module doc)."""

    name = "jax-scan"
    models = tuple(MODELS)

    def __init__(self, config: TaskConfig, device: str = "cpu", fast: bool = False) -> None:
        super().__init__(config, device)
        self.fast = bool(fast)
        _cpu_dispatch(want_sync=self.fast and device == "cpu")
        if device == "cuda":
            try:
                gpus = jax.devices("gpu")
            except RuntimeError as err:  # no GPU platform, or its plugin failed to start
                reason = f"{err}".splitlines()[0]
                raise BackendUnavailable(f"{self.name}: JAX sees no GPU (jax {jax.__version__}: {reason})") from err
            if not gpus:
                raise BackendUnavailable(f"{self.name}: JAX sees no GPU (jax {jax.__version__})")
            self.jax_device = gpus[0]
        else:
            self.jax_device = jax.devices("cpu")[0]
        if _THREADS_APPLIED is not None:
            # inter_op 0: JAX has no inter-op pool setting; XLA's default is in force
            threads.record("jax", intra_op=_THREADS_APPLIED, inter_op=0)
        self.unroll: int | bool = (True if config.seq_len <= UNROLL_MAX else UNROLL_MAX) if self.fast else 1
        self.state: State = self._zeros()
        self.params: Params = {}
        self.opt_state: Any = None
        # Compiled at the first call (shapes are fixed by the config); set_weights only swaps the arrays.
        self.optimizer, self._step, self._forward = compiled(
            config.model, config.lr, config.adam_eps, self.unroll, self.fast
        )

    def _zeros(self) -> State:
        # fresh buffers each time: the fast step donates (consumes) the state it is given
        shape = (self.config.batch_size, self.config.hidden_size)
        return tuple(
            jax.device_put(np.zeros(shape, np.float32), self.jax_device) for _ in MODELS[self.config.model].state
        )

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        # device_put on the CPU may keep using the numpy buffer it is given: copy into JAX's own memory
        params = {name: jax.device_put(weights[name], self.jax_device).copy() for name in self.config.weight_names}
        opt_state = jax.device_put(self.optimizer.init(params), self.jax_device)  # fresh Adam
        self.params, self.opt_state = params, opt_state

    def _get_weights(self) -> dict[str, np.ndarray]:
        # copies: donated buffers get reused
        return {name: np.array(self.params[name]) for name in self.config.weight_names}

    def reset_state(self) -> None:
        self.state = self._zeros()

    def _to_native(self, array: np.ndarray) -> jax.Array:
        return jax.device_put(array, self.jax_device).copy()  # its own buffer, not the caller's numpy memory

    def _train_step(self, x: jax.Array, y: jax.Array) -> float:
        self.params, self.opt_state, self.state, loss = self._step(self.params, self.opt_state, self.state, x, y)
        if self.fast:  # float() of a jax.Array costs ~35 µs more on the CPU than going through numpy
            return float(np.asarray(loss))
        return float(loss)  # waits for the device

    def _predict(self, x: jax.Array) -> np.ndarray:
        q, self.state = self._forward(self.params, x, self.state)
        return np.array(q)  # the copy to the host waits for the device

    @property
    def sync_dispatch(self) -> bool:
        """Whether JAX's CPU client dispatches synchronously (as far as known) in this process."""
        if _Dispatch.synchronous is None:
            return not xla_bridge._CPU_ENABLE_ASYNC_DISPATCH.value
        return _Dispatch.synchronous

    def synchronize(self) -> None:
        jax.block_until_ready((self.params, self.opt_state, self.state))

    def device_peak_bytes(self) -> int | None:
        if self.device != "cuda":
            return None
        peak = (self.jax_device.memory_stats() or {}).get("peak_bytes_in_use")  # not the preallocated pool
        return None if peak is None else int(peak)

    def info(self) -> Info:
        if self.fast:
            unrolled = "fully unrolled" if self.unroll is True else f"unrolled in blocks of {self.unroll}"
            kernel = f"{self.config.model} by hand, lax.scan {unrolled}, donated buffers, whole step one XLA program"
            compile_ = f"XLA via jax.jit, donate_argnums=(params, Adam state, hidden state), scan unroll={self.unroll}"
        else:
            kernel = f"{self.config.model} by hand, lax.scan, whole step one XLA program"
            compile_ = "XLA via jax.jit"
        if self.device == "cpu":
            compile_ += f"; {_dispatch_text(self.fast)}"
        return Info(
            framework=f"jax {jax.__version__} / optax {optax.__version__}",
            kernel=kernel,
            mode=self.mode,
            gpu=self.jax_device.device_kind if self.device == "cuda" else None,
            compile=compile_,
        )
