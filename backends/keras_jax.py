"""`keras-jax`: Keras on JAX, the same model as `keras-simplernn` (Keras on TensorFlow): `SimpleRNN`, `LSTM` or
`GRU` (stateful=True) + `Dense(1)`, compiled with Adam and "mse" (see backends/_keras_common.py). Needs
KERAS_BACKEND=jax before Keras is imported, which its registry modes declare.

Modes: `train_on_batch`, the default, is the code most Keras users write; on JAX, `compile`'s
jit_compile="auto" means XLA: Keras's train step (`stateless_call`, `jax.value_and_grad`, the
optimizer's `stateless_apply`) is one `jax.jit` function with the model's state donated, and each call
reads every variable into that state and assigns the results back. `stateless-jit` is keras.io's "custom
training loop in JAX": the same Keras pieces in a `jax.jit` step of our own that keeps the state as JAX
arrays between calls, so the cost of `train_on_batch` around the compiled program is left out.

Keras 3.15.1's JAX trainer drops a stateful RNN's state: the layer creates its state variable without
tracking it, so it is not among the model's non-trainable variables, `stateless_call` does not return it,
and every window starts from zeros (the first loss matches the oracle, the next ones do not; on TensorFlow
and PyTorch the variable is assigned directly and works). The same holds for LSTM (h and c) and GRU.
`TrackedStateSimpleRNN`, `TrackedStateLSTM` and `TrackedStateGRU` track the state variables after `build`;
that is this backend's one change from the model as written on the other two, and
tests/test_keras_backends.py checks that the plain layers still need it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from backends._keras_common import LAYERS, KerasModel, check_backend, require_backend

require_backend("jax")

# isort: split
from backends import jax_scan, threads  # noqa: E402 - jax_scan pins XLA's threads before JAX loads (Keras imports it)

# isort: split
import jax  # noqa: E402
import keras  # noqa: E402
from jax._src import xla_bridge  # noqa: E402 - the CPU dispatch in force, for info()

from backends.base import Backend, BackendUnavailable, Info  # noqa: E402
from backends.models import MODELS  # noqa: E402
from backends.task import TaskConfig  # noqa: E402

check_backend(keras, "jax")


class TrackedState:
    """Mixin for a Keras recurrent layer: its stateful state variables are tracked, so Keras's JAX trainer
    carries them (see above)."""

    def build(self, sequences_shape: Any, initial_state_shape: Any = None) -> None:  # Keras reads these names
        super().build(sequences_shape, initial_state_shape)
        for variable in self.states or []:
            if not any(variable is v for v in self.non_trainable_variables):
                self._track_variable(variable)


class TrackedStateSimpleRNN(TrackedState, keras.layers.SimpleRNN):
    """SimpleRNN whose state variable is tracked."""


class TrackedStateLSTM(TrackedState, keras.layers.LSTM):
    """LSTM whose state variables (h, c) are tracked."""


class TrackedStateGRU(TrackedState, keras.layers.GRU):
    """GRU whose state variable is tracked."""


TRACKED = {"rnn": TrackedStateSimpleRNN, "lstm": TrackedStateLSTM, "gru": TrackedStateGRU}


class KerasJax(Backend):
    """Keras SimpleRNN, LSTM or GRU on JAX. Option stateless: keras.io's custom JAX training loop instead of
    train_on_batch."""

    name = "keras-jax"
    models = tuple(MODELS)

    def __init__(self, config: TaskConfig, device: str = "cpu", stateless: bool = False) -> None:
        super().__init__(config, device)
        self.stateless = bool(stateless)
        if device == "cuda":
            try:
                jax.devices("gpu")
            except RuntimeError as err:  # no GPU platform, or its plugin failed to start
                raise BackendUnavailable(f"{self.name}: JAX sees no GPU (jax {jax.__version__}: {err})") from err
            # full float32 like every other row (jax-scan asks for it per matmul; Keras's ops cannot)
            jax.config.update("jax_default_matmul_precision", "highest")
        if jax_scan._THREADS_APPLIED is not None:
            threads.record("jax", intra_op=jax_scan._THREADS_APPLIED, inter_op=0)
        self.jax_device = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        # Keras places variables and data on JAX's default device: a scope where that is not the one asked for
        default = jax.devices()[0]
        self.scope = (lambda: keras.device(self.jax_device)) if default != self.jax_device else None
        with self._scope():
            self.net = KerasModel(config, rnn_class=TRACKED[config.model])
        self.state: tuple[list[jax.Array], ...] | None = None  # stateless mode: the arrays between calls
        if self.stateless:
            self._step, self._forward = self._stateless_functions()

    def _scope(self) -> Any:
        return self.scope() if self.scope else contextlib.nullcontext()

    # ---- stateless mode: keras.io's custom training loop in JAX ----

    def _stateless_functions(self) -> tuple[Any, Any]:
        model, optimizer = self.net.model, self.net.optimizer
        mse = keras.losses.MeanSquaredError()

        def loss_fn(trainable: list, non_trainable: list, x: jax.Array, y: jax.Array) -> tuple[jax.Array, list]:
            q, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
            return mse(y, q), non_trainable

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def step(state: tuple, x: jax.Array, y: jax.Array) -> tuple[jax.Array, tuple]:
            trainable, non_trainable, optimizer_variables = state
            # the carried state is an input here, a constant to the gradient: truncated BPTT
            (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
            trainable, optimizer_variables = optimizer.stateless_apply(optimizer_variables, grads, trainable)
            return loss, (trainable, non_trainable, optimizer_variables)

        def forward(trainable: list, non_trainable: list, x: jax.Array) -> tuple[jax.Array, list]:
            return model.stateless_call(trainable, non_trainable, x, training=False)

        return jax.jit(step, donate_argnums=0), jax.jit(forward)

    def _own(self, value: jax.Array) -> jax.Array:
        """A copy committed to this backend's device. Committed like the outputs of a jitted step, so the
        step compiles once: committed and uncommitted arguments are compiled separately."""
        return jax.device_put(value, self.jax_device, may_alias=False)

    def _commit_variables(self) -> None:
        """Every variable Keras's train and predict functions read, as a committed copy (see `_own`)."""
        model = self.net.model
        for variable in (*model.trainable_variables, *model.non_trainable_variables, *self.net.optimizer.variables):
            variable.assign(self._own(variable.value))

    def _read_state(self) -> None:
        """The variables' values as the stateless step's state: copies, since the step donates (consumes) them."""
        model = self.net.model
        groups = (model.trainable_variables, model.non_trainable_variables, self.net.optimizer.variables)
        self.state = tuple([self._own(v.value) for v in group] for group in groups)

    def _write_state(self) -> None:
        """The stateless step's state back into the variables (what keras.io's loop does after training): copies,
        so that no variable holds a buffer the next step donates."""
        model = self.net.model
        groups = (model.trainable_variables, model.non_trainable_variables, self.net.optimizer.variables)
        for group, values in zip(groups, self.state):
            for variable, value in zip(group, values):
                variable.assign(self._own(value))

    # ---- the contract ----

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        with self._scope():
            self.net.set_weights(weights)
        if self.stateless:
            self._read_state()
        else:
            self._commit_variables()

    def _get_weights(self) -> dict[str, np.ndarray]:
        if self.stateless:
            self._write_state()
        return self.net.get_weights()

    def reset_state(self) -> None:
        if self.stateless:
            self._write_state()
        with self._scope():
            self.net.reset_state()
        if self.stateless:
            self._read_state()
        else:
            self._commit_variables()

    def _to_native(self, array: np.ndarray) -> jax.Array:
        return jax.device_put(array, self.jax_device).copy()  # its own buffer, not the caller's numpy memory

    def _train_step(self, x: jax.Array, y: jax.Array) -> float:
        if self.stateless:
            loss, self.state = self._step(self.state, x, y)
            return float(loss)  # waits for the device
        if self.scope:
            with self.scope():
                return self.net.train_on_batch(x, y)
        return self.net.train_on_batch(x, y)

    def _predict(self, x: jax.Array) -> np.ndarray:
        if self.stateless:
            trainable, non_trainable, optimizer_variables = self.state
            q, non_trainable = self._forward(trainable, non_trainable, x)
            self.state = (trainable, non_trainable, optimizer_variables)
            return np.array(q)  # the copy to the host waits for the device
        with self._scope():
            return self.net.predict_on_batch(x)

    def synchronize(self) -> None:
        if self.state is not None:
            jax.block_until_ready(self.state)

    def device_peak_bytes(self) -> int | None:
        if self.device != "cuda":
            return None
        peak = (self.jax_device.memory_stats() or {}).get("peak_bytes_in_use")
        return None if peak is None else int(peak)

    def info(self) -> Info:
        if self.stateless:
            how = "stateless_call + jax.value_and_grad + Adam.stateless_apply, our jax.jit step"
            compile_ = "XLA via jax.jit, state donated, kept as JAX arrays between calls"
        else:
            how = "compile(Adam, 'mse') + train_on_batch, predict_on_batch"
            compile_ = (
                f"XLA via jax.jit of Keras's train step (jit_compile='auto' -> {self.net.jit_compile}), state donated"
            )
        if self.device == "cpu":
            sync = not xla_bridge._CPU_ENABLE_ASYNC_DISPATCH.value
            compile_ += f"; {'synchronous' if sync else 'async'} CPU dispatch"
        else:
            compile_ += "; jax_default_matmul_precision=highest"
        return Info(
            framework=f"jax {jax.__version__} / keras {keras.__version__}",
            kernel=f"Keras {LAYERS[self.config.model]} as lax.scan, state variables tracked (Keras 3.15.1 drops "
            f"them on JAX); {how}",
            mode=self.mode,
            gpu=self.jax_device.device_kind if self.device == "cuda" else None,
            compile=compile_,
        )
