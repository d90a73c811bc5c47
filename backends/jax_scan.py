"""`jax-scan`: the formula in JAX, the recurrence as `jax.lax.scan`, the whole step one `jax.jit` function.

h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h), q_t = h_t W_hq + b_q, with the canonical weights as a
params pytree. One compiled function does the forward pass, the gradient, optax's Adam update and
returns the new carried state; `predict` is a second compiled function (forward only).

Threads: XLA reads its CPU thread settings once, when JAX creates its CPU client, so they can only
be set through the environment before `import jax` (not per op, as PyTorch can). When the suite
has a thread count and JAX is not imported yet, this module appends
`--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=N` to XLA_FLAGS and sets NPROC=N,
the variable jaxlib's CPU client sizes its intra-op pool from (without it, the XLA_FLAGS alone leave
a large matmul on every core with jaxlib 0.10.2). If JAX was already imported nothing is applied,
and nothing is recorded.
"""

from __future__ import annotations

import os
import sys
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

from backends.base import Backend, BackendUnavailable  # noqa: E402
from backends.task import WEIGHT_NAMES, TaskConfig  # noqa: E402

# Full float32 matmuls: on a GPU, XLA's default precision may use TF32, which the oracle does not.
_HIGHEST = jax.lax.Precision.HIGHEST


def forward(params: dict[str, jax.Array], x: jax.Array, h0: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Predictions (batch, seq_len, 1) and the last hidden state (batch, hidden) from h0."""
    xw = jnp.matmul(x, params["W_xh"], precision=_HIGHEST) + params["b_h"]  # input projection, all steps at once

    def cell(h: jax.Array, xw_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = jnp.tanh(xw_t + jnp.matmul(h, params["W_hh"], precision=_HIGHEST))
        return h, h

    h_last, hs = jax.lax.scan(cell, h0, jnp.swapaxes(xw, 0, 1))  # scan runs over the leading (time) axis
    q = jnp.matmul(jnp.swapaxes(hs, 0, 1), params["W_hq"], precision=_HIGHEST) + params["b_q"]
    return q, h_last


def _loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array, h0: jax.Array) -> tuple[jax.Array, jax.Array]:
    q, h_last = forward(params, x, h0)
    return jnp.mean((q - y) ** 2), h_last


def make_step(optimizer: optax.GradientTransformation) -> Any:
    """The jitted training step: (params, opt_state, h0, x, y) -> (params, opt_state, h_last, loss)."""

    def step(params: Any, opt_state: Any, h0: jax.Array, x: jax.Array, y: jax.Array) -> tuple[Any, ...]:
        # Gradients are taken with respect to params only: h0 is an input of the step, a constant to it,
        # so the carried state is detached (truncated BPTT) without a stop_gradient.
        (loss, h_last), grads = jax.value_and_grad(_loss, has_aux=True)(params, x, y, h0)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, h_last, loss

    return jax.jit(step)


class JaxScan(Backend):
    """Hand-written tanh RNN in JAX: lax.scan over time, the whole training step jit-compiled."""

    name = "jax-scan"
    devices = ("cpu", "cuda")

    def __init__(self, config: TaskConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
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
        self.optimizer = optax.adam(config.lr, b1=0.9, b2=0.999, eps=config.adam_eps)
        self._h0 = jax.device_put(np.zeros((config.batch_size, config.hidden_size), np.float32), self.jax_device)
        self.h = self._h0
        self.params: dict[str, jax.Array] = {}
        self.opt_state: Any = None
        # Compiled once per instance (shapes are fixed by the config); set_weights only swaps the arrays.
        self._step = make_step(self.optimizer)
        self._forward = jax.jit(lambda params, x, h0: forward(params, x, h0))  # a new function: its own cache

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.params = jax.device_put({name: weights[name] for name in WEIGHT_NAMES}, self.jax_device)
        self.opt_state = jax.device_put(self.optimizer.init(self.params), self.jax_device)  # fresh Adam

    def _get_weights(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(self.params[name]) for name in WEIGHT_NAMES}

    def reset_state(self) -> None:
        self.h = self._h0  # JAX arrays are immutable: sharing the zeros is safe

    def _to_native(self, array: np.ndarray) -> jax.Array:
        return jax.device_put(array, self.jax_device)

    def _train_step(self, x: jax.Array, y: jax.Array) -> float:
        self.params, self.opt_state, self.h, loss = self._step(self.params, self.opt_state, self.h, x, y)
        return float(loss)  # waits for the device

    def _predict(self, x: jax.Array) -> np.ndarray:
        q, self.h = self._forward(self.params, x, self.h)
        return np.asarray(q)  # the copy to the host waits for the device

    def synchronize(self) -> None:
        jax.block_until_ready((self.params, self.opt_state, self.h))

    def device_peak_bytes(self) -> int | None:
        if self.device != "cuda":
            return None
        peak = (self.jax_device.memory_stats() or {}).get("peak_bytes_in_use")  # not the preallocated pool
        return None if peak is None else int(peak)

    def info(self) -> dict[str, Any]:
        out = {
            "framework": f"jax {jax.__version__} / optax {optax.__version__}",
            "kernel": "lax.scan, whole step jit-compiled by XLA",
            "mode": "jax.jit",
        }
        if self.device == "cuda":
            out["gpu"] = self.jax_device.device_kind
        return out
