"""What the TensorFlow backends (tf-cell, keras-simplernn) share: threads, the device, how a traced step
is called, and the calls that move windows and results between numpy and TensorFlow."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from backends import threads
from backends.base import Backend, BackendUnavailable
from backends.task import TaskConfig


def apply_threads() -> None:
    """Apply the suite's thread count; TF refuses once initialised, then the TF_NUM_*_THREADS env vars rule."""
    n = threads.count()
    if n is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
        except RuntimeError:  # "cannot be modified after initialization"
            pass
    threads.record(
        "tensorflow",  # 0 means "TF's default", i.e. what the environment variables asked for
        intra_op=tf.config.threading.get_intra_op_parallelism_threads(),
        inter_op=tf.config.threading.get_inter_op_parallelism_threads(),
    )


def check_gpu(name: str, device: str) -> str:
    """The TF device string for `device`; BackendUnavailable when cuda is asked and TF sees no GPU."""
    if device == "cuda" and not tf.config.list_physical_devices("GPU"):
        raise BackendUnavailable(f"{name}: TensorFlow sees no GPU")
    return "/GPU:0" if device == "cuda" else "/CPU:0"


def gpu_name(device: str) -> str | None:
    """The GPU model TensorFlow runs on, None on the CPU."""
    if device != "cuda":
        return None
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    return str(details.get("device_name", "a GPU"))


def compile_text(jit_compile: bool, concrete: bool) -> str:
    """Info.compile for a TF step: which compiler, and how the step is called."""
    how = "the traced ConcreteFunction called directly" if concrete else "called through tf.function"
    return f"{'XLA (tf.function jit_compile=True)' if jit_compile else 'TF graph (tf.function), no XLA'}, {how}"


def concrete_function(fn: Any, *specs: tf.TensorSpec) -> Any:
    """The ConcreteFunction of a tf.function for fixed input specs: called directly it skips the
    tf.function call path (binding the arguments, looking up the trace)."""
    return fn.get_concrete_function(*specs)


class TFBackend(Backend):
    """Base of the TensorFlow backends: a subclass sets `_train_fn(x, y) -> loss` and `_predict_fn(x)`."""

    _train_fn: Any
    _predict_fn: Any

    def __init__(self, config: TaskConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        self.tf_device = check_gpu(self.name, device)
        apply_threads()

    def _to_native(self, array: np.ndarray) -> tf.Tensor:
        with tf.device(self.tf_device):
            return tf.identity(tf.constant(array))  # identity places the copy on the device

    def _train_step(self, x: tf.Tensor, y: tf.Tensor) -> float:
        with tf.device(self.tf_device):
            return float(self._train_fn(x, y))  # float() waits for the step

    def _predict(self, x: tf.Tensor) -> np.ndarray:
        with tf.device(self.tf_device):
            return self._predict_fn(x).numpy()

    def device_peak_bytes(self) -> int | None:
        if self.device != "cuda":
            return None
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
