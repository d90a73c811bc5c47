"""A backend that does nothing, timed through the same path to measure the harness's own overhead."""

from __future__ import annotations

import numpy as np

from backends.base import Backend, Info


class NoopBackend(Backend):
    """Every step returns at once; not registered, used only for the overhead benchmark."""

    name = "noop"

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights

    def _get_weights(self) -> dict[str, np.ndarray]:
        return self.weights

    def reset_state(self) -> None:
        pass

    def info(self) -> Info:
        return Info(framework="none", kernel="returns at once")

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        return 0.0

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return x
