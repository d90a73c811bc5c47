"""Backends that fail inside a worker process, registered only by the tests that use them (never in
backends.REGISTRY itself): the harness sends a case's registry entry to its worker, which registers it there.

    monkeypatch.setitem(backends.REGISTRY, "abort-at-3", ABORT_AT_THIRD)

Those that crash or hang print a line first, so the worker's log (and the failed record quoting its last lines) says
what happened.
"""

from __future__ import annotations

import os
import time

import numpy as np

from backends import Entry, Mode
from backends.numpy_rnn import NumpyRNN


class AbortAtThird(NumpyRNN):
    """The numpy oracle, except that its third train_step calls os.abort(), as a native library does."""

    name = "abort-at-3"

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 3:
            print("abort-at-3: third train_step, calling os.abort()", flush=True)
            os.abort()
        return super()._train_step(x, y)


class SleepsForever(NumpyRNN):
    """The numpy oracle, except that train_step never returns."""

    name = "sleeps-forever"

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        print("sleeps-forever: train_step sleeps forever", flush=True)
        while True:
            time.sleep(60)


class PredictRaises(NumpyRNN):
    """The numpy oracle with a bug: its predict raises."""

    name = "predict-raises"

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise RuntimeError("predict is broken")


ABORT_AT_THIRD = Entry("tests.fault_backends:AbortAtThird", "core", {"eager": Mode()})
SLEEPS_FOREVER = Entry("tests.fault_backends:SleepsForever", "core", {"eager": Mode()})
