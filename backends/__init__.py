"""Registry of backends and their execution modes. Importing this package imports no framework, not
even numpy: the thread settings must reach numpy's BLAS before it loads (see backends/threads.py).

A backend is one file in this folder holding one `Backend` subclass; its entry below names the
class, the pip extra that installs its framework, and its modes. A mode is a named set of options
of that class (the first mode is the default: the code most people write), optionally limited to
some devices. Adding a backend: write one file, add one entry.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from typing import TYPE_CHECKING, Any

from backends.errors import BackendUnavailable, DeviceUnsupported, one_line

if TYPE_CHECKING:
    from backends.base import Backend
    from backends.task import TaskConfig

DEVICES: tuple[str, ...] = ("cpu", "cuda")

# Several frameworks share one GPU in one process, and the peak-memory child needs its own share:
# JAX and TensorFlow must allocate as they go rather than reserve most of the GPU when they start
# (PyTorch's allocator already grows on demand). Read at their start-up; a value already set rules.
GPU_MEMORY_ENV: dict[str, str] = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
for _var, _value in GPU_MEMORY_ENV.items():
    os.environ.setdefault(_var, _value)


@dataclasses.dataclass(frozen=True)
class Mode:
    """One way to run a backend: the options it fixes and the devices it exists on (None: the backend's)."""

    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    devices: tuple[str, ...] | None = None
    about: str = ""  # one line for the README and the table legend
    # process environment the mode needs before its framework is imported (e.g. KERAS_BACKEND): the
    # harness's worker process for the case sets it; a process-wide switch is why a case is its own process
    env: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered backend: its class, the pip extra of its framework, and its modes (default first)."""

    target: str  # "module:Class"
    extra: str
    modes: dict[str, Mode]
    devices: tuple[str, ...] = ("cpu",)  # where it runs; a mode may narrow this
    floor: bool = False  # the no-framework floor every row is measured against


# the process environment of each Keras backend's modes
_TF, _JAX, _TORCH = ({"KERAS_BACKEND": name} for name in ("tensorflow", "jax", "torch"))

REGISTRY: dict[str, Entry] = {
    "numpy": Entry("backends.numpy_rnn:NumpyRNN", "core", {"eager": Mode(about="numpy, float64: the oracle")}),
    "torch-rnn": Entry(
        "backends.torch_rnn:TorchRNN",
        "torch",
        {
            "eager": Mode(about="nn.RNN + nn.Linear, loss.backward(), torch.optim.Adam"),
            "compile": Mode({"compile": True}, about="the whole step in one torch.compile graph (allow_rnn)"),
            "cuda-graph": Mode({"cuda_graph": True}, ("cuda",), "the whole step captured in a CUDA graph"),
        },
        DEVICES,
    ),
    "torch-cell": Entry(
        "backends.torch_cell:TorchCell",
        "torch",
        {
            "eager": Mode(about="the formula as parameters, a Python loop over steps"),
            "compile": Mode({"compile": True}, about="the whole step in one torch.compile graph"),
            "cuda-graph": Mode({"cuda_graph": True}, ("cuda",), "the whole step captured in a CUDA graph"),
        },
        DEVICES,
    ),
    "jax-scan": Entry(
        "backends.jax_scan:JaxScan",
        "jax",
        {
            "jit": Mode(about="lax.scan, forward + grad + optax Adam in one jax.jit"),
            "fast": Mode(
                {"fast": True},
                about="scan fully unrolled, donated buffers, synchronous CPU dispatch if loaded before JAX runs",
            ),
        },
        DEVICES,
    ),
    # Keras on TensorFlow, JAX and PyTorch: the same model and the same train_on_batch, one backend per Keras
    # backend (Keras picks it once per process: each mode says which in its env)
    "keras-simplernn": Entry(
        "backends.keras_simplernn:KerasSimpleRNN",
        "tf",
        {
            "train_on_batch": Mode(
                {"train_on_batch": True}, about="Keras on TensorFlow: compile(Adam, 'mse') + train_on_batch", env=_TF
            ),
            "function": Mode(about="SimpleRNN(stateful=True), GradientTape + Adam in tf.function", env=_TF),
            "xla": Mode({"jit_compile": True}, about="the same step with jit_compile=True", env=_TF),
            "xla-concrete": Mode(
                {"jit_compile": True, "concrete": True},
                about="the XLA step's traced ConcreteFunction called directly",
                env=_TF,
            ),
        },
        DEVICES,
    ),
    "keras-jax": Entry(
        "backends.keras_jax:KerasJax",
        "keras,jax",
        {
            "train_on_batch": Mode(about="Keras on JAX: compile(Adam, 'mse') + train_on_batch (XLA)", env=_JAX),
            "stateless-jit": Mode(
                {"stateless": True}, about="stateless_call + stateless_apply in our own jax.jit step", env=_JAX
            ),
        },
        DEVICES,
    ),
    "keras-torch": Entry(
        "backends.keras_torch:KerasTorch",
        "keras,torch",
        {"train_on_batch": Mode(about="Keras on PyTorch: compile(Adam, 'mse') + train_on_batch (eager)", env=_TORCH)},
        DEVICES,
    ),
    "tf-cell": Entry(
        "backends.tf_cell:TFCell",
        "tf",
        {
            "function": Mode(about="the formula as tf.Variables, GradientTape + Adam in tf.function"),
            "xla": Mode({"jit_compile": True}, about="the same step with jit_compile=True"),
            "xla-concrete": Mode(
                {"jit_compile": True, "concrete": True}, about="the XLA step's traced ConcreteFunction called directly"
            ),
        },
        DEVICES,
    ),
    "tflearn": Entry("backends.tflearn_rnn:TFLearnRNN", "tf", {"session": Mode(about="tf.compat.v1.Session loop")}),
    "numba": Entry(
        "backends.numba_rnn:NumbaRNN",
        "numba",
        {"njit": Mode(about="forward, BPTT and Adam in one @njit function: no framework")},
        floor=True,
    ),
    "triton": Entry(
        "backends.triton_rnn:TritonRNN",
        "triton",
        {"kernel": Mode(about="forward, BPTT and Adam in one Triton kernel launch, one program: no framework")},
        ("cuda",),
        floor=True,
    ),
}

__all__ = [
    "Backend",
    "BackendUnavailable",
    "DeviceUnsupported",
    "Entry",
    "Mode",
    "TaskConfig",
    "backend_class",
    "load",
    "mode_devices",
    "mode_env",
    "modes",
    "names",
]


def __getattr__(attr: str) -> Any:
    """Backend and TaskConfig on first use, so that `import backends` does not load numpy."""
    if attr == "Backend":
        from backends.base import Backend

        return Backend
    if attr == "TaskConfig":
        from backends.task import TaskConfig

        return TaskConfig
    raise AttributeError(f"module 'backends' has no attribute {attr!r}")


def names() -> list[str]:
    """Every registered backend name, in table order."""
    return list(REGISTRY)


def entry(name: object) -> Entry:
    """The registry entry of `name`; a one-line ValueError listing the known names otherwise."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def modes(name: str) -> list[str]:
    """The modes of backend `name`, its default (the code most people write) first."""
    return list(entry(name).modes)


def mode_devices(name: str, mode: str) -> tuple[str, ...]:
    """The devices a backend's mode runs on."""
    return _mode(name, mode).devices or entry(name).devices


def mode_env(name: str, mode: str) -> dict[str, str]:
    """The process environment a backend's mode needs before its framework loads (see Mode.env)."""
    return dict(_mode(name, mode).env)


def floor_backends() -> list[str]:
    """Backends registered as the no-framework floor."""
    return [name for name, e in REGISTRY.items() if e.floor]


def _mode(name: str, mode: object) -> Mode:
    known = entry(name).modes
    if not isinstance(mode, str) or mode not in known:
        raise ValueError(f"{name}: unknown mode {mode!r}; modes: {', '.join(known)}")
    return known[mode]


def backend_class(name: str) -> type[Backend]:
    """Import the backend's module (and so its framework); BackendUnavailable if that fails."""
    target, extra = entry(name).target, entry(name).extra
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:  # the backend's own file is missing: a bug, not a missing framework
            raise
        raise _unavailable(name, extra, err) from err
    except Exception as err:  # a broken framework raises more than ImportError
        raise _unavailable(name, extra, err) from err
    return getattr(module, class_name)


def _unavailable(name: str, extra: str, err: Exception) -> BackendUnavailable:
    return BackendUnavailable(
        f"{name}: cannot import its framework ({one_line(err)}); install it with: pip install -e '.[{extra}]'"
    )


def load(
    name: str, config: TaskConfig | None = None, device: str = "cpu", mode: str | None = None, **options: Any
) -> Backend:
    """Make backend `name` in `mode` (default: its first) for `config` (default: the seed's) on `device`,
    started from the canonical weights. Options given here add to the mode's."""
    chosen = _mode(name, modes(name)[0] if mode is None else mode)
    mode = modes(name)[0] if mode is None else mode
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device not in mode_devices(name, mode):
        where = ", ".join(mode_devices(name, mode))
        raise DeviceUnsupported(f"{name} ({mode}) runs on {where} only, not {device}")
    from backends.task import TaskConfig, initial_weights

    if config is not None and not isinstance(config, TaskConfig):
        raise TypeError(f"config must be a TaskConfig, got {type(config).__name__}")
    cls = backend_class(name)
    signature = inspect.signature(cls.__init__).parameters
    allowed = [p for p in signature if p not in ("self", "config", "device", "mode")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'}")
    for key, value in options.items():  # an option's default tells its type: "no" must not mean True
        default = signature[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise TypeError(f"{name}: option {key} must be True or False, got {value!r}")
    backend = cls(config or TaskConfig(), device, **{**chosen.options, **options})
    backend.mode = mode
    backend.set_weights(initial_weights(backend.config))
    return backend
