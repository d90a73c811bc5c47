"""Every backend against the numpy oracle, for every model it has, from identical canonical weights and windows.

Tolerances (float32 backends vs the float64 oracle):
  first-step loss and initial predictions: 2e-6 absolute
  loss trajectory over the first 6 steps:  relative 1e-4
  weights after those steps:               2e-4 absolute
adam_eps is 1e-16 here so the frameworks' different placement of epsilon cannot hide a
difference (Keras applies it after bias correction, PyTorch before).
Backends listed with `parity_options` (torch-rnn: bias_hh frozen) are loaded with them.
A backend without a model is skipped with its reason ("tflearn has no lstm model (its models: rnn)").

Sizes. The rnn: the first three below for every case, except torch.compile modes (a cold compile per size
and model, 40-70 s on the shared 2-core VM), at the seed's size and h64-b4-s20 only (what the sweep times).
lstm and gru: a backend's default mode at the same three sizes; its other modes, which compile per size
and model (torch.compile, XLA, fully unrolled scans), at one size only, the contract suite's (batch 3,
hidden 8, seq 5), whose torch graphs the contract and torch-modes suites compile anyway. They run the
default mode's arithmetic, proven at three sizes, through a compiler; the one size proves the compiled path.
"""

import dataclasses

import numpy as np
import pytest

import backends
from backends import TaskConfig
from backends.models import MODELS
from backends.task import window

STEPS = 6
CONFIGS = {
    "seed-task": TaskConfig(adam_eps=1e-16),
    "batch3-h16": TaskConfig(adam_eps=1e-16, batch_size=3, hidden_size=16, seq_len=7, seed=3),
    "h64-b4-s20": TaskConfig(adam_eps=1e-16, batch_size=4, hidden_size=64, seq_len=20, seed=5),
    # test_contract's sizes: for the compile modes of lstm and gru only
    "contract-size": TaskConfig(adam_eps=1e-16, batch_size=3, hidden_size=8, seq_len=5, seed=2),
}
EVERY = ("seed-task", "batch3-h16", "h64-b4-s20")
TORCH_COMPILED = {("torch-rnn", "compile"), ("torch-cell", "compile")}


def sizes(case: tuple[str, str], model: str) -> tuple[str, ...]:
    """The sizes at which a backend's mode is checked for a model (see the module's docstring)."""
    if model == "rnn":
        return ("seed-task", "h64-b4-s20") if case in TORCH_COMPILED else EVERY
    return EVERY if case[1] == backends.modes(case[0])[0] else ("contract-size",)


def trajectory(b: backends.Backend, config: TaskConfig) -> list[float]:
    return [b.train_step(*window(config, k)) for k in range(STEPS)]


@pytest.fixture(params=list(MODELS))
def model(request) -> str:
    return request.param


@pytest.fixture(params=list(CONFIGS))
def size(request) -> str:
    return request.param


def load_exact(make_backend, case, size, model) -> tuple[backends.Backend, TaskConfig]:
    """The backend under its parity options at `size` for `model`, or a skip saying why not."""
    if size not in sizes(case, model):
        pytest.skip(f"{case[1]} mode, {model}: parity at {', '.join(sizes(case, model))} (each size is a compile)")
    try:
        cls = backends.backend_class(case[0])
    except backends.BackendUnavailable as err:
        pytest.skip(str(err))
    config = dataclasses.replace(CONFIGS[size], model=model)
    return make_backend(case, config, **cls.parity_options), config


def test_first_loss_and_predictions_match_oracle(case, make_backend, size, model):
    b, config = load_exact(make_backend, case, size, model)
    oracle = backends.load("numpy", config)
    x, y = window(config, 0)
    np.testing.assert_allclose(b.predict(x), oracle.predict(x), rtol=0, atol=2e-6)
    b.reset_state()
    oracle.reset_state()
    assert b.train_step(x, y) == pytest.approx(oracle.train_step(x, y), abs=2e-6)


def test_trajectory_matches_oracle(case, make_backend, size, model):
    b, config = load_exact(make_backend, case, size, model)
    oracle = backends.load("numpy", config)
    np.testing.assert_allclose(trajectory(b, config), trajectory(oracle, config), rtol=1e-4)
    for k, v in b.get_weights().items():
        np.testing.assert_allclose(v, oracle.get_weights()[k], rtol=0, atol=2e-4, err_msg=k)
    x = window(config, STEPS)[0]
    np.testing.assert_allclose(b.predict(x), oracle.predict(x), rtol=0, atol=2e-4)


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_torch_rnn_with_both_biases_departs_after_first_step(make_backend, model):
    """nn.RNN and nn.LSTM train bias_ih and bias_hh by default (as the seed does): same first loss, then a
    different model. (The GRU's two biases are both canonical: see test_models.)"""
    config = dataclasses.replace(CONFIGS["seed-task"], model=model)
    b = make_backend("torch-rnn", config)
    assert b.param_count() == config.param_count + MODELS[model].gates * config.hidden_size
    ours, oracle = trajectory(b, config), trajectory(backends.load("numpy", config), config)
    assert ours[0] == pytest.approx(oracle[0], abs=2e-6)
    assert max(abs(a - o) for a, o in zip(ours[1:], oracle[1:])) > 1e-3
