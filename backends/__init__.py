"""Registry of backends. Importing this package imports no framework, not even numpy: the thread
settings must reach numpy's BLAS before it loads (see backends/threads.py).

Each entry maps a backend name to "module:Class" and the pip extra that installs its
framework. Adding a backend: write one file in this folder and add one line below.
"""

from __future__ import annotations

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

# name -> (module:Class, pip extra)
REGISTRY: dict[str, tuple[str, str]] = {
    "numpy": ("backends.numpy_rnn:NumpyRNN", "core"),
    "torch-rnn": ("backends.torch_rnn:TorchRNN", "torch"),
    "torch-cell": ("backends.torch_cell:TorchCell", "torch"),
    "torch-rnn-graph": ("backends.torch_rnn:TorchRNNGraph", "torch"),
    "torch-cell-graph": ("backends.torch_cell:TorchCellGraph", "torch"),
    "jax-scan": ("backends.jax_scan:JaxScan", "jax"),
    "keras-simplernn": ("backends.keras_simplernn:KerasSimpleRNN", "tf"),
    "keras-simplernn-xla": ("backends.keras_simplernn:KerasSimpleRNNXLA", "tf"),
    "tflearn": ("backends.tflearn_rnn:TFLearnRNN", "tf"),
}

__all__ = ["Backend", "BackendUnavailable", "DeviceUnsupported", "TaskConfig", "backend_class", "load", "names"]


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


def _unknown(name: object) -> ValueError:
    return ValueError(f"unknown backend {name!r}; known backends: {', '.join(REGISTRY)}")


def backend_class(name: str) -> type[Backend]:
    """Import the backend's module (and so its framework); BackendUnavailable if that fails."""
    if name not in REGISTRY:
        raise _unknown(name)
    target, extra = REGISTRY[name]
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


def load(name: str, config: TaskConfig | None = None, device: str = "cpu", **options: Any) -> Backend:
    """Make backend `name` for `config` (default: the seed's) on `device`, started from the canonical weights."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    cls = backend_class(name)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "config", "device")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'}")
    from backends.task import TaskConfig, initial_weights

    config = config or TaskConfig()
    backend = cls(config, device, **options)
    backend.set_weights(initial_weights(config))
    return backend
