"""The models (backends/models.py) behind every backend: the oracle's BPTT against finite differences, a
backend without a model, weights of another model, and PyTorch's layout of the canonical weights.
Parity of every backend with the oracle, per model, is tests/test_parity.py."""

import dataclasses

import numpy as np
import pytest

import backends
from backends import BackendUnavailable, TaskConfig
from backends import numpy_rnn as oracle
from backends.models import MODELS
from backends.numpy_rnn import NumpyRNN
from backends.task import initial_weights, window

SMALL = TaskConfig(batch_size=3, hidden_size=8, seq_len=5)  # test_contract's sizes: its compiled graphs are reused


@pytest.mark.parametrize("model", list(MODELS))
def test_oracle_gradients_match_finite_differences(model):
    """Every weight's gradient from the oracle's hand-written BPTT equals the central difference of its loss,
    in float64, from a non-zero initial state (h, and c for the LSTM) on a tiny size."""
    rng = np.random.default_rng(1)
    batch, seq_len, inputs, hidden = 2, 4, 1, 3
    w = {k: rng.normal(0, 0.7, s) for k, s in MODELS[model].weight_shapes(inputs, hidden).items()}
    x, y = rng.normal(size=(batch, seq_len, inputs)), rng.normal(size=(batch, seq_len, 1))
    state = tuple(rng.normal(0, 0.5, (batch, hidden)) for _ in MODELS[model].state)
    _, grads, _ = oracle.gradients(model, w, x, y, state)
    assert set(grads) == set(w)

    def loss() -> float:
        return oracle.gradients(model, w, x, y, state)[0]

    for name, value in w.items():
        numeric = np.empty_like(value)
        for index in np.ndindex(value.shape):
            kept = value[index]
            value[index] = kept + 1e-6
            up = loss()
            value[index] = kept - 1e-6
            down = loss()
            value[index] = kept
            numeric[index] = (up - down) / 2e-6
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("model", list(MODELS))
def test_oracle_forward_carries_the_whole_state(model):
    """The oracle's last state is what the next window starts from: a window after another equals the two
    windows as one (so the LSTM carries c as well as h)."""
    config = dataclasses.replace(SMALL, model=model)
    w = {k: v.astype(np.float64) for k, v in initial_weights(config).items()}
    x = np.concatenate([window(config, 0)[0], window(config, 1)[0]], axis=1).astype(np.float64)
    zeros = tuple(np.zeros((3, 8)) for _ in MODELS[model].state)
    whole, last = oracle.forward(model, w, x, zeros)
    first, carried = oracle.forward(model, w, x[:, :5], zeros)
    second, last_again = oracle.forward(model, w, x[:, 5:], carried)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, rtol=0, atol=1e-12)
    assert len(last) == len(MODELS[model].state)
    for a, b in zip(last, last_again):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


class RnnOnly(NumpyRNN):
    """The oracle, declaring only the rnn: as a backend whose framework has no LSTM would."""

    name = "rnn-only"
    models = ("rnn",)


def test_a_backend_without_the_model_is_unavailable_saying_which_it_has():
    RnnOnly(SMALL)  # its own model loads
    with pytest.raises(BackendUnavailable, match=r"^rnn-only has no lstm model \(its models: rnn\)$"):
        RnnOnly(dataclasses.replace(SMALL, model="lstm"))


@pytest.mark.parametrize(
    "name", ["numpy", "numba", "torch-rnn", "torch-cell", "jax-scan", "tf-cell", "keras-simplernn"]
)
def test_backends_with_every_model_declare_them(name):
    try:
        assert backends.backend_class(name).models == tuple(MODELS)
    except BackendUnavailable as err:
        pytest.skip(str(err))


def test_tflearn_has_no_gru_and_says_why():
    """TF1's GRUCell resets before the recurrent matmul: a different model, never offered under the name."""
    try:
        assert backends.backend_class("tflearn").models == ("rnn", "lstm")
    except BackendUnavailable as err:
        pytest.skip(str(err))
    with pytest.raises(BackendUnavailable, match="resets? .*before the recurrent matmul"):
        backends.load("tflearn", dataclasses.replace(SMALL, model="gru"))


def test_an_unknown_model_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="TaskConfig.model must be one of rnn, lstm, gru, got 'lstn'"):
        TaskConfig(model="lstn")


@pytest.mark.parametrize(("model", "other"), [("rnn", "lstm"), ("lstm", "gru"), ("gru", "lstm"), ("gru", "rnn")])
def test_weights_of_another_model_are_refused_naming_both(model, other):
    """Keys of another model, or its shapes under the same keys (the GRU's W_x given the LSTM's 4 gates):
    one line that says which model the weights are and which the config wants; nothing is half-applied."""
    config = dataclasses.replace(SMALL, model=model)
    b = backends.load("numpy", config)
    before = b.get_weights()
    theirs = initial_weights(dataclasses.replace(SMALL, model=other))
    with pytest.raises(ValueError, match=rf"^{model} weights keys must be exactly .*\(these are {other} weights"):
        b.set_weights(theirs)
    if model == "gru" and other == "lstm":  # same names W_x, W_h; the LSTM's shapes
        mixed = {**initial_weights(config), "W_x": theirs["W_x"]}
        with pytest.raises(ValueError, match=r"weights\['W_x'\] must have shape \(1, 24\) for the gru model, got"):
            b.set_weights(mixed)
    for k, v in b.get_weights().items():
        np.testing.assert_array_equal(v, before[k])


# ---- PyTorch's layout ----


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_torch_rnn_layout_is_the_canonical_gate_order(model):
    """weight_ih_l0 is W_x transposed, gate block by gate block in the canonical order (PyTorch's own: LSTM
    i, f, g, o; GRU r, z, n); the LSTM's bias_hh is zero, the GRU's is b_h."""
    pytest.importorskip("torch", reason="PyTorch is not installed")
    config = dataclasses.replace(SMALL, model=model)
    w = initial_weights(dataclasses.replace(config, seed=3))
    b = backends.load("torch-rnn", config)
    b.set_weights(w)
    cell, n = b.module["rnn"], config.hidden_size
    for k in range(MODELS[model].gates):
        block = slice(k * n, (k + 1) * n)
        np.testing.assert_array_equal(cell.weight_ih_l0.detach().numpy()[block], w["W_x"][:, block].T)
        np.testing.assert_array_equal(cell.weight_hh_l0.detach().numpy()[block], w["W_h"][:, block].T)
    expected_hh = w["b_h"] if model == "gru" else np.zeros(4 * n, np.float32)
    np.testing.assert_array_equal(cell.bias_hh_l0.detach().numpy(), expected_hh)


def test_torch_rnn_gru_trains_both_biases_whatever_freeze_bias_hh_says():
    """The GRU's bias_hh is the canonical b_h (the reset gate multiplies it): trained with or without
    freeze_bias_hh, so both follow the oracle and count the canonical parameters."""
    pytest.importorskip("torch", reason="PyTorch is not installed")
    config = dataclasses.replace(SMALL, model="gru", adam_eps=1e-16)
    reference = backends.load("numpy", config)
    expected = [reference.train_step(*window(config, k)) for k in range(3)]
    for freeze in (False, True):
        b = backends.load("torch-rnn", config, freeze_bias_hh=freeze)
        assert b.param_count() == config.param_count
        assert "both biases canonical" in b.info().kernel
        np.testing.assert_allclose([b.train_step(*window(config, k)) for k in range(3)], expected, rtol=1e-5)
        np.testing.assert_allclose(b.get_weights()["b_h"], reference.get_weights()["b_h"], rtol=0, atol=1e-6)


def test_numba_activations_are_exact_to_float32():
    """The floor's vectorised sigmoid and tanh (a call-free exp) round to the same float32 as the float64
    functions, over the range gates see, near 0 where tanh's 1 - e cancels, and far out where they saturate."""
    numba_rnn = pytest.importorskip("backends.numba_rnn", reason="numba is not installed")
    rng = np.random.default_rng(0)
    a = np.concatenate(
        [rng.normal(0, 4, 20000), rng.normal(0, 1e-4, 2000), [0.0, -0.0, 1e-30, -88.7, 88.7, 710.0, -1e4, 3e38]]
    ).astype(np.float32)
    wide = a.astype(np.float64)
    bits = np.empty(a.size, np.int64)
    scratch = np.empty(a.size), np.empty(a.size), bits, bits.view(np.float64), np.uint64(0), np.uint64(a.size)
    out = np.empty_like(a)
    numba_rnn._activate(a, out, True, *scratch)
    np.testing.assert_array_equal(out, np.tanh(wide).astype(np.float32))
    numba_rnn._activate(a, out, False, *scratch)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, (1.0 / (1.0 + np.exp(-wide))).astype(np.float32))
